package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestCacheQueue: pinning queued requests' prefixes never lowers LRU's hit
// rate below the plain replay (same request order; pins only protect
// blocks a queued request will hit), a heavier load makes a longer queue,
// and bad models are refused.
func TestCacheQueue(t *testing.T) {
	tr, err := CacheTraceFromHashes(MooncakeSynthetic(), MooncakeBlockSize)
	require.NoError(t, err)
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	plain, err := tr.ReplayPolicy(lru, 1000, 0)
	require.NoError(t, err)
	light, err := tr.replay(lru, 1000, 0, &QueueModel{Load: 0.5})
	require.NoError(t, err)
	heavy, err := tr.replay(lru, 1000, 0, &QueueModel{Load: 1.2})
	require.NoError(t, err)
	require.NotNil(t, heavy.Queue)
	t.Logf("plain %.4f, load 0.5 %.4f (queue %.1f), load 1.2 %.4f (queue %.1f)", plain.HitRate, light.HitRate, light.Queue.MeanQueue, heavy.HitRate, heavy.Queue.MeanQueue)
	assert.GreaterOrEqual(t, light.HitRate, plain.HitRate-0.002)
	assert.Greater(t, heavy.HitRate, plain.HitRate)
	assert.Greater(t, heavy.Queue.MeanQueue, light.Queue.MeanQueue)
	assert.Greater(t, heavy.Queue.PinnedBlocks, int64(0))

	for _, bad := range []QueueModel{{}, {Load: -1}, {Load: 1, PinShare: 2}} {
		_, err := tr.replay(lru, 1000, 0, &bad)
		assert.ErrorIs(t, err, ErrCacheStudy, "%+v", bad)
	}
}

// TestCacheQueueByHand checks the queue model against docs/cache.md on a
// case worked by hand. Requests (512-token blocks, arrival in seconds):
// r0 [1 2] at 0, r1 [1 2 3] at 1, r2 [1 5] at 2, r3 [7 8 9 10] at 2.5
// (too long for the 3-block cache).
// Tokens 512 a block: 1024+1536+1024+2048 = 5632 over a 2.5 s span at
// load 2: R = 5632/2.5/2 = 1126.4 tokens/s.
//
//	r0 starts at 0, computes 2 blocks: 1024/R = 0.909 s.
//	r1 arrives at 1, starts at 1 (wait 0), hits 1 2, computes 3: ends
//	   1 + 512/R = 1.4545.
//	r2 arrives at 2, starts at 2 (wait 0); r3 arrives at 2.5 > 2, so no
//	   queue. r2 hits 1, computes 5: ends 2.4545.
//	r3 arrives at 2.5, starts at 2.5 (wait 0), is longer than the cache:
//	   it never runs.
//
// At load 6 (R = 375.47): r0 ends at 2.727; r1 waits 1.727 with r2 and
// r3 (2, 2.5 <= 2.727) queued behind it: r2 pins its cached prefix [1],
// one block, r3 has none cached; r1 ends 2.727 + 1.364 = 4.091; r2 waits
// 2.091 with r3 queued; r3 waits 4.091 + 1.364 - 2.5 = 2.955 and never
// runs. Means are over the 4 requests that reached the head of the queue:
// wait 6.773/4, queue (0+2+1+0)/4.
func TestCacheQueueByHand(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, InputTokens: 1024, HashIDs: []int64{1, 2}},
		{Arrival: time.Second, InputTokens: 1536, HashIDs: []int64{1, 2, 3}},
		{Arrival: 2 * time.Second, InputTokens: 1024, HashIDs: []int64{1, 5}},
		{Arrival: 2500 * time.Millisecond, InputTokens: 2048, HashIDs: []int64{7, 8, 9, 10}},
	}
	tr, err := CacheTraceFromHashes(reqs, MooncakeBlockSize)
	require.NoError(t, err)
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}

	light, err := tr.replay(lru, 3, 0, &QueueModel{Load: 2})
	require.NoError(t, err)
	assert.Equal(t, 1126.0, light.Queue.PrefillRate)
	assert.Zero(t, light.Queue.MeanWait)
	assert.Zero(t, light.Queue.MaxQueue)
	assert.Equal(t, int64(3), light.Hits)
	assert.Equal(t, 1, light.Oversize)

	heavy, err := tr.replay(lru, 3, 0, &QueueModel{Load: 6})
	require.NoError(t, err)
	rate := 5632 / 2.5 / 6
	r1 := 1024 / rate
	r2 := r1 + 512/rate
	r3 := r2 + 512/rate
	waits := (r1 - 1) + (r2 - 2) + (r3 - 2.5)
	assert.InDelta(t, waits/4, heavy.Queue.MeanWait.Seconds(), 1e-6)
	assert.Equal(t, 2, heavy.Queue.MaxQueue)
	assert.InDelta(t, 3.0/4, heavy.Queue.MeanQueue, 1e-12)
	assert.Equal(t, int64(1), heavy.Queue.PinnedBlocks, "r2's cached prefix [1]")
	assert.Equal(t, int64(3), heavy.Hits)
}

// TestCacheQueueRefusesUnorderedArrivals: the queue model serves requests
// in trace order at their arrival times, so a trace whose arrivals go back
// in time is refused rather than replayed with made-up waits (the same
// requests reversed used to replay with a mean wait of 46.8 s against 0).
func TestCacheQueueRefusesUnorderedArrivals(t *testing.T) {
	reqs := []Request{
		{InputTokens: 1024, HashIDs: []int64{1, 2}, Arrival: 2 * time.Second},
		{InputTokens: 1024, HashIDs: []int64{1, 3}, Arrival: time.Second},
		{InputTokens: 1024, HashIDs: []int64{1, 4}, Arrival: 3 * time.Second},
	}
	tr, err := CacheTraceFromHashes(reqs, MooncakeBlockSize)
	require.NoError(t, err)
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	_, err = tr.replay(lru, 16, 0, &QueueModel{Load: 1})
	require.ErrorIs(t, err, ErrCacheStudy)
	require.ErrorContains(t, err, "request 1 arrives")
	// In order, the same requests replay.
	reqs[0].Arrival, reqs[1].Arrival = reqs[1].Arrival, reqs[0].Arrival
	tr, err = CacheTraceFromHashes(reqs, MooncakeBlockSize)
	require.NoError(t, err)
	_, err = tr.replay(lru, 16, 0, &QueueModel{Load: 1})
	require.NoError(t, err)
}
