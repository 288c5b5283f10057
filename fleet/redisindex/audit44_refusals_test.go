package redisindex_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit44BackendsRefuseAlike: the two refusals audit 37 left
// different on Redis and Memory now agree, as the Backend contract says.
// A write (Update, SetLayout, Rename) naming a server ID within the bound
// that no Register gave out is ErrInvalid on both (Redis compared the
// state it read, none, and said ErrConflict); an Attach of another model,
// or of another bound, to an attached backend is ErrInvalid on both and
// leaves it serving its model (Redis moved to the other model). Each
// refusal leaves the servers and entries as they were.
func TestAudit44BackendsRefuseAlike(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit44-refuse"
	other := backend(t, addr, model+"-other")
	if err := other.Attach(model+"-other", 4); err != nil {
		t.Fatal(err)
	}
	mem, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []fleet.Backend{backend(t, addr, model), mem} {
		name := fmt.Sprintf("%T", b)
		if err := b.Attach(model, 4); err != nil {
			t.Fatal(err)
		}
		_, st, err := b.Register("a", fleet.StreamState{Gen: 1})
		if err != nil {
			t.Fatal(err)
		}
		next := st
		next.Gen++
		if _, err := b.Update(0, st, next, false, []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2)}}); err != nil {
			t.Fatal(err)
		}
		view := func() string {
			srv, err := b.Servers(nil)
			if err != nil {
				t.Fatalf("%s: Servers: %v", name, err)
			}
			sets, states, err := b.LookupAll(fleettest.Hs(1, 2), 1, nil, nil)
			if err != nil {
				t.Fatalf("%s: LookupAll: %v", name, err)
			}
			return fmt.Sprintf("%+v %v %+v", srv, sets, states)
		}
		before := view()
		zero, one := fleet.StreamState{}, fleet.StreamState{Gen: 1, Life: 1}
		for _, c := range []struct {
			desc string
			call func() error
		}{
			{"Update of unregistered server 1", func() error {
				_, err := b.Update(1, zero, one, false, []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(3)}})
				return err
			}},
			{"Update of unregistered server 3 (the last ID)", func() error { _, err := b.Update(3, zero, one, true, nil); return err }},
			{"SetLayout of unregistered server 2", func() error { _, err := b.SetLayout(2, zero, "16:full", one); return err }},
			{"Rename of unregistered server 1", func() error { _, err := b.Rename(1, zero, "b", one); return err }},
			{"Attach of another model", func() error { return b.Attach(model+"-other", 4) }},
			{"Attach of another bound", func() error { return b.Attach(model, 5) }},
		} {
			if err := c.call(); !errors.Is(err, fleet.ErrInvalid) {
				t.Errorf("%s: %s: %v, want ErrInvalid", name, c.desc, err)
			}
			if after := view(); after != before {
				t.Fatalf("%s: %s changed the backend: %s, was %s", name, c.desc, after, before)
			}
		}
		// Still its own model's: the next server is the second of it.
		id, _, err := b.Register("b", fleet.StreamState{Gen: 1})
		if err != nil || id != 1 {
			t.Errorf("%s: Register after the refusals: ID %d, %v; want 1", name, id, err)
		}
		if err := b.Attach(model, 4); err != nil {
			t.Errorf("%s: Attach again of its own model: %v", name, err)
		}
	}
	if srv, err := other.Servers(nil); err != nil || len(srv) != 0 {
		t.Errorf("the other model has servers %+v (%v), want none", srv, err)
	}
}
