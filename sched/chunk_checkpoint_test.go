package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestChunkedPrefillStateCheckpoint: a Qwen3-Next-like manager (full
// attention and a state group) behind a scheduler with chunked prefill in
// 8192-token steps. Four requests share a 20-block prefix (block size
// 512), longer than a step: the second one's branch point lies past its
// first chunk, and its checkpoint, handed out with the step whose chunk
// reaches it (Step.Checkpoints), gives the third and fourth a hit of the
// whole prefix (before, no checkpoint was taken and nothing hit).
func TestChunkedPrefillStateCheckpoint(t *testing.T) {
	const bs, shared = 512, 20 * 512
	m := newManager(t, paged.Config{BlockSize: bs, NumBlocks: 256,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 8192, ChunkedPrefill: true})
	require.NoError(t, err)
	var cks []paged.Checkpoint
	for i := range 4 {
		p := make([]int32, shared+700)
		for k := range p {
			p[k] = int32(k + 1)
			if k >= shared {
				p[k] += int32(100000 * (i + 1))
			}
		}
		r, err := s.Submit(p, sched.Options{MaxTokens: 1})
		require.NoError(t, err)
		var tokens []int32
		for s.Busy() {
			st, err := s.Schedule()
			require.NoError(t, err)
			m.TakeCopies(nil)
			cks = append(cks, st.Checkpoints...)
			tokens = tokens[:0]
			for range st.Outputs {
				tokens = append(tokens, 7)
			}
			require.NoError(t, s.Update(tokens))
			require.NoError(t, m.Check())
		}
		if i >= 2 {
			assert.Equal(t, shared, r.Cached(), "request %d", i)
		} else {
			assert.Zero(t, r.Cached(), "request %d", i)
		}
	}
	require.Len(t, cks, 1)
	assert.Equal(t, shared, cks[0].Tokens)
	assert.Equal(t, uint64(2*shared), m.Stats().PrefixHitTokens)
}
