package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkVictimsCountParkedBlocks: the step that completes a forking
// prompt preempts victims for its forks' state pages (forkVictims) only
// as far as the forks need. Blocks of 4, a State group of one page, 9
// usable blocks, no watermark, the Priority policy, admissions first.
// Request 1 (priority 1, 3 samples of a 6-token prompt) runs forked: its
// samples share the prompt's last block, which the first two samples'
// decodes copy (copy-on-write) in step 2. Request 2 (priority 0, 3
// samples of 4 tokens) is admitted in step 2 and completes there: its
// forks need 2 pages and the decodes left none. The first victim,
// request 1's sample 2, frees its state page and the shared block, whose
// last holder it was; but the two copies read that block in this step,
// so the manager parks it until the step ends (paged.Copy), before the
// Update forks. Counting only the free blocks, forkVictims saw 1 of 2 and
// preempted sample 1 as well; the forks fit beside sample 1 (a run that
// stopped after the first victim forked request 2 at that Update). Now
// the parked blocks count (paged.Stats.ParkedBlocks).
func TestForkVictimsCountParkedBlocks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 10, DisablePrefixCaching: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	type pre struct {
		step   int64
		req    uint64
		sample int
	}
	var preempted []pre
	step := int64(1) // Step.Number of the step being scheduled
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, AdmitFirst: true, MaxRunning: 8, Hooks: sched.Hooks{
		Preempted: func(r *sched.Request, i int, _ bool) { preempted = append(preempted, pre{step, r.ID(), i}) },
	}})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3, 4, 5, 6}, sched.Options{MaxTokens: 10, N: 3, Priority: 1})
	require.NoError(t, err)
	var b *sched.Request
	var tokens []int32
	for ; s.Busy(); step++ {
		require.Less(t, step, int64(100), "no progress")
		if step == 2 {
			b, err = s.Submit([]int32{21, 22, 23, 24}, sched.Options{MaxTokens: 2, N: 3})
			require.NoError(t, err)
		}
		st, err := s.Schedule()
		require.NoError(t, err)
		tokens = tokens[:0]
		for range st.Outputs {
			tokens = append(tokens, 7)
		}
		require.NoError(t, s.Update(tokens))
		require.NoError(t, m.Check())
		if step == 2 {
			require.Equal(t, 3, b.Samples(), "request 2 forked in the step that completed its prompt")
		}
	}
	require.Equal(t, sched.Finished, a.State())
	require.Equal(t, sched.Finished, b.State())
	var inStep []pre
	for _, p := range preempted {
		if p.step == 2 {
			inStep = append(inStep, p)
		}
	}
	require.Equal(t, []pre{{2, 1, 2}}, inStep, "one victim makes room for the forks")
}
