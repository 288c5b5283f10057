package sched_test

import (
	"fmt"
	"math/rand/v2"
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

// TestAudit171SetAsideHoldsTheHeadsChunks: a 6-token prompt of 2 samples
// and a 7-token prompt of one, each with 2 tokens to generate, computed in
// chunks (blocks of 2, 8 blocks, a State page, 4-token steps). The head's
// chunks to come count in the fork set-aside though it does not fork, so
// the second prompt waits while the first computes its last chunk and
// forks: nothing is preempted and every prompt token is computed once.
// Counted for forking heads only (before session 37, and M4066 now), the
// second was admitted beside the first's last chunk on the strength of
// its first 2 tokens, filled the pool, and the first's decodes preempted
// it and a sample of the first, which the second's last chunk preempted
// again: 3 preemptions, 2 steps more.
func TestAudit171SetAsideHoldsTheHeadsChunks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 8, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	prefill := map[uint64]int{}
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4}
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Generated == 0 {
			prefill[sc.Request.ID()] += sc.NewTokens
		}
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	first, err := s.Submit(counting(6, 100), sched.Options{MaxTokens: 2, N: 2})
	require.NoError(t, err)
	second, err := s.Submit(counting(7, 300), sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	steps := drain(t, s, 1)
	assert.Zero(t, s.Stats().Preemptions)
	assert.Equal(t, map[uint64]int{first.ID(): 6, second.ID(): 7}, prefill, "prompt tokens computed")
	assert.Equal(t, 6, steps)
	for _, r := range []*sched.Request{first, second} {
		require.Equal(t, sched.Finished, r.State(), "request %d: %v", r.ID(), r.Err())
	}
}

// forkStudy runs seeds random workloads on a pool of nb blocks of 4 and
// returns the preemptions and steps they took in all: 20 requests of 4 to
// 43 tokens arriving in the first 30 steps, 1 to 3 samples and 1 to 16
// tokens out each, computed in chunks of 8 to 31 tokens a step, beside a
// State group of 1 or 2 pages and no window or one of 8 or 16 tokens.
func forkStudy(b *testing.B, nb int, seeds uint64) (preemptions, steps int) {
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 7))
		groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1 + rng.IntN(2)}}
		if w := []int{0, 8, 16}[rng.IntN(3)]; w > 0 {
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: w})
		}
		m := newManager(b, paged.Config{BlockSize: 4, NumBlocks: nb, Groups: groups})
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 8 + rng.IntN(24)})
		require.NoError(b, err)
		type req struct{ at, n, samples, out int }
		reqs := make([]req, 20)
		for i := range reqs {
			reqs[i] = req{at: rng.IntN(30)}
		}
		for i := range reqs {
			reqs[i].n, reqs[i].samples, reqs[i].out = 4+rng.IntN(40), 1+rng.IntN(3), 1+rng.IntN(16)
		}
		for step := 0; step < 30 || s.Busy(); step++ {
			require.Less(b, step, 100000, "no progress")
			for i, r := range reqs {
				if r.at == step {
					// A request that can never fit this pool is refused.
					_, _ = s.Submit(counting(r.n, 1000*i), sched.Options{MaxTokens: r.out, N: r.samples})
				}
			}
			if s.Busy() {
				stepOnce(b, s, 1)
				steps++
			}
		}
		require.Zero(b, s.Stats().Aborted)
		preemptions += int(s.Stats().Preemptions)
	}
	return preemptions, steps
}

// BenchmarkAudit171ForkSetAside measures the fork set-aside's effect on
// random workloads with forking prompts and State groups (forkStudy, 300
// seeds a pool size): the preemptions and steps they take a run. The
// figures of the rule that left a non-forking head's chunks out of the
// set-aside are those of this benchmark under mutation M4066
// (docs/testing.md, session 37).
func BenchmarkAudit171ForkSetAside(b *testing.B) {
	for _, nb := range []int{24, 40, 64, 128} {
		b.Run(fmt.Sprintf("blocks=%d", nb), func(b *testing.B) {
			b.ReportAllocs()
			var p, st int
			for b.Loop() {
				p, st = forkStudy(b, nb, 300)
			}
			b.ReportMetric(float64(p)/300, "preemptions/run")
			b.ReportMetric(float64(st)/300, "steps/run")
		})
	}
}
