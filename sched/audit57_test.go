package sched_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

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

// a57HitsStepCheckpoint: the hit of cached tokens the manager finds for
// waiting sequence seq after the step ends at a state checkpoint the
// step itself takes (Step.Checkpoints, committed by TakeCheckpoints once
// the admission phase is over): the state there is computed by this
// step, so the admission phase could not count it, and seq may not have
// fitted without it.
func a57HitsStepCheckpoint(d *a46Side, st *sched.Step, seq paged.SeqID, cached int) bool {
	if cached == 0 {
		return false
	}
	toks, err := d.m.Tokens(seq)
	if err != nil || len(toks) < cached {
		return false
	}
	for _, c := range st.Checkpoints {
		if c.Tokens != cached {
			continue
		}
		w, err := d.m.Tokens(c.Seq)
		if err == nil && len(w) >= cached && slices.Equal(w[:cached], toks[:cached]) {
			return true
		}
	}
	return false
}

// a57CheckHeadWaits: a step that ends with budget and a running slot left
// and every waiting sequence admissible now within that budget
// (paged.Manager.CanAdmitCached: its uncached tokens) left the head of
// the queue waiting though it fitted (audit 57's rule: the budget covers
// the uncached tokens). Checked where the admission phase is the step's
// last word on the pool and the head is one sequence: no AdmitFirst, no
// chunked prefill, no preemption in the step, no request of several
// samples or beams (their set-asides), no sequence in the host tier,
// and no waiting sequence whose hit ends at a checkpoint the step takes
// (a57HitsStepCheckpoint).
func a57CheckHeadWaits(t *rapid.T, d *a46Side, st *sched.Step) {
	cfg := d.s.Config()
	if cfg.AdmitFirst || cfg.ChunkedPrefill || st.Preempted > 0 || d.s.Waiting() == 0 || d.s.Running() >= cfg.MaxRunning {
		return
	}
	left := cfg.MaxBatchTokens - st.Tokens
	seen := 0
	for _, r := range d.reqs {
		if r.State().Done() {
			continue
		}
		if r.N() > 1 || r.BeamWidth() > 0 {
			return // its samples' slots are set aside from its admission
		}
		if r.State() == sched.Running {
			continue
		}
		seen++
		seq := r.Seq(0)
		a, cached, err := d.m.CanAdmitCached(seq)
		if err != nil {
			return // swapped out, or not the manager's waiting sequence
		}
		n, _ := d.m.Len(seq)
		if a != paged.AdmitOK || n-cached > left {
			return // this one may be the head, refused
		}
		if a57HitsStepCheckpoint(d, st, seq, cached) {
			return // its hit is a state this step writes
		}
	}
	if seen != d.s.Waiting() {
		return
	}
	t.Fatalf("step %d left %d waiting with %d of the budget and %d of %d running slots, though every one fits now", st.Number, d.s.Waiting(), left, cfg.MaxRunning-d.s.Running(), cfg.MaxRunning)
}
