package redisindex_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16LayoutSurvivesLoss: when Redis loses the index, the Index
// registers the servers it knew again (partial); it must record their
// layouts again too. Otherwise a hybrid server, resynced from its
// snapshot and no longer partial, is scored by group 0's run: more than
// it can hit, with nothing telling the operator to set the layout again.
func TestAudit16LayoutSurvivesLoss(t *testing.T) {
	addr := redisAddr(t)
	x, err := fleet.New(fleet.Config{Backend: backend(t, addr, "a16loss"), Model: "a16loss"})
	require.NoError(t, err)
	// A 1-token window at 1 token a block: a hit of L needs the window's
	// block L-1.
	l := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}}
	require.NoError(t, x.SetLayout("gpu", l))
	snap := &paged.Snapshot{Seq: 2, BlockSize: 1, Blocks: []paged.CachedBlock{
		{Hash: fleettest.H(1)},
		{Hash: fleettest.H(2), Parent: fleettest.H(1), HasParent: true},
		{Hash: fleettest.H(3), Parent: fleettest.H(2), HasParent: true},
		{Hash: fleettest.H(1), Group: 1},
	}}
	require.NoError(t, x.Resync("gpu", snap))
	sc := lookup(t, x, 1, 2, 3)
	require.Equal(t, 1, sc[0].Blocks, "the window holds block 0 only: a hit of 1")

	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	require.NoError(t, c.Del(context.Background(), testPrefix+":{a16loss}:epoch").Err())
	sc = lookup(t, x, 1, 2, 3)
	require.True(t, sc[0].Partial)
	// The lookup noticed the loss; the next call attaches again.
	require.NoError(t, x.Resync("gpu", snap))
	got, ok := x.Layout("gpu")
	require.True(t, ok, "the layout is recorded again")
	require.Equal(t, l.String(), got.String())
	sc = lookup(t, x, 1, 2, 3)
	require.False(t, sc[0].Partial)
	require.Equal(t, 1, sc[0].Blocks, "scored with its layout after the loss")
	// Another router attached after the loss reads it too.
	y, err := fleet.New(fleet.Config{Backend: attach(t, addr), Model: "a16loss"})
	require.NoError(t, err)
	sc, err = y.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Equal(t, 1, sc[0].Blocks)
}

// TestAudit16LayoutSetWhileAnotherRouterApplies: a router that knows a
// server without a layout, applying its events after another router
// recorded one, learns of it from the failed write and checks the events
// against it: a group the layout lacks is refused, nothing applied.
func TestAudit16LayoutSetWhileAnotherRouterApplies(t *testing.T) {
	x, y := twoRouters(t, "a16race")
	require.NoError(t, y.Apply("gpu", []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2), Medium: paged.Device}}))
	l := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}}
	require.NoError(t, x.SetLayout("gpu", l))
	err := y.Apply("gpu", []paged.Event{{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1), Medium: paged.Device, Group: 3}})
	require.ErrorIs(t, err, fleet.ErrInvalid)
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(1), st[0].Seq, "nothing applied")
	require.NoError(t, y.Apply("gpu", []paged.Event{{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1), Medium: paged.Device, Group: 1}}))
	sc, err := y.Lookup(fleettest.Hs(1, 2), nil)
	require.NoError(t, err)
	require.Equal(t, 1, sc[0].Blocks, "scored with the layout")
}
