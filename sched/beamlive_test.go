package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkingPromptPreemptsBeamsForItsForks: two beam searches under the
// Priority policy, in a pool with a sliding-window and a State group that
// runs either alone. The low-priority one runs; the high-priority one's
// prompt, computed in chunks beside it, preempts it for room, but it comes
// back beside the prompt's last chunk (admission sets aside the forks'
// state pages, not the room the beams' own decodes then take), and its
// beams' decodes took the pages the prompt's forks needed: the fork found
// no room, the prompt went back to be recomputed, preempted the beams
// again on its next admission, and the two restarted each other forever
// (the state machine found it in session 16). The step that completes a
// forking prompt now preempts victims in the policy's order for its forks'
// pages, as a decode does for its next block.
func TestForkingPromptPreemptsBeamsForItsForks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 3, NumBlocks: 24, DisableOffload: true, HostBlocks: 5,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 2}}})
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, Preemption: sched.Swap, ChunkedPrefill: true,
		AdmitFirst: true, MaxBatchTokens: 3, MaxRunning: 6})
	require.NoError(t, err)
	low, err := s.Submit([]int32{11, 12, 13}, sched.Options{MaxTokens: 13, Priority: 1, BeamWidth: 2})
	require.NoError(t, err)
	var high *sched.Request
	parents := make([]int, 0, 8)
	var tokens []int32
	tok := int32(1000)
	for steps := 0; s.Busy(); steps++ {
		if steps == 4 {
			high, err = s.Submit([]int32{11, 12, 13, 14, 15, 0, 3, 1, 3, 1, 0, 3, 3}, sched.Options{MaxTokens: 12, BeamWidth: 2})
			require.NoError(t, err)
		}
		if steps >= 1000 {
			t.Fatalf("no progress: %v, %v (%d preemptions, %d restarts)", low.State(), high.State(), s.Stats().Preemptions, s.Stats().Restarts)
		}
		st, err := s.Schedule()
		require.NoError(t, err)
		tokens, parents = tokens[:0], parents[:0]
		for _, sc := range st.Scheduled {
			for j := range sc.Outputs {
				tok++
				tokens = append(tokens, tok)
				parents = append(parents, sc.Sample+j)
			}
		}
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	require.Equal(t, sched.Finished, high.State(), "%v", high.Err())
	require.Equal(t, sched.Finished, low.State(), "%v", low.Err())
}
