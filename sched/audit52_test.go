package sched_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit52BeamGroupSwapsInAtExactlyTheBudget (M578, the seventh round
// of mutation testing, docs/testing.md): a swapped-out beam group comes
// back in a step whose token budget left equals what it needs (one
// pending token per beam). Requests d and c (priority 0) and a 2-beam
// search b (priority 1) share a pool of 10 blocks of 4 under
// MaxBatchTokens 4; when the pool runs out b is swapped out, and f (one
// prompt token, priority 0) is admitted in its place. Once c finishes,
// its blocks hold b, and d and f decode 2 of the step's 4 tokens: b needs
// the other 2 exactly. A swap-in that waited for a larger budget
// (M578: need >= budget) brought b back only when d or f had finished.
func TestAudit52BeamGroupSwapsInAtExactlyTheBudget(t *testing.T) {
	const width, budget = 2, 4
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 10, HostBlocks: 64, DisableOffload: true, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: budget, Policy: sched.Priority, Preemption: sched.Swap})
	require.NoError(t, err)
	d, err := s.Submit(counting(5, 100), sched.Options{MaxTokens: 24})
	require.NoError(t, err)
	c, err := s.Submit(counting(10, 200), sched.Options{MaxTokens: 6})
	require.NoError(t, err)
	b, err := s.Submit(counting(3, 1), sched.Options{MaxTokens: 12, BeamWidth: width, Priority: 1})
	require.NoError(t, err)
	var f *sched.Request
	var tokens []int32
	parents := make([]int, 0, 8)
	backAt, cDoneAt := 0, 0
	for step := 1; s.Busy(); step++ {
		require.Less(t, step, 200, "no progress")
		if f == nil && b.State() == sched.Preempted {
			f, err = s.Submit(counting(1, 300), sched.Options{MaxTokens: 24})
			require.NoError(t, err)
		}
		wasOut := b.State() == sched.Preempted
		st := beamStep(t, s)
		if cDoneAt == 0 && c.State() == sched.Finished {
			cDoneAt = step
		}
		if wasOut && backAt == 0 && b.State() == sched.Running {
			backAt = step
			others := 0
			for _, sc := range st.Scheduled {
				if sc.Request != b {
					others++
				}
			}
			assert.Equal(t, budget-width, others, "step %d: b swapped in beside %d decodes", step, others)
			assert.Equal(t, budget, st.Tokens, "step %d: b swapped in with budget to spare", step)
			assert.Equal(t, sched.Running, d.State(), "step %d: b came back only after d finished", step)
			assert.Equal(t, sched.Running, f.State(), "step %d: b came back only after f finished", step)
		}
		tokens, parents = ownParents(st, tokens, parents)
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	require.NotNil(t, f, "b was never swapped out: the test checks nothing")
	require.NotZero(t, backAt, "b never came back")
	t.Logf("c finished at step %d, b swapped in at step %d", cDoneAt, backAt)
	for _, r := range []*sched.Request{b, c, d, f} {
		require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
	}
	assert.Zero(t, s.Stats().Restarts, "the beam search restarted")
}
