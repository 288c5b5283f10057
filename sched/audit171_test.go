package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit171UndoneChunkedAdmissionKeepsItsPrompt: two prompts of 2
// samples each computed in chunks (blocks of 2, 9 blocks, a State page,
// 5-token steps). The second's admission in a chunk of 4 of its 5 tokens
// (step 1) leaves no room for the forks' state pages and is taken back
// (paged.Manager.Unadmit), as is a later one in a chunk of 1 (step 6);
// the next step admits it whole. The chunks an undone admission cut off
// go back to the manager's sequence; left aside (M4080), the step-6
// admission cut the 4 tokens the manager held to 1 and its 3 took the
// place of the token aside, so the prompt lost its last token and was
// sampled after 4. Every first output must follow its whole prompt.
func TestAudit171UndoneChunkedAdmissionKeepsItsPrompt(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	prompts := map[uint64][]int32{}
	follows := firstOutputFollowsPrompt(t, m, prompts)
	var second *sched.Request
	var chunks []int
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 5}
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Request == second && sc.Generated == 0 {
			chunks = append(chunks, sc.NewTokens)
		}
		follows(sc)
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	first, err := s.Submit(counting(6, 500), sched.Options{MaxTokens: 4, N: 2})
	require.NoError(t, err)
	prompts[first.ID()] = counting(6, 500)
	second, err = s.Submit(counting(5, 100), sched.Options{MaxTokens: 3, N: 2})
	require.NoError(t, err)
	prompts[second.ID()] = counting(5, 100)
	for step := 0; s.Busy(); step++ {
		require.Less(t, step, 100, "no progress")
		st, err := s.Schedule()
		require.NoError(t, err)
		m.TakeCopies(nil)
		m.TakeCheckpoints(nil)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
		require.NoError(t, m.Check())
	}
	require.Positive(t, m.Stats().Unadmits, "no admission taken back: the test checks nothing")
	total := 0
	for _, c := range chunks {
		total += c
	}
	assert.Equal(t, 5, total, "the second prompt's chunks: %v", chunks)
	for _, r := range []*sched.Request{first, second} {
		require.Equal(t, sched.Finished, r.State(), "request %d: %v", r.ID(), r.Err())
	}
}

// TestAudit171SetAsideHoldsRunningChunks: a 12-token prompt of 2 samples
// computed in chunks (blocks of 2, 11 blocks, full attention, a State
// page and a window of 4, 4-token steps) takes every usable block of the
// pool at its last chunk, its fork's page included. The fork set-aside
// holds the blocks its chunks to come take (forkNeed), so an 11-token
// prompt of one sample behind it waits until it forks. Not set aside
// (M4065), the second was admitted in the first step beside it, filled
// the pool in the next, and was preempted by recompute in the third for
// the first prompt's chunk: its first two chunks computed for nothing.
func TestAudit171SetAsideHoldsRunningChunks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 11, Groups: []paged.Group{
		{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}, {Kind: paged.SlidingWindow, Window: 4}}})
	forked, prefill := false, 0
	var first *sched.Request
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4}
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Request == first && sc.Outputs > 0 {
			forked = true
		}
		if sc.Request != first && sc.Generated == 0 {
			assert.True(t, forked, "the second prompt scheduled (from %d) before the first forked", sc.Start)
			prefill += sc.NewTokens
		}
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	first, err = s.Submit(counting(12, 100), sched.Options{MaxTokens: 1, N: 2})
	require.NoError(t, err)
	second, err := s.Submit(counting(11, 300), sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 1)
	assert.Zero(t, s.Stats().Preemptions)
	assert.Equal(t, 11, prefill, "the second prompt's tokens computed")
	for _, r := range []*sched.Request{first, second} {
		require.Equal(t, sched.Finished, r.State(), "request %d: %v", r.ID(), r.Err())
	}
}
