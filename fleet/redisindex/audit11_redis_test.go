package redisindex_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit11KeyTTLClearForgetsSharedBlocks: with KeyTTL, a server that
// stores nothing for longer than KeyTTL while another server keeps one of
// its blocks alive (by storing the same block) must still lose that block
// from the index when its cache is cleared. The clear finds the server's
// blocks through its server set; the set used to expire on the server's
// own schedule while the shared block key lived on, so the clear missed
// the block and the index went on reporting it: a silent wrong answer.
func TestAudit11KeyTTLClearForgetsSharedBlocks(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	// Servers registered first put a and b past the key's first byte.
	for _, pad := range []int{0, 5} {
		t.Run(fmt.Sprint(pad, " servers first"), func(t *testing.T) { keyTTLClear(t, c, pad) })
	}
}

func keyTTLClear(t *testing.T, c *redis.Client, pad int) {
	const ttl = 400 * time.Millisecond
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, KeyTTL: ttl})
	require.NoError(t, err)
	require.NoError(t, back.Delete("audit11-ttl"))
	x, err := fleet.New(fleet.Config{Backend: back, Model: "audit11-ttl"})
	require.NoError(t, err)
	for i := range pad {
		require.NoError(t, x.Heartbeat(fmt.Sprint("pad", i)))
	}
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	// b keeps block 1's key alive, storing and removing it, for longer
	// than KeyTTL; a stays silent.
	seq := uint64(0)
	for start := time.Now(); time.Since(start) < 2*ttl; time.Sleep(ttl / 8) {
		seq++
		require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(2*seq-1, paged.Device, 1),
			{Seq: 2 * seq, Kind: paged.BlockRemoved, Hashes: fleettest.Hs(1), Medium: paged.Device}}))
	}
	seq++
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(2*seq-1, paged.Device, 1)}))
	// a's cache is reset: it holds nothing.
	require.NoError(t, x.Apply("a", []paged.Event{{Seq: 2, Kind: paged.AllBlocksCleared}}))
	sc, err := x.Lookup(fleettest.Hs(1), nil)
	require.NoError(t, err)
	for _, s := range sc {
		if s.Name == "a" {
			require.Zero(t, s.Blocks, "a cleared its cache, the index still reports %+v", s)
		}
	}
}

// TestAudit11AttachRefusesAnotherKeyLayout: the keys of a model's index
// are read as this version lays them out (block bits 2s and 2s+1, states
// as fleet.StreamState.String). An index whose layout marker names
// another layout, as a router of another version would write it, is
// refused with fleet.ErrInvalid rather than joined and misread, and so
// is an index without a marker, as versions before the marker made it.
func TestAudit11AttachRefusesAnotherKeyLayout(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	base := testPrefix + ":{audit11-layout}:"
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix})
	require.NoError(t, err)

	require.NoError(t, back.Delete("audit11-layout"))
	require.NoError(t, c.MSet(ctx, base+"epoch", "feedface", base+"max", "64", base+"layout", "pagedkv-redisindex/99").Err())
	err = back.Attach("audit11-layout", 64)
	require.ErrorIs(t, err, fleet.ErrInvalid)
	require.Contains(t, err.Error(), "pagedkv-redisindex/99")

	// No marker: an index made before the marker existed, which keyed
	// blocks of every group by their bare hashes (layout 3 keys them by
	// group), is refused too.
	require.NoError(t, back.Delete("audit11-layout"))
	require.NoError(t, c.MSet(ctx, base+"epoch", "feedface", base+"max", "64").Err())
	require.ErrorIs(t, back.Attach("audit11-layout", 64), fleet.ErrInvalid)

	// A new index carries the marker, and a second router joins it.
	require.NoError(t, back.Delete("audit11-layout"))
	x, err := fleet.New(fleet.Config{Backend: back, Model: "audit11-layout"})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	marker, err := c.Get(ctx, base+"layout").Result()
	require.NoError(t, err)
	require.NotEmpty(t, marker)
	y, err := fleet.New(fleet.Config{Backend: attach(t, addr), Model: "audit11-layout"})
	require.NoError(t, err)
	sc, err := y.Lookup(fleettest.Hs(1), nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	require.Equal(t, 1, sc[0].Blocks)
}
