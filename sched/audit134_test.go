package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit134AbortedAloneAdmitsTheHead: a request that cannot grow even
// alone is aborted in the decode phase; the running list, swept at once,
// is empty, so the same step admits the head of the queue that waited
// for the running limit (the step does not run nothing).
func TestAudit134AbortedAloneAdmitsTheHead(t *testing.T) {
	m := newManager(t, twoGroups(2, 7))
	ext, err := m.Add([]int32{7, 7}, nil)
	require.NoError(t, err)
	_, err = m.Admit(ext)
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{MaxRunning: 1})
	require.NoError(t, err)
	bad, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	next, err := s.Submit([]int32{3}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	for steps := 0; bad.State() != sched.Aborted; steps++ {
		require.Less(t, steps, 20, "never aborted")
		st, err := s.Schedule()
		require.NoError(t, err)
		if bad.State() == sched.Aborted {
			require.Len(t, st.Scheduled, 1, "the step that aborts admits the head")
			assert.Equal(t, next, st.Scheduled[0].Request)
		}
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
		require.NoError(t, m.Check())
	}
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, next.State())
}

// TestAudit134CancelAfterAFailedSchedule: a Schedule that fails because
// the manager broke its contract (a sequence of the scheduler's freed
// behind its back) ends the step: the caller may still cancel its
// requests, which is no call from inside Schedule.
func TestAudit134CancelAfterAFailedSchedule(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 16})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 8})
	require.NoError(t, err)
	b, err := s.Submit([]int32{4, 5, 6}, sched.Options{MaxTokens: 8})
	require.NoError(t, err)
	stepOnce(t, s, 1)
	require.NoError(t, m.Free(a.Seq(0)))
	_, err = s.Schedule()
	require.Error(t, err)
	require.NotErrorIs(t, err, sched.ErrInvalid)
	require.NoError(t, s.Cancel(b))
	assert.Equal(t, sched.Cancelled, b.State())
}
