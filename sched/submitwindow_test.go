package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestSubmitWindowedPastThePool: a sequence with a sliding window
// (paged.SeqOptions.Window) holds only the blocks its window spans and
// may grow past what the pool holds (to MaxModelLen), but Submit counted
// a block for every token of its KV, as without a window, and refused it
// with ErrNever: 43 tokens of KV are 22 blocks of 2, the pool has 8, the
// window of 4 spans 3. It is served now, whole or in chunks, recomputed
// or swapped. A window the pool cannot hold is still refused, changing
// nothing.
func TestSubmitWindowedPastThePool(t *testing.T) {
	for _, cfg := range []sched.Config{{}, {ChunkedPrefill: true, MaxBatchTokens: 2}, {Preemption: sched.Swap}} {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, MaxModelLen: 64, HostBlocks: 16})
		s, err := sched.New(m, cfg)
		require.NoError(t, err)
		r, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 40, Seq: &paged.SeqOptions{Window: 4}})
		require.NoError(t, err, "%+v", cfg)
		other, err := s.Submit([]int32{5, 6, 7}, sched.Options{MaxTokens: 6})
		require.NoError(t, err)
		drain(t, s, 5)
		assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
		assert.Equal(t, 40, r.Outputs(0))
		assert.Equal(t, sched.Finished, other.State(), "%v", other.Err())

		// A window of 20 spans 10 blocks of 2 (11 where it does not
		// start a block): more than the pool's 8.
		r, err = s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 40, Seq: &paged.SeqOptions{Window: 20}})
		require.ErrorIs(t, err, sched.ErrNever)
		assert.Nil(t, r)
		assert.Zero(t, m.Stats().Sequences, "nothing added")
	}
}
