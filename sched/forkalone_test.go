package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkAloneAfterFinishInSameUpdate: a prompt whose forks find no room
// for their state pages, with nothing else of the scheduler's running,
// is aborted at once (requeued, it would come back to the same point).
// The check counted the running list, which still held a request that
// finished earlier in the same Update (it is swept at the end): the
// prompt was requeued (a preemption), waited, and was aborted one step
// later. Here A's only output and B's prompt complete in one step, and
// the caller's own sequence C takes the room B's forks would need.
func TestForkAloneAfterFinishInSameUpdate(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 24,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 4}}})
	var log []string
	var a *sched.Request
	name := func(r *sched.Request) string {
		if r == a {
			return "A"
		}
		return "B"
	}
	s, err := sched.New(m, sched.Config{Hooks: sched.Hooks{
		Finished:  func(r *sched.Request, _ int) { log = append(log, "finished "+name(r)) },
		Preempted: func(r *sched.Request, _ int, _ bool) { log = append(log, "preempted "+name(r)) },
		Aborted:   func(r *sched.Request, _ error) { log = append(log, "aborted "+name(r)) },
	}})
	require.NoError(t, err)
	a, err = s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	b, err := s.Submit([]int32{11, 12, 13, 14, 15, 16, 17, 18}, sched.Options{MaxTokens: 2, N: 3})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 2, "A and B both admitted")
	// The caller's own sequence leaves one block free: with A's blocks
	// back, B's forks (8 state pages) still do not fit.
	ms := m.Stats()
	c, _, err := m.Create(seqOf32(100, (ms.FreeBlocks+ms.CachedBlocks-1-4)*4), nil)
	require.NoError(t, err)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	require.NoError(t, m.Check())
	assert.Equal(t, []string{"finished A", "aborted B"}, log, "B aborted in the Update where A finished, not requeued")
	assert.Equal(t, sched.Aborted, b.State())
	require.ErrorIs(t, b.Err(), sched.ErrNever)
	assert.Contains(t, b.Err().Error(), "nothing else running")
	assert.Zero(t, s.Stats().Preemptions)
	assert.False(t, s.Busy())
	require.NoError(t, m.Free(c))
	assert.Zero(t, m.Stats().UsedBlocks)
}

func seqOf32(from int32, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = from + int32(i)
	}
	return out
}
