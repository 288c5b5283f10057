package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit173IdleStepDropsProposals: drafts proposed for a request that
// is cancelled before the next step are used by no step. The next
// Schedule, idle (nothing runs or waits), drops them: afterwards every
// proposed draft is accounted for (accepted, rejected or dropped). Kept
// (M5072), they stayed proposed and uncounted until a later busy step,
// which an idle server may never run.
func TestAudit173IdleStepDropsProposals(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16})
	s, err := sched.New(m, sched.Config{MaxDrafts: 4})
	require.NoError(t, err)
	r, err := s.Submit(counting(5, 1), sched.Options{MaxTokens: 10})
	require.NoError(t, err)
	stepOnce(t, s, 7) // the prompt, and its first token
	require.NoError(t, s.Propose(r, 0, []int32{1, 2, 3}))
	require.NoError(t, s.Cancel(r))
	require.False(t, s.Busy())
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Empty(t, st.Scheduled)
	ss := s.Stats()
	assert.Equal(t, int64(3), ss.DraftsProposed)
	assert.Equal(t, ss.DraftsProposed, ss.DraftsAccepted+ss.DraftsRejected+ss.DraftsDropped, "%+v", ss)
}

// TestAudit173BeamSwapInWaitsForEveryBeam: TestBeamSwapInWaitsForTheirNextTokens
// with room for one beam's next block but not the other's. Blocks of 4,
// 8 usable, Priority under Swap: a 2-beam search of a 3-token prompt
// (priority 1) is swapped out at step 5 by two 2-token requests of
// priority 0 (5 and 14 outputs). Once the first of them ends, the pool
// holds the beams' blocks and one more, which the beams' tokens at
// positions 6 and 7 do not need but those at 8 (a new block each, beside
// the second request's) do: the swap-in waits until the second request
// ends, and the beams are swapped out once. With one beam's block left
// out of the count (M5083) they were swapped in at step 7 and out again
// at step 9, their KV sent to the host twice.
func TestAudit173BeamSwapInWaitsForEveryBeam(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 8, HostBlocks: 64, DisableOffload: true, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 8, Policy: sched.Priority, Preemption: sched.Swap})
	require.NoError(t, err)
	b, err := s.Submit(counting(3, 1), sched.Options{MaxTokens: 9, BeamWidth: 2, Priority: 1})
	require.NoError(t, err)
	var tokens []int32
	parents := make([]int, 0, 8)
	for step := 1; s.Busy(); step++ {
		require.Less(t, step, 400, "no progress")
		if step == 2 {
			for _, c := range []struct{ base, max int }{{100, 5}, {200, 14}} {
				_, err = s.Submit(counting(2, c.base), sched.Options{MaxTokens: c.max})
				require.NoError(t, err)
			}
		}
		tokens, parents = ownParents(beamStep(t, s), tokens, parents)
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	require.Equal(t, sched.Finished, b.State(), "%v", b.Err())
	st := s.Stats()
	assert.EqualValues(t, 3, st.Finished)
	assert.Zero(t, st.Restarts, "the beam search restarted")
	assert.EqualValues(t, 2, st.SwappedOut, "beams swapped out")
}
