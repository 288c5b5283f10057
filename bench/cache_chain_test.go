package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestCacheChainConversation pins the study's figures for the Chain
// policy: on the conversation trace's first half it is at least 1.25x LRU
// at the 5,859 blocks (it measures 1.28x; the target of
// 1.3x is not reached, see docs/cache.md), and on the synthetic trace it
// stays within 0.005 of LRU at the four default capacities. LFU, SIEVE and SLRU hit exactly
// the same references there (see docs/cache.md), and LeafLRU equals LRU
// in this replay, where chains are released tail first.
func TestCacheChainConversation(t *testing.T) {
	reqs, err := ReadTraceFile("traces/mooncake_conversation_first_half.jsonl", "mooncake")
	require.NoError(t, err)
	conv, err := CacheTraceFromHashes(reqs, MooncakeBlockSize)
	require.NoError(t, err)
	pols, err := CachePolicies([]string{"lru", "chain", "lfu", "sieve", "slru", "leaflru"})
	require.NoError(t, err)
	res, err := RunCacheStudy(CacheStudyConfig{Trace: conv, Policies: pols, CapacityTokens: []int64{3000000}})
	require.NoError(t, err)
	lru, chain := res[0], res[1]
	assert.InDelta(t, 0.1379, lru.HitRate, 0.0005, "the reference LRU figure")
	assert.GreaterOrEqual(t, chain.HitRate, 1.25*lru.HitRate)
	for _, r := range res[3:5] {
		assert.Equal(t, res[2].Hits, r.Hits, r.Policy)
	}
	assert.Equal(t, lru.Hits, res[5].Hits, "leaflru")

	syn, err := CacheTraceFromHashes(MooncakeSynthetic(), MooncakeBlockSize)
	require.NoError(t, err)
	res, err = RunCacheStudy(CacheStudyConfig{
		Trace:          syn,
		Policies:       []CachePolicy{{Name: "lru", Factory: eviction.NewLRU}, {Name: "chain", Factory: eviction.NewChain}},
		CapacityTokens: []int64{512000, 3000000, 5120000, 25600000},
	})
	require.NoError(t, err)
	for i := range 4 {
		assert.GreaterOrEqual(t, res[4+i].HitRate, res[i].HitRate-0.005, "capacity %d", res[i].CapacityTokens)
	}
}
