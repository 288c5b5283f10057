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
// (M190; every earlier test used distinct priorities).
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
