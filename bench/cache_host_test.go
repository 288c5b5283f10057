package bench_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
)

func TestCacheHostTierByHand(t *testing.T) {
	// One device block, two host blocks: 1 is offloaded when 2 arrives and
	// onboarded (a host hit) when r2 asks for it again; r3 finds 2 on the
	// host too.
	tr := hashTrace(t, []int64{1}, []int64{2}, []int64{1}, []int64{2}, []int64{1})
	lru := bench.CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	r, err := tr.ReplayPolicy(lru, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, int64(3), r.Hits)
	assert.Equal(t, int64(3), r.HostHits)
	assert.InDelta(t, 0.6, r.HostHitRate, 1e-12)
	assert.Zero(t, r.DeviceHitRate)
	assert.Equal(t, 2, r.HostBlocks)
	assert.Equal(t, int64(1024), r.HostTokens)

	alone, err := tr.ReplayPolicy(lru, 1, 0)
	require.NoError(t, err)
	assert.Zero(t, alone.Hits)

	_, err = tr.ReplayPolicy(lru, 1, -1)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)
}

// TestCacheHostTierRaisesHitRate: on the default trace a host tier of 8x
// the device capacity must lift the hit rate well above the device alone.
func TestCacheHostTierRaisesHitRate(t *testing.T) {
	tr, err := bench.CacheTraceFromHashes(bench.MooncakeSynthetic(), bench.MooncakeBlockSize)
	require.NoError(t, err)
	pols, err := bench.CachePolicies([]string{"lru", "arc"})
	require.NoError(t, err)
	cfg := bench.CacheStudyConfig{Trace: tr, Policies: pols, CapacityTokens: []int64{512000, 3000000}}
	device, err := bench.RunCacheStudy(cfg)
	require.NoError(t, err)
	cfg.HostFactor = 8
	tiered, err := bench.RunCacheStudy(cfg)
	require.NoError(t, err)
	for i, r := range tiered {
		assert.Equal(t, 8*r.CapacityTokens, r.HostTokens)
		assert.Equal(t, r.Hits, int64(r.HitRate*float64(r.References)+0.5))
		assert.InDelta(t, r.HitRate, r.DeviceHitRate+r.HostHitRate, 1e-12)
		assert.Greater(t, r.HitRate, device[i].HitRate+0.2, "%s at %d tokens", r.Policy, r.CapacityTokens)
		assert.LessOrEqual(t, r.HitRate, r.MaxHitRate)
	}
	// 3M tokens plus 24M on the host hold every distinct block.
	assert.Equal(t, tr.MaxHitRate(), tiered[1].HitRate)

	cfg.HostFactor, cfg.HostTokens = 0, 1000000
	fixed, err := bench.RunCacheStudy(cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(1000000), fixed[0].HostTokens)
	assert.Equal(t, 1953, fixed[0].HostBlocks)

	cfg.HostTokens = -1
	_, err = bench.RunCacheStudy(cfg)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)
}
