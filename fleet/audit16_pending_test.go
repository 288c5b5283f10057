package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16PendingEndsClaimsOnAnyGroup: on a hybrid server a routed
// request may compute blocks that group 0 held already and another group
// lacked (the hit stopped at the window). Those blocks' only events are
// the other group's, so Observe must end a claim on an event of any
// group: a claim that outlived them would extend the server's score past
// its hit when the window's blocks are evicted again, until the TTL.
func TestAudit16PendingEndsClaimsOnAnyGroup(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	// A 1-token window at 1 token a block: a hit of L needs the window's
	// block L-1.
	require.NoError(t, x.SetLayout("gpu", fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}}))
	p, err := fleet.NewPending(fleet.PendingConfig{})
	require.NoError(t, err)
	ev := func(seq uint64, kind paged.EventKind, g int, ids ...int) paged.Event {
		return paged.Event{Seq: seq, Kind: kind, Hashes: fleettest.Hs(ids...), Medium: paged.Device, Group: g}
	}
	apply := func(evs ...paged.Event) {
		require.NoError(t, x.Apply("gpu", evs))
		require.NoError(t, p.Observe(0, evs))
	}
	apply(ev(1, paged.BlockStored, 0, 1, 2, 3), ev(2, paged.BlockStored, 1, 1))
	req := fleettest.Hs(1, 2, 3)
	score := func() fleet.Score {
		sc, err := x.Lookup(req, nil)
		require.NoError(t, err)
		p.Extend(req, sc)
		return sc[0]
	}
	sc := score()
	require.Equal(t, 1, sc.Blocks, "the window holds block 0 only")
	// Routed there: blocks 1 and 2 are claimed, then computed, which
	// stores them in the window group only (group 0 had them).
	require.NoError(t, p.Add(0, req[sc.Blocks-sc.Pending:]))
	require.Equal(t, 3, score().Blocks, "claimed")
	apply(ev(3, paged.BlockStored, 1, 2, 3))
	sc = score()
	require.Equal(t, 3, sc.Blocks)
	require.Zero(t, sc.Pending, "the window group's events ended the claims")
	apply(ev(4, paged.BlockRemoved, 1, 2, 3))
	require.Equal(t, 1, score().Blocks, "evicted from the window again: no claim left to extend the hit")
}
