package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestLongestHitFallsBackServed: paged's TestLongestHitFallsBack through
// the scheduler. A 21-token prompt with its first 20 tokens cached
// (full attention, a Shared group and a window of 1 token, blocks of 2,
// 12 usable blocks) is never with that hit, in chunks of any size, and
// fits computed in chunks of 2 from a shorter hit. Before, the scheduler
// aborted it ("never admitted"); now it is served.
func TestLongestHitFallsBackServed(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 13,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared}, {Kind: paged.SlidingWindow, Window: 1}}})
	prompt := make([]int32, 21)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 2, ChunkedPrefill: true})
	require.NoError(t, err)
	first, err := s.Submit(prompt[:20], sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 5000)
	require.Equal(t, sched.Finished, first.State(), "the prefix, computed and freed: %v", first.Err())
	require.Positive(t, m.Stats().CachedBlocks)
	r, err := s.Submit(prompt, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 5000)
	assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
	assert.NoError(t, r.Err())
	assert.EqualValues(t, 1, m.Stats().HitFallbacks)
	require.NoError(t, m.Check())
}
