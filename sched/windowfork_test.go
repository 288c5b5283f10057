package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestChunkedForkingPromptBesideWindowProgress: a two-sample prompt (the
// higher priority) computed in chunks beside a longer one-sample prompt,
// in a pool with a sliding-window and a State group that holds either
// prompt but not both with the forks' state pages. Admission's set-aside
// for the forks counted the blocks the full attention group's chunks still
// take but not the window group's: the long prompt was admitted into the
// room of the forks, the forking prompt's last chunk took a window block,
// its fork found no room and it went back to be recomputed; the long
// prompt, the Priority policy's victim, could not grow beside the forking
// prompt's next first chunk and went back too, and so on forever (the
// state machine found it: seed 15356425213764655632, -rapid.steps=200).
// The set-aside now holds the window group's blocks to come too.
func TestChunkedForkingPromptBesideWindowProgress(t *testing.T) {
	for _, policy := range []sched.Policy{sched.FCFS, sched.Priority} {
		for _, admitFirst := range []bool{false, true} {
			for nb := 9; nb <= 12; nb++ {
				m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: nb, DisablePrefixCaching: true,
					Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 5}, {Kind: paged.State, Pages: 1}}})
				s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 2, AdmitFirst: admitFirst, Policy: policy})
				require.NoError(t, err)
				long, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, sched.Options{MaxTokens: 1, Priority: 3})
				require.NoError(t, err)
				var forking *sched.Request
				for steps := 0; s.Busy(); steps++ {
					if steps == 1 {
						forking, err = s.Submit([]int32{21, 22, 23, 24, 25, 26}, sched.Options{MaxTokens: 10, Priority: 2, N: 2})
						require.NoError(t, err)
					}
					if steps >= 300 {
						t.Fatalf("policy %v admitFirst %v nb %d: no progress (requests %v, %v; %d preemptions)",
							policy, admitFirst, nb, long.State(), forking.State(), s.Stats().Preemptions)
					}
					stepOnce(t, s, 7)
				}
				require.Equal(t, sched.Finished, long.State(), "policy %v admitFirst %v nb %d: %v", policy, admitFirst, nb, long.Err())
				require.Equal(t, sched.Finished, forking.State(), "policy %v admitFirst %v nb %d: %v", policy, admitFirst, nb, forking.Err())
			}
		}
	}
}
