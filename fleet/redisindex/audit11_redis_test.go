package redisindex_test

import (
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
	const ttl = 400 * time.Millisecond
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, KeyTTL: ttl})
	require.NoError(t, err)
	require.NoError(t, back.Delete("audit11-ttl"))
	x, err := fleet.New(fleet.Config{Backend: back, Model: "audit11-ttl"})
	require.NoError(t, err)
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
