package sched_test

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit69UpdateBeamsTooManyParents: UpdateBeams refuses (ErrInvalid,
// nothing changed) parents longer than the step's outputs, not only
// shorter ones, and takes the right count. Closes M1101 (checkParents
// accepted more parents than outputs).
func TestAudit69UpdateBeamsTooManyParents(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 4, BeamWidth: 2})
	require.NoError(t, err)
	beamStep(t, s)
	require.NoError(t, s.Update([]int32{1, 2}))
	st := beamStep(t, s)
	require.Equal(t, 2, st.Outputs)
	snapshot := m.Stats()
	require.ErrorIs(t, s.UpdateBeams([]int32{3, 4}, []int{0, 1, 0}), sched.ErrInvalid)
	require.Equal(t, snapshot, m.Stats(), "a refused UpdateBeams changes nothing")
	require.NoError(t, s.UpdateBeams([]int32{3, 4}, []int{0, 1}))
	assert.Equal(t, 2, r.Beams())
	require.NoError(t, m.Check())
}

// TestAudit69CancelledBeamsOutputsIgnored: a beam search cancelled between
// Schedule and UpdateBeams has its outputs dropped, whatever parents they
// name: its beams are freed, none is running to be named, and the update
// goes on for the step's other requests. Closes M1102 (checkParents tested
// the wrong place for a done sample and refused the step).
func TestAudit69CancelledBeamsOutputsIgnored(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 4, BeamWidth: 2})
	require.NoError(t, err)
	o, err := s.Submit([]int32{3}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	beamStep(t, s)
	require.NoError(t, s.Update([]int32{1, 2, 3}))
	st := beamStep(t, s)
	require.Equal(t, 3, st.Outputs)
	require.NoError(t, s.Cancel(r))
	require.NoError(t, s.UpdateBeams([]int32{4, 5, 6}, []int{1, 0, 0}))
	assert.Equal(t, sched.Cancelled, r.State())
	assert.Equal(t, 2, o.Outputs(0))
	require.NoError(t, m.Check())
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, o.State())
	assert.Zero(t, m.Stats().UsedBlocks)
}

// TestAudit69StateStringPastNames: State.String names every state and
// formats the first number past the names (and any later) as State(n)
// rather than indexing past the table. Closes M1124.
func TestAudit69StateStringPastNames(t *testing.T) {
	want := []string{"waiting", "running", "preempted", "finished", "cancelled", "aborted"}
	for i, w := range want {
		assert.Equal(t, w, sched.State(i).String())
	}
	assert.Equal(t, "State(6)", (sched.Aborted + 1).String())
	assert.Equal(t, "State(200)", sched.State(200).String())
}

// TestAudit69AbortedBeamsCountEach: beams that cannot grow even alone in
// the pool are preempted together and aborted; the step counts each beam
// in Step.Preempted, as Stats.Preemptions does. Closes M1114 (the group
// counted as one preemption in the step).
func TestAudit69AbortedBeamsCountEach(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 6, BeamWidth: 3})
	require.NoError(t, err)
	preempted := 0
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, 50)
		st := beamStep(t, s)
		preempted += st.Preempted
		if a.State() == sched.Aborted {
			assert.Equal(t, 3, st.Preempted, "step %d aborted the three beams", st.Number)
		}
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
	}
	require.Equal(t, sched.Aborted, a.State())
	assert.Equal(t, int64(3), s.Stats().Preemptions)
	assert.Equal(t, 3, preempted)
}

// TestAudit69BeamsAfterStopFitBudget: once a beam has stopped, the group
// needs a token per beam still going: with MaxBatchTokens 3, a lone
// sequence ahead of a width-3 beam search with one beam finished leaves 2
// tokens, and both remaining beams decode in that step. Closes M1110
// (groupOverBudget counted the finished beam and held the group back).
func TestAudit69BeamsAfterStopFitBudget(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 3, ChunkedPrefill: true})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1}, sched.Options{MaxTokens: 8})
	require.NoError(t, err)
	b, err := s.Submit([]int32{2}, sched.Options{MaxTokens: 8, BeamWidth: 3, StopTokens: []int32{99}})
	require.NoError(t, err)
	st := beamStep(t, s)
	require.Len(t, st.Scheduled, 2)
	require.NoError(t, s.Update([]int32{5, 6, 99, 7}))
	require.Equal(t, 2, b.Beams())
	st = beamStep(t, s)
	require.Len(t, st.Scheduled, 3, "the lone sequence and both beams still going")
	assert.Equal(t, a, st.Scheduled[0].Request)
	assert.Equal(t, []int{0, 2}, []int{st.Scheduled[1].Sample, st.Scheduled[2].Sample})
	assert.Equal(t, 3, st.Tokens)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	require.NoError(t, m.Check())
}

// TestAudit69RestartForgetsFinishedBeams: a beam search one of whose beams
// stopped, then restarted from its prompt by recompute, forks all its beams
// again: Beams is BeamWidth after the new fork, and each of them runs to
// MaxTokens. Closes M1119 (restart kept the count of beams finished before
// it).
func TestAudit69RestartForgetsFinishedBeams(t *testing.T) {
	seen := 0
	for nb := 8; nb <= 16; nb++ {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb, DisablePrefixCaching: true})
		restarted := false
		s, err := sched.New(m, sched.Config{Hooks: sched.Hooks{
			Restarted: func(*sched.Request) { restarted = true },
		}})
		require.NoError(t, err)
		_, err = s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 6, BeamWidth: 2})
		require.NoError(t, err)
		b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 3, StopTokens: []int32{99}})
		require.NoError(t, err)
		forks, stopped, refork := 0, false, false
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 200, "nb %d: no progress", nb)
			st := beamStep(t, s)
			tokens := make([]int32, 0, st.Outputs)
			for _, sc := range st.Scheduled {
				for j := range sc.Outputs {
					tok := int32(7)
					if sc.Request == b && sc.Outputs > 1 && j == 1 && forks == 0 {
						tok = 99 // beam 1 stops at the first fork only
					}
					tokens = append(tokens, tok)
				}
				if sc.Request == b && sc.Outputs > 1 {
					forks++
				}
			}
			require.NoError(t, s.Update(tokens))
			require.NoError(t, m.Check())
			if forks == 1 && b.Beams() == 2 {
				stopped = true
			}
			if stopped && restarted && forks >= 2 && b.Beams() > 0 && !refork {
				refork = true
				assert.Equal(t, 3, b.Beams(), "nb %d: every beam forked again", nb)
			}
		}
		if !refork || b.State() == sched.Aborted {
			continue // (in the smaller pools three beams cannot grow even alone)
		}
		seen++
		assert.Equal(t, sched.Finished, b.State())
		for i := range 3 {
			assert.Equal(t, 6, b.Outputs(i), "nb %d beam %d", nb, i)
		}
	}
	t.Logf("seen %d", seen)
	require.Positive(t, seen, "no pool size restarted the beams after a stop")
}

// TestAudit69BeamGroupPreemptionBudget drives a beam search (priority 10)
// beside lone sequences (priority 0, one with an 8-token prompt computed in
// chunks) under the Priority policy, by recompute and by swap, over pool
// sizes, token budgets, beam widths and admission orders, and checks the
// step's token budget after every Schedule: a step computes at most
// MaxBatchTokens tokens; a running prompt's chunk (not an admission) that
// leaves some of its prompt for later takes all the budget left; and when
// no beam search is running after the step, every running sequence was
// scheduled unless the budget ran out. A beam group preempted in a step
// that had scheduled some of its beams gives their tokens back to the
// budget for the sequences after them (the test requires that this
// happens). Closes M1111 (preemptGroup kept those tokens out of the
// budget: the chunk after the beams was cut short).
func TestAudit69BeamGroupPreemptionBudget(t *testing.T) {
	seen := 0
	for _, swap := range []bool{false, true} {
		for nb := 8; nb <= 20; nb++ {
			for budget := 3; budget <= 5; budget++ {
				for _, beamsFirst := range []bool{true, false} {
					for width := 2; width <= 3; width++ {
						seen += audit69BudgetRun(t, swap, nb, budget, width, beamsFirst)
					}
				}
			}
		}
	}
	require.Positive(t, seen, "no configuration preempted the group after some of its beams were scheduled in the step")
}

// audit69BudgetRun runs one configuration of
// TestAudit69BeamGroupPreemptionBudget and returns the times the beam
// group was preempted in a step that had scheduled some of its beams.
func audit69BudgetRun(t *testing.T, swap bool, nb, budget, width int, beamsFirst bool) int {
	t.Helper()
	mcfg := paged.Config{BlockSize: 2, NumBlocks: nb, MaxModelLen: 32, DisablePrefixCaching: true}
	cfg := sched.Config{Policy: sched.Priority, MaxBatchTokens: budget, ChunkedPrefill: true}
	var b *sched.Request
	var sb *sched.Scheduler
	var schedStep int64
	nsch := 0
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Request == b && !sc.Prefill {
			if sb.Stats().Steps != schedStep {
				schedStep, nsch = sb.Stats().Steps, 0
			}
			nsch++
		}
	}
	seen := 0
	ev := func() {
		if sb.Stats().Steps == schedStep && nsch > 0 {
			seen++ // the group preempted after some of its beams were scheduled in the step
		}
	}
	cfg.Hooks.Restarted = func(r *sched.Request) {
		if r == b {
			ev()
		}
	}
	cfg.Hooks.Preempted = func(r *sched.Request, i int, _ bool) {
		if r == b && i == 0 {
			ev()
		}
	}
	if swap {
		mcfg.HostBlocks = 64
		cfg.Preemption = sched.Swap
	}
	m := newManager(t, mcfg)
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	sb = s
	submitBeams := func() {
		b, err = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 8, BeamWidth: width, Priority: 10})
		require.NoError(t, err)
	}
	lone := func() {
		for k, p := range [][]int32{{10, 11}, {20}, {30, 31, 32, 33, 34, 35, 36, 37}} {
			_, err := s.Submit(p, sched.Options{MaxTokens: []int{6, 8, 4}[k]})
			require.NoError(t, err)
		}
	}
	submitBeams()
	if !beamsFirst {
		lone() // admitted first, for their priority
	}
	var tokens []int32
	parents := make([]int, 0, 8) // never nil: a step may have no outputs
	for steps := 0; s.Busy(); steps++ {
		if beamsFirst && steps == 1 {
			lone() // admitted after the beams, which run first in every step
		}
		require.Less(t, steps, 300, "swap %v nb %d budget %d: no progress", swap, nb, budget)
		st := beamStep(t, s)
		require.LessOrEqual(t, st.Tokens, budget, "swap %v nb %d budget %d first %v: step %d", swap, nb, budget, beamsFirst, st.Number)
		for _, sc := range st.Scheduled {
			if sc.Prefill && !sc.Admitted && sc.Start+sc.NewTokens < sc.Request.PromptLen() {
				require.Equal(t, budget, st.Tokens, "swap %v nb %d budget %d first %v: step %d computed a chunk of %d of request %d's prompt with budget left", swap, nb, budget, beamsFirst, st.Number, sc.NewTokens, sc.Request.ID())
			}
		}
		if b.State() != sched.Running {
			if st.Tokens < budget {
				require.Equal(t, s.Running(), len(st.Scheduled), "swap %v nb %d budget %d first %v: step %d left running sequences out with %d tokens of the budget unused", swap, nb, budget, beamsFirst, st.Number, budget-st.Tokens)
			}
		}
		tokens, parents = audit69Outputs(st, b, tokens[:0], parents[:0])
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	return seen
}

// TestAudit69SwappedBeamsWaitForBudget drives, by swap under the Priority
// policy, a beam search (priority 10) beside lone sequences (priority 0)
// over 400 seeded configurations (pool size, token budget, beam width,
// the lone sequences' prompts and lengths) and checks that no step
// computes more than MaxBatchTokens tokens. A beam group swapped out
// before its beams were scheduled in the step holds only pending tokens,
// one per beam: swapped in with less budget left than that, each beam's
// pending token would be appended all the same. Closes M1121 (swapInGroup
// did not count the pending tokens, so the group never waited for the
// budget, only for blocks).
func TestAudit69SwappedBeamsWaitForBudget(t *testing.T) {
	runs := 0
	for seed := int64(0); seed < 400; seed++ {
		rng := rand.New(rand.NewSource(seed))
		nb := 8 + rng.Intn(16)
		budget := 3 + rng.Intn(4)
		width := 2 + rng.Intn(3)
		lone := 2 + rng.Intn(3)
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb, MaxModelLen: 64, DisablePrefixCaching: true, HostBlocks: 64})
		s, err := sched.New(m, sched.Config{Policy: sched.Priority, MaxBatchTokens: budget, ChunkedPrefill: true, Preemption: sched.Swap})
		require.NoError(t, err)
		b, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4 + rng.Intn(10), BeamWidth: width, Priority: 10})
		if err != nil {
			require.ErrorIs(t, err, sched.ErrNever) // too wide for the pool
			continue
		}
		submitted := true
		for k := range lone {
			p := make([]int32, 1+rng.Intn(8))
			for i := range p {
				p[i] = int32(100*k + i + 10)
			}
			if _, err := s.Submit(p, sched.Options{MaxTokens: 2 + rng.Intn(18)}); err != nil {
				require.ErrorIs(t, err, sched.ErrNever)
				submitted = false
			}
		}
		if !submitted {
			continue
		}
		runs++
		var tokens []int32
		parents := make([]int, 0, 8) // never nil: a step may have no outputs
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 500, "seed %d: no progress", seed)
			st := beamStep(t, s)
			require.LessOrEqual(t, st.Tokens, budget, "seed %d (nb %d, width %d): step %d", seed, nb, width, st.Number)
			tokens, parents = audit69Outputs(st, b, tokens[:0], parents[:0])
			require.NoError(t, s.UpdateBeams(tokens, parents))
			require.NoError(t, m.Check())
		}
	}
	require.Greater(t, runs, 200)
}

// audit69Outputs appends the step's outputs for UpdateBeams: a token per
// output, every beam of b (once forked) the child of its beam 0, every
// other output its own sample's.
func audit69Outputs(st *sched.Step, b *sched.Request, tokens []int32, parents []int) ([]int32, []int) {
	for _, sc := range st.Scheduled {
		for j := range sc.Outputs {
			tokens = append(tokens, int32(40+j))
			if sc.Request == b && b.Beams() > 0 {
				parents = append(parents, 0)
			} else {
				parents = append(parents, sc.Sample+j)
			}
		}
	}
	return tokens, parents
}
