package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkLastTokenAloneAtTheEdge: a forking prompt within Submit's bound
// (paged.Manager.PrefillFloor in chunks: its last token computed alone,
// when the window group holds one block) forks and finishes alone in the
// pool. The scheduler computed the prompt in chunks of a step's budget,
// whose last one holds a block or three more of the window: the forks'
// set-aside refused the admission every step and the request was
// aborted as one that "does not fit an empty pool" (16 tokens in chunks
// of 4 or 16, 12 blocks), or its prompt ran and the fork failed at the
// Update (12 tokens in chunks of 4, 11 blocks). The scheduler now leaves
// the last token to a step of its own where the forks fit only so.
func TestForkLastTokenAloneAtTheEdge(t *testing.T) {
	for _, tc := range []struct{ p, budget, blocks int }{
		{16, 4, 12}, {16, 16, 12}, {16, 8, 12}, {12, 4, 11}, {12, 12, 11}, {13, 4, 13}, {14, 5, 13}, {20, 6, 14},
	} {
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: tc.blocks, Groups: forkWindowLayout})
		floor, err := m.PrefillFloor(tc.p, nil, true)
		require.NoError(t, err)
		require.LessOrEqual(t, floor+3, tc.blocks-1, "%+v: the request must be within Submit's bound", tc)
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: tc.budget})
		require.NoError(t, err)
		prompt := make([]int32, tc.p)
		for i := range prompt {
			prompt[i] = int32(i + 1)
		}
		r, err := s.Submit(prompt, sched.Options{MaxTokens: 3, N: 2})
		require.NoError(t, err, "%+v", tc)
		drain(t, s, 7)
		assert.Equal(t, sched.Finished, r.State(), "%+v: %v", tc, r.Err())
		assert.EqualValues(t, 1, s.Stats().Forks, "%+v", tc)
		assert.Zero(t, m.Stats().UsedBlocks, "%+v", tc)
	}
}
