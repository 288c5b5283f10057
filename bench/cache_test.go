package bench_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
)

// hashTrace builds a Mooncake-style trace from lists of hash IDs.
func hashTrace(t interface {
	require.TestingT
	Helper()
}, ids ...[]int64) *bench.CacheTrace {
	t.Helper()
	reqs := make([]bench.Request, len(ids))
	for i, l := range ids {
		reqs[i] = bench.Request{InputTokens: len(l) * bench.MooncakeBlockSize, HashIDs: l}
	}
	tr, err := bench.CacheTraceFromHashes(reqs, bench.MooncakeBlockSize)
	require.NoError(t, err)
	return tr
}

func TestCacheReplayByHand(t *testing.T) {
	// Capacity 2. r0 misses 1,2; r1 hits both; r2 misses 3 and evicts 2
	// (released before 1: tail first); r3 hits 1, misses 2 (evicting 3).
	tr := hashTrace(t, []int64{1, 2}, []int64{1, 2}, []int64{3}, []int64{1, 2})
	r, err := tr.Replay("lru", eviction.NewLRU, 2)
	require.NoError(t, err)
	assert.Equal(t, int64(7), r.References)
	assert.Equal(t, int64(3), r.Hits)
	assert.InDelta(t, 3.0/7, r.HitRate, 1e-12)
	assert.InDelta(t, 4.0/7, r.MaxHitRate, 1e-12)
	assert.Equal(t, uint64(2), r.Evictions)
	assert.Equal(t, 2, r.CapacityBlocks)
	assert.Equal(t, int64(1024), r.CapacityTokens)
}

func TestCacheHitsStopAtFirstMiss(t *testing.T) {
	tr := hashTrace(t, []int64{1, 2, 3}, []int64{9, 2, 3}, []int64{1, 2, 4})
	assert.InDelta(t, 2.0/9, tr.MaxHitRate(), 1e-12)
	r, err := tr.Replay("lru", eviction.NewLRU, 100)
	require.NoError(t, err)
	assert.Equal(t, int64(2), r.Hits, "r1 shares 2,3 only after a miss; r2 hits 1,2")
}

func TestCacheBeladyBeatsLRUByHand(t *testing.T) {
	// Capacity 2: when 3 arrives, LRU gives up 1 (oldest) though only 1 is
	// used again; Belady gives up 2, never used again, and r3 hits.
	tr := hashTrace(t, []int64{1}, []int64{2}, []int64{3}, []int64{1})
	lru, err := tr.Replay("lru", eviction.NewLRU, 2)
	require.NoError(t, err)
	assert.Equal(t, int64(0), lru.Hits)
	opt, err := tr.ReplayBelady(2)
	require.NoError(t, err)
	assert.Equal(t, int64(1), opt.Hits)
	assert.Equal(t, bench.BeladyName, opt.Policy)
}

func TestCacheOversizeRequestsMiss(t *testing.T) {
	tr := hashTrace(t, []int64{1}, []int64{4, 5, 6}, []int64{1}, []int64{4, 5, 6})
	r, err := tr.Replay("lru", eviction.NewLRU, 2)
	require.NoError(t, err)
	assert.Equal(t, 2, r.Oversize)
	assert.Equal(t, 4, r.Requests)
	assert.Equal(t, int64(8), r.References)
	assert.Equal(t, int64(1), r.Hits, "only r2 hits; the 3-block requests never enter a 2-block cache")
}

func TestCacheSplitBlocks(t *testing.T) {
	// With 256-token blocks each hash ID names two blocks.
	reqs := []bench.Request{{HashIDs: []int64{1, 2}}, {HashIDs: []int64{1, 3}}}
	tr, err := bench.CacheTraceFromHashes(reqs, 256)
	require.NoError(t, err)
	assert.Equal(t, int64(8), tr.References())
	assert.Equal(t, 6, tr.Distinct())
	r, err := tr.Replay("lru", eviction.NewLRU, 100)
	require.NoError(t, err)
	assert.Equal(t, int64(2), r.Hits)
}

func TestCacheTokenModel(t *testing.T) {
	// Requests 0 and 8 share system prompt 0: 256 tokens, 16 blocks of 16.
	reqs := make([]bench.Request, 9)
	for i := range reqs {
		reqs[i].InputTokens = 300 // 18 full blocks and a partial one
	}
	tr, err := bench.CacheTraceFromTokens(reqs, 16)
	require.NoError(t, err)
	assert.Equal(t, int64(9*19), tr.References())
	assert.Equal(t, 9*18-16, tr.Distinct())
	assert.InDelta(t, 16.0/(9*19), tr.MaxHitRate(), 1e-12)
	r, err := tr.Replay("lru", eviction.NewLRU, 1000)
	require.NoError(t, err)
	assert.Equal(t, int64(16), r.Hits)

	p := bench.TokenModelPrompt(nil, 9, 258)
	assert.Equal(t, int32(1001), p[0], "request 9 uses system prompt 1")
	assert.Equal(t, int32(1256), p[255])
	assert.Equal(t, int32((9*7919+256*104729)%32000+1), p[256])
}

// TestCacheInfiniteCapacityReachesMax checks the replay against the
// independent infinite-cache computation: with room for every block, the
// manager must hit exactly what the maximum counts.
func TestCacheInfiniteCapacityReachesMax(t *testing.T) {
	moon, err := bench.CacheTraceFromHashes(bench.MooncakeSynthetic(), bench.MooncakeBlockSize)
	require.NoError(t, err)
	azure, err := bench.CacheTraceFromTokens(bench.AzureConv()[:2000], 16)
	require.NoError(t, err)
	for _, tr := range []*bench.CacheTrace{moon, azure} {
		for _, name := range []string{"lru", "arc"} {
			f, err := eviction.ByName(name)
			require.NoError(t, err)
			r, err := tr.Replay(name, f, int(tr.References()))
			require.NoError(t, err)
			assert.Equal(t, tr.MaxHitRate(), r.HitRate, "%s on %s", name, tr.Source)
			assert.Zero(t, r.Evictions)
		}
	}
}

// TestCacheMooncakeAcceptance checks the study against the reference
// figures computed independently on the embedded trace (docs/workloads.md)
// and the Mooncake paper's "about 48% of the maximum at 3M tokens".
func TestCacheMooncakeAcceptance(t *testing.T) {
	tr, err := bench.CacheTraceFromHashes(bench.MooncakeSynthetic(), bench.MooncakeBlockSize)
	require.NoError(t, err)
	assert.Equal(t, 3993, tr.Requests())
	assert.Equal(t, int64(121877), tr.References())
	assert.Equal(t, 43924, tr.Distinct())
	assert.InDelta(t, 0.6396, tr.MaxHitRate(), 0.00005)

	pols, err := bench.CachePolicies([]string{"all"})
	require.NoError(t, err)
	results, err := bench.RunCacheStudy(bench.CacheStudyConfig{
		Trace:          tr,
		Policies:       pols,
		CapacityTokens: []int64{512000, 3000000, 5120000},
	})
	require.NoError(t, err)
	rate := map[string]map[int]float64{}
	for _, r := range results {
		if rate[r.Policy] == nil {
			rate[r.Policy] = map[int]float64{}
		}
		rate[r.Policy][r.CapacityBlocks] = r.HitRate
		assert.Zero(t, r.Oversize)
	}
	assert.InDelta(t, 0.084, rate["lru"][1000], 0.003)
	assert.InDelta(t, 0.309, rate["lru"][5859], 0.003)
	assert.InDelta(t, 0.424, rate["lru"][10000], 0.003)
	assert.InDelta(t, 0.48, rate["lru"][5859]/tr.MaxHitRate(), 0.01)
	assert.GreaterOrEqual(t, rate[bench.BeladyName][5859], 0.54)
	for name, byCap := range rate {
		for blocks, v := range byCap {
			if name != bench.BeladyName {
				assert.Less(t, v, rate[bench.BeladyName][blocks], "%s at %d blocks beats the oracle", name, blocks)
			}
			assert.LessOrEqual(t, v, tr.MaxHitRate())
		}
	}
}

func TestCacheStudyWorkersAgree(t *testing.T) {
	reqs := bench.MooncakeSynthetic()[:800]
	tr, err := bench.CacheTraceFromHashes(reqs, bench.MooncakeBlockSize)
	require.NoError(t, err)
	pols, err := bench.CachePolicies([]string{"lru", "belady", "s3fifo"})
	require.NoError(t, err)
	cfg := bench.CacheStudyConfig{Trace: tr, Policies: pols, CapacityTokens: []int64{256000, 1024000}, Workers: 1}
	one, err := bench.RunCacheStudy(cfg)
	require.NoError(t, err)
	cfg.Workers = 4
	four, err := bench.RunCacheStudy(cfg)
	require.NoError(t, err)
	require.Len(t, one, 6)
	for i := range one {
		assert.Equal(t, one[i].Policy, four[i].Policy)
		assert.Equal(t, one[i].CapacityTokens, four[i].CapacityTokens)
		assert.Equal(t, one[i].Hits, four[i].Hits)
	}
	assert.Equal(t, []string{"lru", "lru", "belady", "belady", "s3fifo", "s3fifo"},
		[]string{one[0].Policy, one[1].Policy, one[2].Policy, one[3].Policy, one[4].Policy, one[5].Policy})
}

func TestCacheStudyErrors(t *testing.T) {
	_, err := bench.CacheTraceFromHashes(nil, 0)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)
	_, err = bench.CacheTraceFromHashes(nil, 300)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)
	_, err = bench.CacheTraceFromTokens(nil, -1)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)

	tr := hashTrace(t, []int64{1})
	_, err = tr.Replay("lru", eviction.NewLRU, 0)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)
	_, err = tr.Replay("none", nil, 10)
	assert.ErrorIs(t, err, bench.ErrCacheStudy)

	_, err = bench.CachePolicies([]string{"lru", "nosuch"})
	assert.ErrorIs(t, err, bench.ErrCacheStudy)
	assert.ErrorIs(t, err, eviction.ErrUnknownPolicy)
	_, err = bench.CachePolicies([]string{" ", ""})
	assert.ErrorIs(t, err, bench.ErrCacheStudy)

	pols, err := bench.CachePolicies([]string{"LRU", "lru", "Belady"})
	require.NoError(t, err)
	assert.Len(t, pols, 2)

	for _, cfg := range []bench.CacheStudyConfig{
		{Policies: pols, CapacityTokens: []int64{1024}},
		{Trace: tr, CapacityTokens: []int64{1024}},
		{Trace: tr, Policies: pols},
		{Trace: tr, Policies: pols, CapacityTokens: []int64{100}},
		{Trace: tr, Policies: []bench.CachePolicy{{Name: "x"}}, CapacityTokens: []int64{1024}},
	} {
		_, err := bench.RunCacheStudy(cfg)
		assert.ErrorIs(t, err, bench.ErrCacheStudy)
	}
}

func TestCacheWinnersAndTable(t *testing.T) {
	results := []bench.CacheResult{
		{Policy: "lru", CapacityTokens: 1000, CapacityBlocks: 2, HitRate: 0.2, MaxHitRate: 0.5},
		{Policy: "lru", CapacityTokens: 2000, CapacityBlocks: 4, HitRate: 0.5, MaxHitRate: 0.5},
		{Policy: "arc", CapacityTokens: 1000, CapacityBlocks: 2, HitRate: 0.25, MaxHitRate: 0.5},
		{Policy: "arc", CapacityTokens: 2000, CapacityBlocks: 4, HitRate: 0.5, MaxHitRate: 0.5},
		{Policy: bench.BeladyName, CapacityTokens: 1000, CapacityBlocks: 2, HitRate: 0.4, MaxHitRate: 0.5},
	}
	w := bench.CacheWinners(results)
	require.Len(t, w, 2)
	assert.Equal(t, "arc", w[0].Policy)
	assert.Equal(t, 0.2, w[0].LRU)
	assert.Equal(t, "lru", w[1].Policy)
	assert.Equal(t, 1, w[1].Tied)

	var b strings.Builder
	require.NoError(t, bench.WriteCacheTable(&b, results))
	assert.Equal(t, `| policy | 1,000 tokens (2 blocks) | 2,000 tokens (4 blocks) |
|---|---:|---:|
| lru | 0.200 | 0.500 |
| arc | 0.250 | 0.500 |
| belady (oracle) | 0.400 | |
| infinite cache | 0.500 | 0.500 |

1,000 tokens: best arc 0.250, +0.050 over lru (+25.0%), 50% of the maximum
2,000 tokens: best lru 0.500 (tied with 1 more), +0.000 over lru (+0.0%), 100% of the maximum
`, b.String())

	// Every hit rate 0 (a trace nothing in it repeats): no relative
	// margin, which used to print "+NaN%".
	b.Reset()
	require.NoError(t, bench.WriteCacheTable(&b, []bench.CacheResult{
		{Policy: "lru", CapacityTokens: 1000, CapacityBlocks: 2},
		{Policy: "arc", CapacityTokens: 1000, CapacityBlocks: 2},
	}))
	assert.NotContains(t, b.String(), "NaN")
	assert.Contains(t, b.String(), "1,000 tokens: best lru 0.000 (tied with 1 more), +0.000 over lru\n")
}

// BenchmarkCacheReplay replays the embedded Mooncake trace at 3M tokens
// once per iteration under each policy and reports its hit rate.
func BenchmarkCacheReplay(b *testing.B) {
	tr, err := bench.CacheTraceFromHashes(bench.MooncakeSynthetic(), bench.MooncakeBlockSize)
	if err != nil {
		b.Fatal(err)
	}
	pols, err := bench.CachePolicies([]string{"all"})
	if err != nil {
		b.Fatal(err)
	}
	blocks := 3000000 / bench.MooncakeBlockSize
	for _, p := range pols {
		b.Run(p.Name, func(b *testing.B) {
			b.ReportAllocs()
			var r bench.CacheResult
			var err error
			for b.Loop() {
				if p.Factory == nil {
					r, err = tr.ReplayBelady(blocks)
				} else {
					r, err = tr.Replay(p.Name, p.Factory, blocks)
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.HitRate, "hit-rate")
		})
	}
}

func ExampleCacheTrace_Replay() {
	tr, err := bench.CacheTraceFromHashes(bench.MooncakeSynthetic(), bench.MooncakeBlockSize)
	if err != nil {
		panic(err)
	}
	blocks := 3000000 / tr.BlockSize // a 3M-token cache
	r, err := tr.Replay("lru", eviction.NewLRU, blocks)
	if err != nil {
		panic(err)
	}
	o, err := tr.ReplayBelady(blocks)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d blocks: lru %.3f, belady %.3f, infinite %.3f\n", blocks, r.HitRate, o.HitRate, tr.MaxHitRate())
	// Output: 5859 blocks: lru 0.309, belady 0.550, infinite 0.640
}

func TestThousands(t *testing.T) {
	assert.Equal(t, "1,234,567", bench.Thousands(1234567))
	assert.Equal(t, "-1,000", bench.Thousands(-1000))
	assert.Equal(t, "999", bench.Thousands(999))
	assert.Equal(t, "0", bench.Thousands(0))
}
