package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// firstOutputFollowsPrompt returns a Scheduled hook that checks the step
// giving a request its first output (the last chunk of its prompt): it
// ends at the prompt's length, and the manager's sequence holds the
// prompt, prompts[ID], when the request is listed there.
func firstOutputFollowsPrompt(t *testing.T, m *paged.Manager, prompts map[uint64][]int32) func(*sched.Scheduled) {
	return func(sc *sched.Scheduled) {
		p, ok := prompts[sc.Request.ID()]
		if !ok || sc.Outputs == 0 || sc.Generated > 0 {
			return
		}
		assert.Equal(t, len(p), sc.Start+sc.NewTokens, "request %d: the first output follows the prompt's last token", sc.Request.ID())
		toks, err := m.Tokens(sc.Seq)
		require.NoError(t, err)
		assert.Equal(t, p, toks, "request %d: the prompt in the manager at its first output", sc.Request.ID())
	}
}

// TestAudit146SwappedMidPromptKeepsItsChunks: a prompt of 16 tokens
// computed in chunks (blocks of 2, a window of 4, 12 blocks, 5-token
// steps, the Priority policy under Swap) is the victim of a more urgent
// request's decode in a step that had appended its chunk ending at
// position 3, with 13 tokens still to come. The swap-out gives the
// dropped chunk back in front of those chunks (unchunk); lost, the
// prompt was cut where the dropped chunk ended and sampled there (M4051).
// The prompt's output must follow its whole prompt, all 16 tokens in the
// manager.
func TestAudit146SwappedMidPromptKeepsItsChunks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 12, HostBlocks: 30, MaxModelLen: 32, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}})
	long := counting(16, 100)
	var r *sched.Request
	var step int64
	lastSched, lastEnd, midPrompt, outputs := int64(-1), 0, 0, 0
	prompts := map[uint64][]int32{}
	follows := firstOutputFollowsPrompt(t, m, prompts)
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 5, Preemption: sched.Swap, Policy: sched.Priority}
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Request != r {
			return
		}
		lastSched, lastEnd = step, sc.Start+sc.NewTokens
		if sc.Outputs > 0 && sc.Generated == 0 {
			outputs++
		}
		follows(sc)
	}
	cfg.Hooks.Preempted = func(q *sched.Request, _ int, swapped bool) {
		if q == r && swapped && lastSched == step && lastEnd < len(long) {
			midPrompt++
		}
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	first, err := s.Submit([]int32{50, 51}, sched.Options{MaxTokens: 14})
	require.NoError(t, err)
	r, err = s.Submit(long, sched.Options{MaxTokens: 1, Priority: 1})
	require.NoError(t, err)
	prompts[r.ID()] = long
	var later *sched.Request
	for ; s.Busy(); step++ {
		require.Less(t, step, int64(100), "no progress")
		st, err := s.Schedule()
		require.NoError(t, err)
		if later == nil {
			later, err = s.Submit([]int32{70, 71}, sched.Options{MaxTokens: 12})
			require.NoError(t, err)
		}
		out := make([]int32, st.Outputs)
		for i := range out {
			out[i] = 1
		}
		require.NoError(t, s.Update(out))
		require.NoError(t, m.Check())
	}
	require.Positive(t, midPrompt, "no swap-out in the step that appended a chunk with chunks to come: the test checks nothing")
	assert.Equal(t, 1, outputs)
	for _, q := range []*sched.Request{first, r, later} {
		require.Equal(t, sched.Finished, q.State(), "request %d: %v", q.ID(), q.Err())
	}
}

// TestAudit146PreemptedPromptGivesBackItsReservation: a prompt of 12
// tokens with 2 samples (blocks of 2, 8 blocks, 4-token steps, the
// Priority policy, MaxRunning 4) is preempted before it forks, while its
// running limit counts its second sample from its admission (reserved),
// by the decodes of two more urgent requests. The preemption gives that
// sample back and the readmission takes it again; kept (M4058), the
// limit counted it twice until the end, and a request of 4 samples,
// alone afterwards, was refused by the limit and aborted as one that
// does not fit an empty pool. While the prompt waits, Load counts every
// token of it as prefill to compute again: the preemption resets what
// it had computed (M4062).
func TestAudit146PreemptedPromptGivesBackItsReservation(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 8, MaxModelLen: 32, DisableOffload: true})
	var r *sched.Request
	preempted := 0
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4, Policy: sched.Priority, MaxRunning: 4}
	cfg.Hooks.Preempted = func(q *sched.Request, _ int, _ bool) {
		if q == r && q.Samples() == 1 {
			preempted++
		}
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	first, err := s.Submit([]int32{50, 51}, sched.Options{MaxTokens: 12})
	require.NoError(t, err)
	r, err = s.Submit(counting(12, 100), sched.Options{MaxTokens: 1, N: 2, Priority: 1})
	require.NoError(t, err)
	stepOnce(t, s, 7)
	later, err := s.Submit([]int32{70, 71}, sched.Options{MaxTokens: 12})
	require.NoError(t, err)
	loads := 0
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, 200, "no progress")
		stepOnce(t, s, 7)
		if l := s.Load(); r.State() == sched.Preempted && l.Waiting == 1 && l.Running == 2 {
			// The prompt waits alone, the other two decode (their
			// 2-token prompts computed): every token of the prompt is
			// to compute again.
			assert.Equal(t, r.PromptLen(), l.PrefillTokens, "step %d: %+v", steps, l)
			loads++
		}
	}
	require.Positive(t, preempted, "the prompt was not preempted before its fork: the test checks nothing")
	require.Positive(t, loads)
	for _, q := range []*sched.Request{first, r, later} {
		require.Equal(t, sched.Finished, q.State(), "request %d: %v", q.ID(), q.Err())
	}
	wide, err := s.Submit([]int32{90, 91}, sched.Options{MaxTokens: 1, N: 4})
	require.NoError(t, err)
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, 20, "a request of MaxRunning samples alone is not admitted")
		stepOnce(t, s, 7)
	}
	assert.Equal(t, sched.Finished, wide.State(), "%v", wide.Err())
}

// TestAudit146NoLastTokenAloneWithoutLocalGroups: a prompt of 5 tokens
// with 2 samples (full attention and a State group of one page, blocks
// of 2, 3-token steps) is the scheduler's only request in a pool where
// the caller's own sequence holds 3 tokens' blocks, so its admission
// leaves no room for its forks' page: the pool is idle, so the admission
// is kept (lastAloneRoom), and the fork finds no room and aborts it.
// Without a sliding-window or chunked-local group, which holds fewer
// blocks in the step computing the last token alone, that token is not
// given a step of its own (M4073 gave it one: chunks of 3, 1 and 1, a
// step more for nothing): chunks of 3 and 2.
func TestAudit146NoLastTokenAloneWithoutLocalGroups(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 8, MaxModelLen: 40, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	ext, err := m.Add(counting(3, 500), nil)
	require.NoError(t, err)
	_, err = m.Admit(ext)
	require.NoError(t, err)
	var chunks []int
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 3}
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Prefill {
			chunks = append(chunks, sc.NewTokens)
		}
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	r, err := s.Submit(counting(5, 1), sched.Options{MaxTokens: 2, N: 2})
	require.NoError(t, err)
	drain(t, s, 7)
	assert.Equal(t, []int{3, 2}, chunks)
	assert.Equal(t, sched.Aborted, r.State())
	assert.ErrorIs(t, r.Err(), sched.ErrNever)
	require.NoError(t, m.Free(ext))
}
