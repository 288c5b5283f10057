package bench_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
)

// The thirty-ninth round of mutation testing (docs/testing.md): the cache
// study's oracle, traces, replay, report, study driver and conversations.

// TestAudit85BeladyHoldsItsRoot: the block at the heap's root (index 0) is
// held like any other, alone or first to go.
func TestAudit85BeladyHoldsItsRoot(t *testing.T) {
	p := bench.NewBelady(4)
	p.SetNext(2, 7, 0)
	p.Insert(2)
	assert.True(t, p.Contains(2), "the only block, at the root")
	p.SetNext(3, 9, 0)
	p.Insert(3)
	assert.True(t, p.Contains(3), "used later: the new root")
	assert.True(t, p.Contains(2))
	id, ok := p.Victim()
	require.True(t, ok)
	assert.Equal(t, allocator.BlockID(3), id)
	assert.False(t, p.Contains(3))
	assert.True(t, p.Contains(2))
}

// TestAudit85SubBlocksAreDistinct: the sub-blocks of one hash ID are
// distinct contents, in the trace and in the manager. 256-token blocks,
// capacity 3: r0 [1] computes 1's halves a and b, released b first; r1
// [2] takes the free block and evicts b; r2 [1] hits a and misses b,
// evicting one of 2's halves.
func TestAudit85SubBlocksAreDistinct(t *testing.T) {
	reqs := []bench.Request{{HashIDs: []int64{1}}, {HashIDs: []int64{2}}, {HashIDs: []int64{1}}}
	tr, err := bench.CacheTraceFromHashes(reqs, 256)
	require.NoError(t, err)
	assert.Equal(t, 4, tr.Distinct())
	r, err := tr.Replay("lru", eviction.NewLRU, 3)
	require.NoError(t, err)
	assert.Equal(t, int64(1), r.Hits)
	assert.Equal(t, uint64(2), r.Evictions)
}

// TestAudit85TokenBlockSizeBound: CacheTraceFromTokens takes block sizes
// in [1, 2^20], the upper bound included.
func TestAudit85TokenBlockSizeBound(t *testing.T) {
	_, err := bench.CacheTraceFromTokens(nil, 1<<20)
	require.NoError(t, err, "a block of 2^20 tokens")
	_, err = bench.CacheTraceFromTokens(nil, 1<<20+1)
	require.ErrorIs(t, err, bench.ErrCacheStudy)
}

// TestAudit85EmptyRequests: a trace without references has a maximum hit
// rate of 0, not 0/0, and a request without hash IDs is skipped by the
// replay: not replayed, not counted.
func TestAudit85EmptyRequests(t *testing.T) {
	empty, err := bench.CacheTraceFromHashes(nil, bench.MooncakeBlockSize)
	require.NoError(t, err)
	assert.Zero(t, empty.MaxHitRate())
	tr := hashTrace(t, []int64{1}, nil, []int64{1}, []int64{})
	assert.Equal(t, 4, tr.Requests())
	r, err := tr.Replay("lru", eviction.NewLRU, 2)
	require.NoError(t, err)
	assert.Equal(t, 2, r.Requests)
	assert.Equal(t, int64(1), r.Hits)
	assert.InDelta(t, 0.5, r.HitRate, 1e-12)
}

// TestAudit85HostTierCounts: host hits with a host tier of a single block,
// host evictions counted apart from the device's, and an oversize
// request's failed lookup, which counts a host hit in the manager, not
// credited to the request after it.
func TestAudit85HostTierCounts(t *testing.T) {
	lru := bench.CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	// One device block, one host block: 1 goes to the host when 2
	// comes and is onboarded by r2 (the one hit); the device gives up a
	// block for each of r1 to r4, and the host, full, gives one up when
	// r4's eviction offloads 3.
	tr := hashTrace(t, []int64{1}, []int64{2}, []int64{1}, []int64{3}, []int64{4})
	r, err := tr.ReplayPolicy(lru, 1, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(1), r.Hits)
	assert.Equal(t, int64(1), r.HostHits)
	assert.InDelta(t, 0.2, r.HostHitRate, 1e-12)
	assert.Zero(t, r.DeviceHitRate)
	assert.Equal(t, uint64(4), r.Evictions)
	assert.Equal(t, uint64(1), r.HostEvictions)

	// r2 is too long for one device block: it never runs, whatever its
	// lookup found on the host; r3 hits nothing.
	tr = hashTrace(t, []int64{1}, []int64{2}, []int64{1, 5}, []int64{3})
	r, err = tr.ReplayPolicy(lru, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Oversize)
	assert.Zero(t, r.Hits)
	assert.Zero(t, r.HostHits)
	assert.Zero(t, r.HostHitRate)
}

// TestAudit85TieredTable: results with a host tier print every cell as
// "combined (device + host)" and the host tier in the header.
func TestAudit85TieredTable(t *testing.T) {
	var b strings.Builder
	require.NoError(t, bench.WriteCacheTable(&b, []bench.CacheResult{
		{Policy: "lru", CapacityTokens: 1000, CapacityBlocks: 2, HostTokens: 8000, HostBlocks: 16,
			HitRate: 0.3, DeviceHitRate: 0.2, HostHitRate: 0.1, MaxHitRate: 0.5},
	}))
	assert.Equal(t, `| policy | 1,000 tokens (2 blocks) + host 8,000 |
|---|---:|
| lru | 0.300 (0.200 + 0.100) |
| infinite cache | 0.500 |

1,000 tokens: best lru 0.300, +0.000 over lru (+0.0%), 60% of the maximum
`, b.String())
}

// TestAudit85StudyDriver: RunCacheStudy takes a capacity of exactly one
// block, calls Progress once per replay, and returns a replay's error
// (here the queue model's refusal) instead of its empty result.
func TestAudit85StudyDriver(t *testing.T) {
	tr := hashTrace(t, []int64{1}, []int64{1})
	pols, err := bench.CachePolicies([]string{"lru", "belady"})
	require.NoError(t, err)
	var calls atomic.Int32
	cfg := bench.CacheStudyConfig{
		Trace: tr, Policies: pols, CapacityTokens: []int64{bench.MooncakeBlockSize, 4 * bench.MooncakeBlockSize},
		Workers: 2, Progress: func() { calls.Add(1) },
	}
	res, err := bench.RunCacheStudy(cfg)
	require.NoError(t, err, "one block is room enough")
	require.Len(t, res, 4)
	assert.Equal(t, 1, res[0].CapacityBlocks)
	assert.Equal(t, int64(1), res[0].Hits)
	assert.Equal(t, int32(4), calls.Load())

	cfg.Queue = &bench.QueueModel{Load: -1}
	_, err = bench.RunCacheStudy(cfg)
	require.ErrorIs(t, err, bench.ErrCacheStudy)
	require.ErrorContains(t, err, "queue load")
}

// TestAudit85ConversationOwners: a block's owner is the conversation that
// introduced it, and a request's first block (a system prompt) owns
// nothing, even when a later request holds that ID deeper.
func TestAudit85ConversationOwners(t *testing.T) {
	reqs := idReqs(
		[]int64{0, 1, 2}, // 0: new
		[]int64{0, 3, 4}, // 1: new
		[]int64{0, 1, 4}, // 2: 4 is deeper than 1, and 1's: joins 1, 1 stays 0's
		[]int64{0, 1},    // 3: 1 was introduced by 0
		[]int64{7, 8},    // 4: new
		[]int64{9, 7},    // 5: 7 was only ever a first block: new
	)
	assert.Equal(t, []int{0, 1, 1, 0, 2, 3}, bench.Conversations(reqs))
}
