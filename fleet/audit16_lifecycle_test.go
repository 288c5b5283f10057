package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16LayoutsPastOneWord: servers with layouts past the first
// 64-bit word of holder sets are scored from their own bits: each holds
// the full blocks 1-4 and its window's block and state checkpoint at one
// point k (the window's on the host), so its hit is k+1 blocks, k of
// them on the device.
func TestAudit16LayoutsPastOneWord(t *testing.T) {
	x, err := fleet.New(fleet.Config{MaxServers: 200})
	require.NoError(t, err)
	l := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}, {Kind: paged.State}}}
	for i := range 150 {
		name := fmt.Sprint("s", i)
		require.NoError(t, x.SetLayout(name, l))
		k := i % 4
		evs := []paged.Event{
			{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2, 3, 4), Medium: paged.Device},
			{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2, 3, 4)[k : k+1], Medium: paged.Host, Group: 1},
			{Seq: 3, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2, 3, 4)[k : k+1], Medium: paged.Device, Group: 2},
		}
		require.NoError(t, x.Apply(name, evs))
	}
	sc, err := x.Lookup(fleettest.Hs(1, 2, 3, 4), nil)
	require.NoError(t, err)
	for i, s := range sc {
		require.Equal(t, i%4+1, s.Blocks, "server %d", i)
		require.Equal(t, i%4, s.Device, "server %d", i)
	}
}

// TestAudit16LayoutOfANewLife: a layout belongs to a server's life: after
// Unregister the name may come back with another layout, and an expired
// server's ID reclaimed by another name carries no layout (events of
// groups the old layout lacked are taken, scores are the new server's).
func TestAudit16LayoutOfANewLife(t *testing.T) {
	now := time.Unix(1000, 0)
	x, err := fleet.New(fleet.Config{MaxServers: 1, TTL: time.Minute, Now: func() time.Time { return now }})
	require.NoError(t, err)
	window := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}}
	state := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.State}}}
	require.NoError(t, x.SetLayout("a", window))
	require.NoError(t, x.Apply("a", []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2), Medium: paged.Device}}))
	require.ErrorIs(t, x.SetLayout("a", state), fleet.ErrInvalid)
	require.NoError(t, x.Unregister("a"))
	require.NoError(t, x.SetLayout("a", state))
	got, ok := x.Layout("a")
	require.True(t, ok)
	require.Equal(t, state.String(), got.String())
	sc, err := x.Lookup(fleettest.Hs(1, 2), nil)
	require.NoError(t, err)
	require.Zero(t, sc[0].Blocks, "the old life's entries are gone")

	now = now.Add(2 * time.Minute) // a expires; b takes its ID
	require.NoError(t, x.Apply("b", []paged.Event{
		{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2), Medium: paged.Device},
		{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1), Medium: paged.Device, Group: 5},
	}), "no layout of a's: group 5 is taken")
	_, ok = x.Layout("b")
	require.False(t, ok)
	_, ok = x.Layout("a")
	require.False(t, ok)
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Len(t, st, 1)
	require.Equal(t, "b", st[0].Name)
	require.Empty(t, st[0].Layout)
	sc, err = x.Lookup(fleettest.Hs(1, 2), nil)
	require.NoError(t, err)
	require.Equal(t, 2, sc[0].Blocks, "scored by group 0's run: no layout")
}

// TestAudit16HybridApplyAllocs: applying a hybrid server's events of
// several groups (keyed per group in the Index's scratch) and looking up
// allocate nothing in steady state, as group 0's events do.
func TestAudit16HybridApplyAllocs(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	l := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State}}}
	require.NoError(t, x.SetLayout("a", l))
	req := fleettest.Hs(0, 1, 2, 3, 4, 5, 6, 7)
	evs := []paged.Event{
		{Kind: paged.BlockStored, Hashes: req, Medium: paged.Device},
		{Kind: paged.BlockStored, Hashes: req[4:], Medium: paged.Device, Group: 1},
		{Kind: paged.BlockStored, Hashes: req[7:], Medium: paged.Device, Group: 2},
		{Kind: paged.BlockRemoved, Hashes: req[4:], Medium: paged.Device, Group: 1},
		{Kind: paged.BlockRemoved, Hashes: req[7:], Medium: paged.Device, Group: 2},
		{Kind: paged.BlockRemoved, Hashes: req, Medium: paged.Device},
	}
	seq := uint64(0)
	var sc []fleet.Score
	var aerr, lerr error
	run := func() {
		for i := range evs {
			seq++
			evs[i].Seq = seq
		}
		aerr = x.Apply("a", evs[:3])
		sc, lerr = x.Lookup(req, sc[:0])
		if aerr == nil && lerr == nil && sc[0].Blocks != 8 {
			lerr = fmt.Errorf("scored %d blocks, want 8", sc[0].Blocks)
		}
		if aerr == nil {
			aerr = x.Apply("a", evs[3:])
		}
	}
	run()
	require.NoError(t, aerr)
	require.NoError(t, lerr)
	allocs := testing.AllocsPerRun(200, run)
	require.NoError(t, aerr)
	require.NoError(t, lerr)
	require.Zero(t, allocs)
}
