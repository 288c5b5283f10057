package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit26SwappedInDraftsLeaveDecodes: with AdmitFirst, a sample
// swapped in at the start of a step verifies its drafts within the budget
// less one token for each running sequence decoded after it in the step
// (Propose), so drafts never take another sequence's decode. Its drafts
// took the budget less one (five one-token requests, four tokens a step,
// three drafts proposed for every sample every step): a running sequence
// was left out of the step.
func TestAudit26SwappedInDraftsLeaveDecodes(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 6, HostBlocks: 30})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 4, Preemption: sched.Swap, AdmitFirst: true, MaxDrafts: 3})
	require.NoError(t, err)
	var rs []*sched.Request
	for i := range 5 {
		r, err := s.Submit([]int32{int32(10*i + 1)}, sched.Options{MaxTokens: 4})
		require.NoError(t, err)
		rs = append(rs, r)
	}
	swappedIn := 0
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, 100)
		st, err := s.Schedule()
		require.NoError(t, err)
		drafting := false
		in := map[paged.SeqID]bool{}
		for _, sc := range st.Scheduled {
			in[sc.Seq] = true
			drafting = drafting || sc.Admitted && len(sc.Drafts) > 0
		}
		if drafting {
			swappedIn++
			for _, r := range rs {
				if id := r.Seq(0); id != 0 && !in[id] {
					run, err := m.Running(id)
					require.NoError(t, err)
					require.False(t, run, "step %d: request %d runs but does not decode beside a swapped-in sample's drafts (%d tokens)", st.Number, r.ID(), st.Tokens)
				}
			}
		}
		out := make([]int32, st.Outputs)
		for i := range out {
			out[i] = 1
		}
		require.NoError(t, s.UpdateSpeculative(out, make([]int, len(st.Scheduled)), nil))
		require.NoError(t, m.Check())
		for _, r := range rs {
			if !r.State().Done() && r.Outputs(0) > 0 {
				// (A sample waiting to recompute has no token to follow.)
				if err := s.Propose(r, 0, []int32{5, 5, 5}); err != nil {
					require.ErrorIs(t, err, sched.ErrInvalid)
				}
			}
		}
	}
	require.Positive(t, swappedIn, "no sample swapped in with drafts")
	for _, r := range rs {
		require.Equal(t, sched.Finished, r.State())
	}
}
