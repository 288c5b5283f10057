package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkVictimsCountParkedBlocks: the step that completes a forking
// prompt preempts victims for its forks' state pages (forkVictims) only
// as far as the forks need. Blocks of 4, a State group of one page, 9
// usable blocks, no watermark, the Priority policy, admissions first.
// Request 1 (priority 1, 3 samples of a 6-token prompt) runs forked: its
// samples share the prompt's last block, which the first two samples'
// decodes copy (copy-on-write) in step 2. Request 2 (priority 0, 3
// samples of 4 tokens) is admitted in step 2 and completes there: its
// forks need 2 pages and the decodes left none. The first victim,
// request 1's sample 2, frees its state page and the shared block, whose
// last holder it was; but the two copies read that block in this step,
// so the manager parks it until the step ends (paged.Copy), before the
// Update forks. Counting only the free blocks, forkVictims saw 1 of 2 and
// preempted sample 1 as well; the forks fit beside sample 1 (a run that
// stopped after the first victim forked request 2 at that Update). Now
// the parked blocks count (paged.Stats.ParkedBlocks).
func TestForkVictimsCountParkedBlocks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 10, DisablePrefixCaching: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	type pre struct {
		step   int64
		req    uint64
		sample int
	}
	var preempted []pre
	step := int64(1) // Step.Number of the step being scheduled
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, AdmitFirst: true, MaxRunning: 8, Hooks: sched.Hooks{
		Preempted: func(r *sched.Request, i int, _ bool) { preempted = append(preempted, pre{step, r.ID(), i}) },
	}})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3, 4, 5, 6}, sched.Options{MaxTokens: 10, N: 3, Priority: 1})
	require.NoError(t, err)
	var b *sched.Request
	tok := int32(1000)
	for ; s.Busy(); step++ {
		require.Less(t, step, int64(100), "no progress")
		if step == 2 {
			b, err = s.Submit([]int32{21, 22, 23, 24}, sched.Options{MaxTokens: 2, N: 3})
			require.NoError(t, err)
		}
		stepOwnTokens(t, s, &tok)
		if step == 2 {
			require.Equal(t, 3, b.Samples(), "request 2 forked in the step that completed its prompt")
		}
	}
	require.Equal(t, sched.Finished, a.State())
	require.Equal(t, sched.Finished, b.State())
	var inStep []pre
	for _, p := range preempted {
		if p.step == 2 {
			inStep = append(inStep, p)
		}
	}
	require.Equal(t, []pre{{2, 1, 2}}, inStep, "one victim makes room for the forks")
}

// TestForkedPromptRecomputesWithoutLastTokenAlone: entry.lastAlone
// (lastAloneRoom) makes a forking prompt compute its last token in a step
// of its own, where its forks' state pages fit only so. It stayed set on
// the prompt's sequence, sample 0, after the fork: recomputed after a
// preemption, that sample still held its last token back from a chunk
// that had the budget for it, and computed it alone in the next step (a
// step more per recompute, that token counted as a decode; here sample
// 0 came back at step 11 and was preempted again at step 14 with its
// last token not computed). Blocks of 4, a window of 4 and a State group
// of 3 pages, 19 usable blocks, a budget of 8, the Priority policy:
// request 2 (16 tokens, 2 samples) is admitted beside request 1 with its
// last token alone, forks, its sample 1 stops at once, and request 3
// (priority 0) preempts sample 0 as it grows. Every chunk of sample 0
// after the fork that leaves out only the sequence's last token, when
// the step had room for it, is a failure.
func TestForkedPromptRecomputesWithoutLastTokenAlone(t *testing.T) {
	const budget = 8
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 20, Groups: forkWindowLayout, DisablePrefixCaching: true})
	type chunk struct {
		step                        int64
		start, n, out, gen, stepTok int // stepTok: the step's tokens
	}
	var r *sched.Request
	var chunks []chunk
	var lastAlone, preempted int
	step := int64(1)
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: budget, Policy: sched.Priority, Hooks: sched.Hooks{
		Scheduled: func(sc *sched.Scheduled) {
			if sc.Request == r && sc.Sample == 0 {
				chunks = append(chunks, chunk{step, sc.Start, sc.NewTokens, sc.Outputs, sc.Generated, 0})
			}
		},
		Preempted: func(q *sched.Request, i int, _ bool) {
			if q == r && i == 0 {
				preempted++
			}
		},
	}})
	require.NoError(t, err)
	_, err = s.Submit(counting(8, 100), sched.Options{MaxTokens: 6, Priority: 1})
	require.NoError(t, err)
	prompt := counting(16, 1)
	r, err = s.Submit(prompt, sched.Options{MaxTokens: 24, N: 2, Priority: 1, StopTokens: []int32{9}})
	require.NoError(t, err)
	var tokens []int32
	for ; s.Busy(); step++ {
		require.Less(t, step, int64(300), "no progress")
		if step == 5 {
			_, err = s.Submit(counting(12, 200), sched.Options{MaxTokens: 30})
			require.NoError(t, err)
		}
		st, err := s.Schedule()
		require.NoError(t, err)
		if k := len(chunks) - 1; k >= 0 && chunks[k].step == step {
			chunks[k].stepTok = st.Tokens
		}
		tokens = tokens[:0]
		for _, sc := range st.Scheduled {
			for j := range sc.Outputs {
				tok := int32(7)
				if sc.Request == r && sc.Sample+j == 1 && sc.Generated+j >= 1 {
					tok = 9 // sample 1 stops at its second output
				}
				tokens = append(tokens, tok)
			}
		}
		require.NoError(t, s.Update(tokens))
		require.NoError(t, m.Check())
	}
	require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
	require.Positive(t, preempted, "sample 0 was never preempted: the test checks nothing")
	for _, a := range chunks {
		// Recomputed after the fork, sample 0 holds its prompt and its
		// outputs (the newest one's KV not computed yet).
		if a.gen == 0 || a.out != 0 || a.start+a.n != len(prompt)+a.gen-1 {
			continue
		}
		lastAlone++
		if a.n+1 <= budget-(a.stepTok-a.n) {
			t.Errorf("step %d: sample 0, forked, computed positions [%d, %d) and left its last token to a step of its own, with room for it in the budget", a.step, a.start, a.start+a.n)
		}
	}
	t.Logf("%d chunks of sample 0, %d preemptions, %d last tokens alone after the fork", len(chunks), preempted, lastAlone)
}

// TestSwapInWaitsForItsNextToken: a sequence swapped in must find a
// block for its next step's first token, or it is recomputed in that
// very step (preempted again: swapped in during the step, it cannot be
// swapped out), its KV on the host thrown away. Blocks of 4, 7 usable,
// no watermark, a budget of 6, the Priority policy under Swap: request
// 1 (16 tokens, priority 1) is computed in chunks; request 2 (3 tokens)
// joins it at step 2 and, at step 4, finds no block for its decode: it
// swaps request 1 out, with the chunk that step had appended given back
// (unchunk). CanSwapIn counted only the blocks request 1 takes back, so
// at step 5 it was swapped in, its next chunk found no block, and it was
// recomputed from its first token; swapped out again two steps later,
// it went round 4 times (7 preemptions, 15 tokens recomputed). Without
// the State group (7 usable blocks, 24 tokens, admissions first), 13
// preemptions and 36 tokens recomputed. Now the swap-in waits while its next
// token's blocks do not fit beside it (nextFits), and a chunk longer
// than that token that does not fit is made smaller in that step.
func TestSwapInWaitsForItsNextToken(t *testing.T) {
	for _, tc := range []struct {
		layout         []paged.Group
		blocks, prompt int
		admitFirst     bool
	}{
		{[]paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}, 8, 16, false},
		{nil, 8, 24, true},
	} {
		layout := tc.layout
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: tc.blocks, HostBlocks: 64, DisableOffload: true, DisablePrefixCaching: true, Groups: layout})
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 6, Policy: sched.Priority, Preemption: sched.Swap, AdmitFirst: tc.admitFirst})
		require.NoError(t, err)
		p, err := s.Submit(counting(tc.prompt, 1), sched.Options{MaxTokens: 2, Priority: 1})
		require.NoError(t, err)
		var d *sched.Request
		tok := int32(1000)
		for step := 1; s.Busy(); step++ {
			require.Less(t, step, 300, "no progress")
			if step == 2 {
				d, err = s.Submit(counting(3, 100), sched.Options{MaxTokens: 20})
				require.NoError(t, err)
			}
			stepOwnTokens(t, s, &tok)
		}
		require.Equal(t, sched.Finished, p.State(), "%v", p.Err())
		require.Equal(t, sched.Finished, d.State(), "%v", d.Err())
		st := s.Stats()
		require.Positive(t, st.SwappedOut, "%d groups: nothing swapped out: the test checks nothing", len(layout))
		assert.Zero(t, st.ResumedTokens, "%d groups: tokens recomputed after a swap-in", len(layout))
		assert.Equal(t, st.SwappedOut, st.Preemptions, "%d groups: every preemption a swap", len(layout))
	}
}

// TestBeamSwapInWaitsForTheirNextTokens: swapInGroup's form of
// TestSwapInWaitsForItsNextToken. A beam search swapped in whose beams'
// next tokens then find no block restarts from its prompt (its beams
// cannot be swapped out in the step that swapped them in), its KV on the
// host lost. Blocks of 4, 9 usable, the Priority policy under Swap: a
// 2-beam search of a 3-token prompt (priority 1) and, from step 4, a
// 5-token request of priority 0 that preempts it as it grows. Before, the
// search was swapped in as soon as CanSwapIn allowed, its beams' decodes
// (a block each where a new block of tokens starts, or a copy of the
// block they share) did not fit, and it restarted twice (33 steps, 14
// prompt tokens computed for 8). Now the swap-in waits until those
// blocks fit beside it (beamsFit): no restart, 23 steps.
func TestBeamSwapInWaitsForTheirNextTokens(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 10, HostBlocks: 64, DisableOffload: true, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 8, Policy: sched.Priority, Preemption: sched.Swap})
	require.NoError(t, err)
	b, err := s.Submit(counting(3, 1), sched.Options{MaxTokens: 12, BeamWidth: 2, Priority: 1})
	require.NoError(t, err)
	var d *sched.Request
	var tokens []int32
	parents := make([]int, 0, 8)
	for step := 1; s.Busy(); step++ {
		require.Less(t, step, 400, "no progress")
		if step == 4 {
			d, err = s.Submit(counting(5, 100), sched.Options{MaxTokens: 16})
			require.NoError(t, err)
		}
		tokens, parents = ownParents(beamStep(t, s), tokens, parents)
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	require.Equal(t, sched.Finished, b.State(), "%v", b.Err())
	require.Equal(t, sched.Finished, d.State(), "%v", d.Err())
	st := s.Stats()
	require.Positive(t, st.SwappedOut, "nothing swapped out: the test checks nothing")
	assert.Zero(t, st.Restarts, "the beam search restarted")
	assert.EqualValues(t, 3+5, st.PrefillTokens, "prompt tokens computed")
}

// counting returns n tokens counting up from base.
func counting(n, base int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(base + i)
	}
	return p
}
