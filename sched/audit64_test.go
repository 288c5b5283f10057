package sched_test

import (
	"fmt"
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

// TestAudit64BeamsSwappedBackInOneStep: two beams alone in the pool
// beside prefix pins that expire (5 usable blocks, one pinned; the beams
// share their prompt's block and need 2 more each), out of blocks, are
// swapped out (the pins will end: no abort), swapped in again by the same
// step's admission (nothing runs), and, still short of a block,
// restarted: the beam scheduled before the first preemption was taken
// back then, and must not be taken back again (it panicked, index -1,
// when the taken-back entry kept its step, M921; ee3d2c8 fixed it from a
// state machine seed no longer reproducing it). Once the pins end the
// search finishes.
func TestAudit64BeamsSwappedBackInOneStep(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 6, HostBlocks: 64})
	pre := []int32{900, 901, 902, 903}
	id, _, err := m.Create(pre, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	m.EndStep()
	require.NoError(t, m.SetPinBudget(4))
	_, held, err := m.Pin(pre, nil, 1000)
	require.NoError(t, err)
	require.Equal(t, 4, held)
	var events []string
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap, MaxBatchTokens: 64, MaxRunning: 8, Hooks: sched.Hooks{
		Preempted: func(_ *sched.Request, i int, swapped bool) {
			events = append(events, fmt.Sprintf("preempted %d swapped %v", i, swapped))
		},
		Restarted: func(*sched.Request) { events = append(events, "restarted") },
	}})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{BeamWidth: 2, MaxTokens: 8})
	require.NoError(t, err)
	tok := int32(1000)
	for step := 1; len(events) == 0; step++ {
		require.Less(t, step, 20, "the beams never ran out of blocks")
		stepOwnTokens(t, s, &tok)
	}
	assert.Equal(t, []string{"preempted 0 swapped true", "preempted 1 swapped true", "restarted"}, events,
		"swapped out, swapped in and restarted in one step")
	m.Advance(1000) // the pins end
	for step := 0; s.Busy(); step++ {
		require.Less(t, step, 100, "no progress")
		stepOwnTokens(t, s, &tok)
	}
	assert.Equal(t, sched.Finished, r.State())
}

// TestAudit64CachedIsTheFirstAdmissions: Request.Cached reports the
// prompt tokens cached at the first admission, not at a readmission
// after a recompute preemption (which hits the blocks the request
// computed itself). Two requests of 8-token prompts in 5 usable blocks
// of 4 tokens: r, the newer, is preempted when both outgrow the pool,
// and comes back hitting its own prompt (M932).
func TestAudit64CachedIsTheFirstAdmissions(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 6})
	preempted := false
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 64, MaxRunning: 8, Hooks: sched.Hooks{
		Preempted: func(*sched.Request, int, bool) { preempted = true },
	}})
	require.NoError(t, err)
	q, err := s.Submit(seqOf32(1, 8), sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	r, err := s.Submit(seqOf32(100, 8), sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	tok := int32(1000)
	for step := 0; s.Busy(); step++ {
		require.Less(t, step, 50, "no progress")
		stepOwnTokens(t, s, &tok)
	}
	require.True(t, preempted, "the pool made r a victim")
	assert.Equal(t, sched.Finished, q.State())
	assert.Equal(t, sched.Finished, r.State())
	assert.Zero(t, r.Cached(), "nothing cached at its first admission")
	assert.Positive(t, s.Stats().CachedTokens, "its readmission hit its own prompt")
}

// TestAudit64SwapFailedDecodeResampled: a sequence preempted in the step
// that appended its decode token, by swap that the host tier cannot take
// (recompute, then), drops that token with ResampleAfterRecompute (its KV
// was never computed) and keeps every earlier output. Before the swap
// unchunk must leave a decode's token where it is: given back as a
// prompt chunk, the resample dropped the output before it instead, and
// the sequence held the token it was to draw again (here "[1 2 3 4 1002]"
// for the outputs 1001 then 1002, M927; TestStateMachine finds it in
// some runs). Blocks of 4 tokens, 3 usable, a host tier of 1 block; d
// (priority 9) runs first, a (priority 0) comes after, and d is the
// victim when both grow.
func TestAudit64SwapFailedDecodeResampled(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 4, HostBlocks: 1})
	given := map[uint64][]int32{}
	recomputed := 0
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, Preemption: sched.Swap, ResampleAfterRecompute: true,
		MaxBatchTokens: 64, MaxRunning: 8, Hooks: sched.Hooks{
			Preempted: func(r *sched.Request, _ int, swapped bool) {
				if !swapped { // its newest output is drawn again
					g := given[r.ID()]
					given[r.ID()] = g[:len(g)-1]
					recomputed++
				}
			},
		}})
	require.NoError(t, err)
	prompts := map[uint64][]int32{}
	d, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 8, Priority: 9})
	require.NoError(t, err)
	prompts[d.ID()] = []int32{1, 2, 3, 4}
	tok := int32(1000)
	var a *sched.Request
	for step := 0; s.Busy(); step++ {
		require.Less(t, step, 60, "no progress")
		if step == 1 {
			a, err = s.Submit([]int32{100, 101, 102, 103}, sched.Options{MaxTokens: 8})
			require.NoError(t, err)
			prompts[a.ID()] = []int32{100, 101, 102, 103}
		}
		st, err := s.Schedule()
		require.NoError(t, err)
		tokens := make([]int32, 0, st.Outputs)
		for _, sc := range st.Scheduled {
			for range sc.Outputs {
				tok++
				tokens = append(tokens, tok)
				given[sc.Request.ID()] = append(given[sc.Request.ID()], tok)
			}
		}
		require.NoError(t, s.Update(tokens))
		for _, r := range []*sched.Request{d, a} {
			if r == nil || r.State().Done() {
				continue
			}
			held, err := m.Tokens(r.Seq(0))
			require.NoError(t, err)
			want := append(append([]int32(nil), prompts[r.ID()]...), given[r.ID()]...)
			require.LessOrEqual(t, len(held), len(want))
			require.Equal(t, want[:len(held)], held, "step %d: request %d holds its prompt and outputs", step, r.ID())
		}
	}
	require.Positive(t, recomputed, "d was preempted by recompute")
	assert.Equal(t, sched.Finished, d.State())
	assert.Equal(t, sched.Finished, a.State())
}
