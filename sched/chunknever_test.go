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
		runToEnd(t, s, m, 100)
		require.NoError(t, r.Err(), "CheckBeforeAdmit %v", check)
		assert.Equal(t, sched.Finished, r.State(), "CheckBeforeAdmit %v", check)
		assert.Equal(t, 5, r.Outputs(0), "CheckBeforeAdmit %v", check)
		assert.Zero(t, s.Stats().Aborted)
		assert.LessOrEqual(t, m.Stats().PeakUsedBlocks, 40)
	}
}

// A step's whole budget can be a chunk too large for the pool where a
// smaller one fits: with windows the peak of a chunked prefill grows
// with the chunk (paged judges never per chunk size). The layout of
// TestChunkedPrefillHybridLongPrompt: the 64-token prompt is never in
// chunks of 32 (a peak of 68 blocks in 40) but fits in chunks of 8. The scheduler shrinks the chunk instead of aborting, at
// admission (a prompt alone) and while growing (a prompt whose first chunk
// was small because another request took the budget, and whose later
// chunks would take the whole budget once alone).
func TestChunkedPrefillShrinksChunkToFit(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for range 5 {
		groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 8})
	}
	long := make([]int32, 64)
	for k := range long {
		long[k] = int32(k + 1)
	}
	for _, tc := range []struct {
		name   string
		check  bool
		budget int
		first  int // tokens of a request submitted before the long one
	}{
		{"alone", false, 32, 0},
		{"alone/CheckBeforeAdmit", true, 32, 0},
		// The short prompt leaves 8 tokens of the first step, a chunk
		// that fits; alone in the pool from the next step, the long
		// one's chunks take 16 tokens, which fit until its full
		// attention blocks grow: the chunk is then halved.
		{"after a short prompt", false, 16, 8},
		{"after a short prompt/CheckBeforeAdmit", true, 16, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 41, Groups: groups})
			s, err := sched.New(m, sched.Config{MaxBatchTokens: tc.budget, ChunkedPrefill: true, CheckBeforeAdmit: tc.check})
			require.NoError(t, err)
			var short *sched.Request
			if tc.first > 0 {
				p := make([]int32, tc.first)
				for k := range p {
					p[k] = int32(1000 + k)
				}
				short, err = s.Submit(p, sched.Options{MaxTokens: 1})
				require.NoError(t, err)
			}
			r, err := s.Submit(long, sched.Options{MaxTokens: 5})
			require.NoError(t, err)
			runToEnd(t, s, m, 200)
			require.NoError(t, r.Err())
			assert.Equal(t, sched.Finished, r.State())
			assert.Equal(t, 5, r.Outputs(0))
			if short != nil {
				assert.Equal(t, sched.Finished, short.State())
			}
			assert.Zero(t, s.Stats().Aborted)
			assert.LessOrEqual(t, m.Stats().PeakUsedBlocks, 40)
		})
	}
}

// runToEnd runs s until it is idle, every output token 7, checking m
// after every step, in fewer than limit steps.
func runToEnd(t *testing.T, s *sched.Scheduler, m *paged.Manager, limit int) {
	t.Helper()
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, limit)
		st, err := s.Schedule()
		require.NoError(t, err)
		tokens := make([]int32, st.Outputs)
		for i := range tokens {
			tokens[i] = 7
		}
		require.NoError(t, s.Update(tokens))
		require.NoError(t, m.Check())
	}
}
