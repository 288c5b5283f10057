package sched_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
	"github.com/stretchr/testify/require"
)

// TestAudit42PriorityTiesGoInSubmissionOrder: under the Priority policy,
// requests of the same priority are admitted in the order they were
// submitted (FCFS within a level), one a step here (MaxRunning 1). A
// queue that broke ties the other way would serve the newest first
// (M196; every earlier test used distinct priorities).
func TestAudit42PriorityTiesGoInSubmissionOrder(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 16})
	var admitted []uint64
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, MaxRunning: 1, Hooks: sched.Hooks{
		Scheduled: func(sc *sched.Scheduled) {
			if sc.Admitted {
				admitted = append(admitted, sc.Request.ID())
			}
		},
	}})
	require.NoError(t, err)
	var want []uint64
	for i := range int32(4) {
		r, err := s.Submit([]int32{10 * i, 1, 2}, sched.Options{MaxTokens: 2, Priority: 3})
		require.NoError(t, err)
		want = append(want, r.ID())
	}
	drain(t, s, 2)
	require.Equal(t, want, admitted, "admission order of four requests of one priority")
}

// TestAudit42LastingPinsDoNotHoldTheQueue: a request that does not fit
// the pool beside prefix pins that never end (until 0, Lasting) is
// aborted with ErrNever at once, as in an empty pool: waiting for those
// pins would wait forever. (Pins that end make it wait; M201, which
// counted lasting pins as pins that end, kept it waiting.)
func TestAudit42LastingPinsDoNotHoldTheQueue(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 8})
	cached := []int32{51, 52, 53, 54, 55, 56, 57, 58}
	id, _, err := m.Create(cached, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(id))
	require.NoError(t, m.SetPinBudget(4))
	_, held, err := m.Pin(cached, nil, 0)
	require.NoError(t, err)
	require.Equal(t, 8, held, "the pin holds the cached prompt")
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	for step := 0; s.Busy(); step++ {
		require.Less(t, step, 10, "the request still waits for pins that never end")
		st, err := s.Schedule()
		require.NoError(t, err)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
	}
	require.Equal(t, sched.Aborted, r.State())
	require.ErrorIs(t, r.Err(), sched.ErrNever)
}

// TestAudit42UnscheduledAdmissionIsNotResumed: Stats.ResumedTokens counts
// the prompt tokens recomputed for requests that had produced output
// (resumed after a preemption by recompute): with recompute preemption,
// the NewTokens of the step's admitted entries whose Generated is not 0.
// A request admitted for the first time (AdmitFirst) and then taken back
// as the Priority victim of a decode in the same step (unschedule) was
// never counted there, and must not be taken off it. Checked after every
// step of pools of several sizes where that happens (M205 took it off:
// ResumedTokens went below zero).
func TestAudit42UnscheduledAdmissionIsNotResumed(t *testing.T) {
	taken := 0 // first admissions taken back, over all pools
	for nb := 6; nb <= 14; nb++ {
		for plen := 1; plen <= 5; plen++ {
			m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb})
			s, err := sched.New(m, sched.Config{Policy: sched.Priority, AdmitFirst: true, Hooks: sched.Hooks{
				Preempted: func(r *sched.Request, i int, _ bool) {
					if r.Outputs(i) == 0 {
						taken++
					}
				},
			}})
			require.NoError(t, err)
			for i := range int32(6) {
				prompt := []int32{100 * i, 1, 2, 3, 4}[:plen]
				_, err := s.Submit(prompt, sched.Options{MaxTokens: nb - plen, Priority: int(i)})
				require.NoError(t, err)
			}
			var want int64
			for step := 0; s.Busy(); step++ {
				require.Less(t, step, 1000)
				st, err := s.Schedule()
				require.NoError(t, err)
				for _, sc := range st.Scheduled {
					if sc.Admitted && sc.Generated > 0 {
						want += int64(sc.NewTokens)
					}
				}
				require.Equal(t, want, s.Stats().ResumedTokens, "pool of %d blocks, step %d", nb, step)
				out := make([]int32, st.Outputs)
				for i := range out {
					out[i] = 7
				}
				require.NoError(t, s.Update(out))
			}
		}
	}
	require.Positive(t, taken, "no first admission was taken back: the test checks nothing")
}
