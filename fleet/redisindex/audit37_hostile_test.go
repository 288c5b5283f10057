package redisindex_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit37HostileBackendCalls makes the same random Backend calls,
// many hostile, on the Redis backend and on fleet.Memory (the reference)
// side by side: server IDs out of range, stale and foreign states, lives
// that do not increase, names taken or empty, events of unknown kinds,
// media and groups, duplicate hashes, lookups with the wrong width, a
// second Attach with another model or bound. Each call must give the
// same outcome on both (the same sentinel, or success with the same
// state), and after it both must show the same servers and holder sets;
// a refused call must leave them as they were.
func TestAudit37HostileBackendCalls(t *testing.T) {
	addr := redisAddr(t)
	calls, refused := 0, 0
	for seed := range uint64(30) {
		model := fmt.Sprintf("audit37-%d", seed)
		rb := backend(t, addr, model)
		mem, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(seed, 37))
		max := 1 + r.IntN(3)
		bs := []fleet.Backend{rb, mem}
		for _, b := range bs {
			if err := b.Attach(model, max); err != nil {
				t.Fatal(err)
			}
		}
		words := fleet.WordsFor(max)
		probe := fleettest.Hs(1, 2, 3, 4, 5, 6)
		view := func(b fleet.Backend) string {
			srv, err := b.Servers(nil)
			if err != nil {
				t.Fatalf("seed %d: Servers: %v", seed, err)
			}
			sets, states, err := b.LookupAll(probe, words, nil, nil)
			if err != nil {
				t.Fatalf("seed %d: LookupAll: %v", seed, err)
			}
			return fmt.Sprintf("%+v %v %+v", srv, sets, states)
		}
		// states the test believes each server has (from the reference).
		var known []fleet.StreamState
		state := func() (fleet.ServerID, fleet.StreamState) {
			if len(known) == 0 || r.IntN(8) == 0 {
				return []fleet.ServerID{-1, fleet.ServerID(max), math.MaxInt32, math.MinInt32, 0, fleet.ServerID(len(known))}[r.IntN(6)], []fleet.StreamState{{Gen: 99}, {}}[r.IntN(2)]
			}
			s := fleet.ServerID(r.IntN(len(known)))
			st := known[s]
			if r.IntN(6) == 0 {
				st.Gen++ // stale or from the future
			}
			return s, st
		}
		var hist []string
		for it := 0; it < 60; it++ {
			before := view(mem)
			if got := view(rb); got != before {
				t.Fatalf("seed %d it %d: Redis shows %s, Memory %s", seed, it, got, before)
			}
			var desc string
			var outs [2]error
			var sts [2]fleet.StreamState
			op := r.IntN(6)
			name := []string{"a", "b", "c", "d", "", "\x00"}[r.IntN(6)]
			s, old := state()
			next := old
			next.Gen++
			evs := make([]paged.Event, r.IntN(3))
			for i := range evs {
				evs[i] = paged.Event{Seq: uint64(i + 1), Kind: paged.EventKind(1 + r.IntN(4)), Hashes: fleettest.Hs(1+r.IntN(6), 1+r.IntN(6)), Medium: paged.Medium(r.IntN(2))}
				switch r.IntN(12) {
				case 0:
					evs[i].Kind = []paged.EventKind{0, 9, 255}[r.IntN(3)]
				case 1:
					evs[i].Medium = 3
				case 2:
					evs[i].Kind, evs[i].From = paged.BlockMoved, 8
				case 3:
					evs[i].Group = -1
				}
			}
			next.Life = old.Life + uint64(r.IntN(2)) // must increase for Rename
			clr := r.IntN(5) == 0
			w := []int{words, words + 1, 0, -1, math.MaxInt}[r.IntN(5)]
			// Another model or bound: both refuse (audit 44: Redis moved
			// the Backend to another model).
			amodel, amax := []string{model, model + "-other"}[r.IntN(2)], []int{max, max + 1}[r.IntN(2)]
			if name == "" && op == 0 {
				name = "e" // Register of "" is the Index's to refuse
			}
			for i, b := range bs {
				var err error
				var st fleet.StreamState
				switch op {
				case 0:
					desc = fmt.Sprintf("Register(%q)", name)
					_, st, err = b.Register(name, fleet.StreamState{Gen: 1})
				case 1:
					desc = fmt.Sprintf("Rename(%d, %+v, %q, %+v)", s, old, name, next)
					st, err = b.Rename(s, old, name, next)
				case 2, 3:
					desc = fmt.Sprintf("Update(%d, %+v, %+v)", s, old, evs)
					st, err = b.Update(s, old, next, clr, evs)
				case 4:
					desc = fmt.Sprintf("SetLayout(%d)", s)
					st, err = b.SetLayout(s, old, "16:full", next)
				case 5:
					desc = fmt.Sprintf("Lookup(words %d)", w)
					_, _, err = b.Lookup(probe, w, nil, nil)
					if err == nil {
						err = b.Attach(amodel, amax)
					}
				}
				outs[i], sts[i] = err, st
			}
			calls++
			hist = append(hist, fmt.Sprintf("%s -> %v / %v", desc, outs[0], outs[1]))
			class := func(err error) string {
				for _, s := range []error{fleet.ErrInvalid, fleet.ErrConflict, fleet.ErrTooManyServers, fleet.ErrUnknownServer} {
					if errors.Is(err, s) {
						return s.Error()
					}
				}
				if err != nil {
					return "unknown: " + err.Error()
				}
				return "ok"
			}
			if a, b := class(outs[0]), class(outs[1]); a != b {
				// (Before audit 44 an ID no server has was ErrConflict on
				// Redis, ErrInvalid on Memory.)
				t.Fatalf("seed %d it %d %s: Redis %v, Memory %v\n%s", seed, it, desc, outs[0], outs[1], strings.Join(hist, "\n"))
			}
			if outs[0] == nil && sts[0] != sts[1] {
				t.Fatalf("seed %d it %d %s: Redis state %+v, Memory %+v", seed, it, desc, sts[0], sts[1])
			}
			if outs[1] != nil {
				refused++
				if after := view(mem); after != before {
					t.Fatalf("seed %d it %d %s: refused (%v) but Memory changed", seed, it, desc, outs[1])
				}
				if after := view(rb); after != before {
					t.Fatalf("seed %d it %d %s: refused (%v) but Redis changed", seed, it, desc, outs[0])
				}
			}
			srv, _ := mem.Servers(nil)
			known = known[:0]
			for _, x := range srv {
				known = append(known, x.State)
			}
		}
	}
	t.Logf("%d calls, %d refused, on both backends alike", calls, refused)
}

// TestAudit37RefusedAttachChangesNothing: an Attach refused because the
// model's index was made for another bound leaves an attached Backend as
// it was. It used to keep the refused bound: after Attach(model, 3) was
// refused on a 2-server index, Register added a third server.
func TestAudit37RefusedAttachChangesNothing(t *testing.T) {
	rb := backend(t, redisAddr(t), "audit37-attach")
	if err := rb.Attach("audit37-attach", 2); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if _, _, err := rb.Register(n, fleet.StreamState{Gen: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.Attach("audit37-attach", 3); !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("Attach with another bound: %v, want ErrInvalid", err)
	}
	if id, _, err := rb.Register("c", fleet.StreamState{Gen: 1}); !errors.Is(err, fleet.ErrTooManyServers) {
		t.Errorf("Register of a third server on a 2-server index after a refused Attach: ID %d, error %v; want ErrTooManyServers", id, err)
	}
	if _, err := rb.Update(2, fleet.StreamState{}, fleet.StreamState{Gen: 1}, false, nil); !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("Update of server 2 of 2: %v, want ErrInvalid", err)
	}
	srv, err := rb.Servers(nil)
	if err != nil || len(srv) != 2 {
		t.Errorf("Servers: %d (%v), want 2", len(srv), err)
	}
}
