package sched_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit57BudgetCoversUncachedTokens: without chunked prefill a
// waiting prompt was admitted only when what was left of the step's
// budget covered the whole prompt, its cached prefix included, though
// the docs (and vLLM v1, which compares the tokens left after its prefix
// lookup) say the uncached tokens. With decodes taking part of every
// step's budget, a long prompt that is mostly cached waited until the
// running sequences finished. Blocks of 4, a budget of 12: request A
// (8 tokens) runs and finishes, its two blocks cached; two decoders
// (B1, B2) then take 2 tokens of every step. C, A's prompt and 3 more
// tokens (11 > the 10 left), must be admitted in the step after it is
// submitted, computing 3 tokens; D, 11 tokens with no hit, must wait.
// On every layout whose hit of A's prompt is whole: no groups, a window
// of 4 beside full attention, a chunked-local group of 8.
func TestAudit57BudgetCoversUncachedTokens(t *testing.T) {
	layouts := [][]paged.Group{
		nil,
		{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}},
		{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 8}},
	}
	for i, layout := range layouts {
		for _, hit := range []bool{true, false} {
			t.Run(fmt.Sprintf("layout=%d/hit=%v", i, hit), func(t *testing.T) {
				m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64, Groups: layout})
				s, err := sched.New(m, sched.Config{MaxRunning: 8, MaxBatchTokens: 12})
				require.NoError(t, err)
				tok := int32(1000)
				a := []int32{1, 2, 3, 4, 5, 6, 7, 8}
				ra, err := s.Submit(a, sched.Options{MaxTokens: 1})
				require.NoError(t, err)
				for s.Busy() {
					st, err := s.Schedule()
					require.NoError(t, err)
					a46Update(t, s, st, &tok)
				}
				require.True(t, ra.State().Done())
				for _, p := range [][]int32{{50, 51}, {60, 61}} {
					_, err := s.Submit(p, sched.Options{MaxTokens: 10})
					require.NoError(t, err)
				}
				for range 2 { // admitted, then decoding
					st, err := s.Schedule()
					require.NoError(t, err)
					a46Update(t, s, st, &tok)
				}
				c := append(append([]int32(nil), a...), 97, 98, 99)
				if !hit {
					c = []int32{70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80}
				}
				rc, err := s.Submit(c, sched.Options{MaxTokens: 2})
				require.NoError(t, err)
				st, err := s.Schedule()
				require.NoError(t, err)
				var got *sched.Scheduled
				for k := range st.Scheduled {
					if st.Scheduled[k].Request == rc {
						got = &st.Scheduled[k]
					}
				}
				require.Equal(t, 2, len(st.Scheduled)-btoi(got != nil), "the decoders run")
				if !hit {
					require.Nil(t, got, "11 uncached tokens admitted with 10 of the budget left")
					require.LessOrEqual(t, st.Tokens, 12)
					return
				}
				require.NotNil(t, got, "a prompt of 11 tokens, 8 cached, waited with 10 of the budget left")
				require.Equal(t, 8, got.Cached)
				require.Equal(t, 3, got.NewTokens)
				require.Equal(t, 5, st.Tokens)
				a46Update(t, s, st, &tok)
			})
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
