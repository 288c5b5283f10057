package bench

import (
	"testing"

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
