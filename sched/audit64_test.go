package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit64VictimGivesBackItsTokens: a victim scheduled earlier in the
// step gives its tokens back to the step's budget, for the sequences
// after it. With AdmitFirst and the Priority policy, request v (priority
// 9, a prompt of 7 tokens) is admitted into the last two free blocks;
// then w's decode needs a block, v is the victim, taken back and
// preempted, and w and x decode: two tokens of a budget of 8. Without the
// refund the budget left after v's admission (1) ran out at w, and x
// waited a step for nothing (M914).
func TestAudit64VictimGivesBackItsTokens(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 5})
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, AdmitFirst: true, MaxBatchTokens: 8, MaxRunning: 8})
	require.NoError(t, err)
	w, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	x, err := s.Submit([]int32{11, 12, 13}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	tok := int32(1000)
	stepOwnTokens(t, s, &tok) // both prompts: two blocks of four
	v, err := s.Submit([]int32{21, 22, 23, 24, 25, 26, 27}, sched.Options{MaxTokens: 1, Priority: 9})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	var got []uint64
	for _, sc := range st.Scheduled {
		got = append(got, sc.Request.ID())
	}
	assert.Equal(t, []uint64{w.ID(), x.ID()}, got, "w and x decode; v, admitted and then the victim, is taken back")
	assert.Equal(t, 2, st.Tokens)
	assert.Equal(t, 1, st.Preempted)
	assert.Equal(t, sched.Preempted, v.State())
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	require.NoError(t, m.Check())
}
