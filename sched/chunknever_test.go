package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestChunkedPrefillHybridLongPrompt: a Gemma-3-like manager (a
// full-attention group and five window groups of 8 tokens, blocks of 4)
// with a pool of 40 usable blocks, behind a scheduler with chunked
// prefill in 8-token steps. A 64-token prompt takes 96 blocks admitted
// whole but at most 36 computed 8 tokens a step: it is served to the end
// (Finished, every token generated), with or without CheckBeforeAdmit,
// and Check passes after every step. Before paged's fix AdmitChunk called
// it never and the scheduler aborted it at its first step.
func TestChunkedPrefillHybridLongPrompt(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for range 5 {
		groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 8})
	}
	for _, check := range []bool{false, true} {
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 41, Groups: groups})
		s, err := sched.New(m, sched.Config{MaxBatchTokens: 8, ChunkedPrefill: true, CheckBeforeAdmit: check})
		require.NoError(t, err)
		p := make([]int32, 64)
		for k := range p {
			p[k] = int32(k + 1)
		}
		r, err := s.Submit(p, sched.Options{MaxTokens: 5})
		require.NoError(t, err)
		steps := 0
		for s.Busy() {
			st, err := s.Schedule()
			require.NoError(t, err)
			tokens := make([]int32, st.Outputs)
			for i := range tokens {
				tokens[i] = 7
			}
			require.NoError(t, s.Update(tokens))
			require.NoError(t, m.Check())
			steps++
			require.Less(t, steps, 100)
		}
		require.NoError(t, r.Err(), "CheckBeforeAdmit %v", check)
		assert.Equal(t, sched.Finished, r.State(), "CheckBeforeAdmit %v", check)
		assert.Equal(t, 5, r.Outputs(0), "CheckBeforeAdmit %v", check)
		assert.Zero(t, s.Stats().Aborted)
		assert.LessOrEqual(t, m.Stats().PeakUsedBlocks, 40)
	}
}
