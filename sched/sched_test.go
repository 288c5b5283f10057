package sched_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

func newManager(t testing.TB, cfg paged.Config) *paged.Manager {
	t.Helper()
	m, err := paged.New(cfg)
	require.NoError(t, err)
	return m
}

// drain runs steps until nothing is left, giving every output token tok,
// checking the manager after each, and returns the steps run.
func drain(t testing.TB, s *sched.Scheduler, tok int32) int {
	t.Helper()
	steps := 0
	for s.Busy() {
		stepOnce(t, s, tok)
		steps++
		require.Less(t, steps, 100000, "no progress")
	}
	return steps
}

// stepOnce runs one step of s whose every output samples tok, and checks
// the manager after it.
func stepOnce(t testing.TB, s *sched.Scheduler, tok int32) {
	t.Helper()
	st, err := s.Schedule()
	require.NoError(t, err)
	tokens := make([]int32, st.Outputs)
	for i := range tokens {
		tokens[i] = tok
	}
	require.NoError(t, s.Update(tokens))
	require.NoError(t, s.Manager().Check())
}

func TestNewErrors(t *testing.T) {
	m := newManager(t, paged.Config{NumBlocks: 8})
	for name, c := range map[string]sched.Config{
		"negative running":            {MaxRunning: -1},
		"negative budget":             {MaxBatchTokens: -1},
		"policy":                      {Policy: 7},
		"preemption":                  {Preemption: 7},
		"policy past Priority (M611)": {Policy: sched.Priority + 1},
		"preemption past Swap (M612)": {Preemption: sched.Swap + 1},
		"swap without host":           {Preemption: sched.Swap},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sched.New(m, c)
			assert.ErrorIs(t, err, sched.ErrInvalid)
		})
	}
	_, err := sched.New(nil, sched.Config{})
	assert.ErrorIs(t, err, sched.ErrInvalid)
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	assert.Equal(t, sched.DefaultMaxRunning, s.Config().MaxRunning)
}

func TestSubmitErrors(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 5, MaxModelLen: 14})
	s, err := sched.New(m, sched.Config{MaxRunning: 4, MaxBatchTokens: 10})
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		prompt []int32
		opts   sched.Options
		want   error
	}{
		{"no max tokens", []int32{1}, sched.Options{}, sched.ErrInvalid},
		{"negative n", []int32{1}, sched.Options{MaxTokens: 1, N: -1}, sched.ErrInvalid},
		{"n above max running", []int32{1}, sched.Options{MaxTokens: 1, N: 5}, sched.ErrInvalid},
		{"empty prompt", nil, sched.Options{MaxTokens: 1}, sched.ErrInvalid},
		{"longer than max model len", make([]int32, 10), sched.Options{MaxTokens: 5}, sched.ErrNever},
		{"budget without chunking", make([]int32, 9), sched.Options{MaxTokens: 3}, sched.ErrNever},
		{"bad seq options", []int32{1}, sched.Options{MaxTokens: 1, Seq: &paged.SeqOptions{Window: -1}}, sched.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.Submit(tc.prompt, tc.opts)
			assert.ErrorIs(t, err, tc.want)
			assert.Nil(t, r)
			assert.False(t, s.Busy(), "a refused request changes nothing")
			assert.Zero(t, m.Stats().Sequences)
		})
	}
	small := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 3, MaxModelLen: 16})
	s2, err := sched.New(small, sched.Config{})
	require.NoError(t, err)
	_, err = s2.Submit(make([]int32, 6), sched.Options{MaxTokens: 4})
	assert.ErrorIs(t, err, sched.ErrNever, "9 tokens of KV need 3 blocks, the pool has 2")
	_, err = s2.Submit(make([]int32, 6), sched.Options{MaxTokens: 3})
	assert.NoError(t, err, "8 tokens of KV fit 2 blocks: the last output never gets a slot")
}

func TestCallErrors(t *testing.T) {
	m := newManager(t, paged.Config{NumBlocks: 8})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	other, err := sched.New(newManager(t, paged.Config{NumBlocks: 8}), sched.Config{})
	require.NoError(t, err)

	assert.ErrorIs(t, s.Update(nil), sched.ErrInvalid, "Update without a step")
	assert.ErrorIs(t, s.BuildBatch(&paged.Batch{}), sched.ErrInvalid)
	st, err := s.Schedule()
	require.NoError(t, err)
	assert.Empty(t, st.Scheduled, "an idle scheduler schedules nothing")
	assert.Zero(t, s.Stats().Steps)

	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	assert.ErrorIs(t, s.Cancel(nil), sched.ErrInvalid)
	foreign, err := other.Submit([]int32{1}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	assert.ErrorIs(t, s.Cancel(foreign), sched.ErrForeign)

	st, err = s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 1)
	_, err = s.Schedule()
	assert.ErrorIs(t, err, sched.ErrInvalid, "Schedule twice")
	assert.ErrorIs(t, s.Update([]int32{1, 2}), sched.ErrInvalid, "two tokens for one output")
	assert.ErrorIs(t, s.Update([]int32{-1}), sched.ErrInvalid, "a negative token")
	require.NoError(t, s.Update([]int32{7}), "a refused Update changed nothing")
	assert.Equal(t, 1, r.Outputs(0))
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, r.State())
	assert.ErrorIs(t, s.Cancel(r), sched.ErrDone)
}

// tinyRun submits two requests into a pool too small for both at their
// longest and drains it.
func tinyRun(t *testing.T, mcfg paged.Config, cfg sched.Config) (*sched.Scheduler, [2]*sched.Request) {
	m := newManager(t, mcfg)
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	var rs [2]*sched.Request
	rs[0], err = s.Submit([]int32{1, 2, 3, 4, 5, 6, 7}, sched.Options{MaxTokens: 8})
	require.NoError(t, err)
	rs[1], err = s.Submit([]int32{9, 8, 7, 6, 5}, sched.Options{MaxTokens: 8})
	require.NoError(t, err)
	drain(t, s, 3)
	for _, r := range rs {
		assert.Equal(t, sched.Finished, r.State())
		assert.Equal(t, 8, r.Outputs(0))
	}
	st := m.Stats()
	assert.Zero(t, st.UsedBlocks)
	assert.Zero(t, st.Sequences)
	return s, rs
}

func TestPreemptRecompute(t *testing.T) {
	s, _ := tinyRun(t, paged.Config{BlockSize: 4, NumBlocks: 7}, sched.Config{})
	st := s.Stats()
	assert.EqualValues(t, 1, st.Preemptions)
	assert.EqualValues(t, 3, st.Admissions)
	assert.EqualValues(t, 1, st.Resumed)
	assert.EqualValues(t, 3, st.ResumedTokens, "the two full blocks of the victim are still cached")
	assert.Zero(t, st.SwappedOut)
}

func TestPreemptSwap(t *testing.T) {
	s, _ := tinyRun(t, paged.Config{BlockSize: 4, NumBlocks: 7, HostBlocks: 8}, sched.Config{Preemption: sched.Swap})
	st := s.Stats()
	assert.EqualValues(t, 1, st.Preemptions)
	assert.EqualValues(t, 1, st.SwappedOut)
	assert.Zero(t, st.ResumedTokens, "swapped in, nothing recomputed")
	tiers := s.Manager().Stats().Tiers
	assert.EqualValues(t, 1, tiers.SwapOutCalls)
	assert.EqualValues(t, 1, tiers.SwapInCalls)
}

func TestPreemptSwapFallsBackToRecompute(t *testing.T) {
	// One host block cannot take the victim's three.
	s, _ := tinyRun(t, paged.Config{BlockSize: 4, NumBlocks: 7, HostBlocks: 1}, sched.Config{Preemption: sched.Swap})
	st := s.Stats()
	assert.EqualValues(t, 1, st.Preemptions)
	assert.Zero(t, st.SwappedOut)
	assert.EqualValues(t, 3, st.ResumedTokens)
}

// W1 admits even in a step that preempted; vLLM does not. With the pool
// full of the running request's growth, the difference is the admission
// attempts.
func TestAdmitAfterPreemption(t *testing.T) {
	calls := map[bool]int64{}
	for _, after := range []bool{false, true} {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 6})
		s, err := sched.New(m, sched.Config{AdmitAfterPreemption: after})
		require.NoError(t, err)
		for i := range 4 {
			_, err := s.Submit([]int32{int32(10 * i), 1, 2}, sched.Options{MaxTokens: 6})
			require.NoError(t, err)
		}
		drain(t, s, 5)
		calls[after] = s.Stats().AdmitCalls
		assert.Positive(t, s.Stats().Preemptions)
	}
	assert.Greater(t, calls[true], calls[false], "admission attempts in preempting steps")
}

func TestStopTokensAndMaxModelLen(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16, MaxModelLen: 12})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	stop, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5, StopTokens: []int32{42}})
	require.NoError(t, err)
	full, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	out := []int32{7, 7}
	for step := 0; s.Busy(); step++ {
		st, err := s.Schedule()
		require.NoError(t, err)
		out = out[:st.Outputs]
		if step == 2 {
			out[0] = 42 // request 1 draws its stop token at its third output
		}
		require.NoError(t, s.Update(out))
		out[0] = 7
	}
	assert.Equal(t, 3, stop.Outputs(0))
	assert.Equal(t, 3, full.Outputs(0))
	assert.Equal(t, sched.Finished, stop.State())
}

// Parallel sampling: the prompt is computed once, forked N ways, and the
// samples share its blocks until they write.
func TestParallelSamples(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{MaxRunning: 4})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3, 4, 5, 6}, sched.Options{MaxTokens: 3, N: 3})
	require.NoError(t, err)
	other, err := s.Submit([]int32{9}, sched.Options{MaxTokens: 1, N: 2})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 1, "the second request's two samples would exceed MaxRunning")
	assert.Equal(t, 3, st.Outputs)
	require.NoError(t, s.Update([]int32{10, 11, 12}))
	assert.Equal(t, 3, r.Samples())
	assert.Equal(t, 3, s.Running())
	for i := range 3 {
		assert.Equal(t, 1, r.Outputs(i))
		toks, err := m.Tokens(r.Seq(i))
		require.NoError(t, err)
		assert.Len(t, toks, 6, "the sampled token gets its slot next step")
	}
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, r.State())
	assert.Equal(t, sched.Finished, other.State())
	assert.Equal(t, 2, other.Samples())
	assert.EqualValues(t, 3, s.Stats().Forks)
	assert.Positive(t, m.Stats().Copies, "the samples' shared last block is copied on write")
}

func TestPriorityPreemptsLowest(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 7})
	var order []uint64
	s, err := sched.New(m, sched.Config{Policy: sched.Priority, Hooks: sched.Hooks{
		Preempted: func(r *sched.Request, _ int, _ bool) { order = append(order, r.ID()) },
	}})
	require.NoError(t, err)
	low, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 6, Priority: 9})
	require.NoError(t, err)
	high, err := s.Submit([]int32{3, 4}, sched.Options{MaxTokens: 6, Priority: 1})
	require.NoError(t, err)
	mid, err := s.Submit([]int32{5, 6}, sched.Options{MaxTokens: 6, Priority: 5})
	require.NoError(t, err)
	drain(t, s, 2)
	require.NotEmpty(t, order)
	assert.Equal(t, low.ID(), order[0], "the lowest priority goes first, though admitted first")
	assert.NotContains(t, order, high.ID())
	for _, r := range []*sched.Request{low, high, mid} {
		assert.Equal(t, sched.Finished, r.State())
	}
}

func TestCancelFreesEverything(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 16})
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap, MaxBatchTokens: 6, ChunkedPrefill: true})
	require.NoError(t, err)
	var rs []*sched.Request
	for i := range 5 {
		r, err := s.Submit([]int32{int32(i), 1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 12, N: 1 + i%2})
		require.NoError(t, err)
		rs = append(rs, r)
	}
	for range 9 {
		st, err := s.Schedule()
		require.NoError(t, err)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
	}
	states := map[sched.State]int{}
	for _, r := range rs {
		states[r.State()]++
	}
	for _, r := range rs {
		require.NoError(t, s.Cancel(r))
		require.NoError(t, m.Check())
	}
	assert.False(t, s.Busy())
	st := m.Stats()
	assert.Zero(t, st.UsedBlocks)
	assert.Zero(t, st.Sequences)
	assert.Zero(t, st.Tiers.HostUsed)
	assert.Greater(t, len(states), 1, "cancelled from several states: %v", states)
}

// Cancelling between Schedule and Update drops the request's tokens.
func TestCancelDuringStep(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	b, err := s.Submit([]int32{4, 5, 6}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Equal(t, 2, st.Outputs)
	require.NoError(t, s.Cancel(a))
	// It no longer runs, though its entry leaves the list at the Update
	// (Running and Load counted it until then).
	assert.Equal(t, 1, s.Running())
	assert.Equal(t, 1, s.Load().Running)
	assert.Equal(t, 3, s.Load().KVTokens, "the cancelled prompt's tokens are gone")
	// RunningSeqs leaves its freed sequence out (M1577).
	var seen []*sched.Request
	s.RunningSeqs(func(r *sched.Request, sample int, seq paged.SeqID, tokens int) {
		seen = append(seen, r)
		_, err := m.Len(seq)
		assert.NoError(t, err, "a freed handle reported")
		assert.Equal(t, 3, tokens)
	})
	assert.Equal(t, []*sched.Request{b}, seen)
	require.NoError(t, s.Update([]int32{8, 9}))
	assert.Zero(t, a.Outputs(0))
	assert.Equal(t, 1, b.Outputs(0))
	assert.Equal(t, 1, s.Running())
	drain(t, s, 1)
	assert.Equal(t, sched.Cancelled, a.State())
	assert.Equal(t, sched.Finished, b.State())
}

// The budget bounds every step's tokens, decodes first.
func TestTokenBudget(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 256})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 16, ChunkedPrefill: true})
	require.NoError(t, err)
	for i := range 20 {
		_, err := s.Submit(make([]int32, 5+i*3), sched.Options{MaxTokens: 4 + i%5})
		require.NoError(t, err)
	}
	var batch paged.Batch
	for s.Busy() {
		st, err := s.Schedule()
		require.NoError(t, err)
		assert.LessOrEqual(t, st.Tokens, 16)
		require.NoError(t, s.BuildBatch(&batch))
		assert.Len(t, batch.Slots, st.Tokens)
		decodes := true
		for _, sc := range st.Scheduled {
			if sc.Admitted {
				decodes = false
			} else {
				assert.True(t, decodes, "running sequences come before admissions")
			}
		}
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
	}
	assert.EqualValues(t, 20, s.Stats().Finished)
}

// Without chunked prefill a prompt waits until the remaining budget covers
// its uncached tokens. Two prompts of 6 tokens and a budget of 10: with
// nothing in common the second waits a step; the same prompt twice, the
// second hits the first block the first admission cached in the step and
// computes 2 tokens beside it (as vLLM v1 schedules it:
// TestAudit57BudgetCoversUncachedTokens).
func TestBudgetWithoutChunking(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 10})
	require.NoError(t, err)
	_, err = s.Submit([]int32{1, 2, 3, 4, 5, 6}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	_, err = s.Submit(make([]int32, 6), sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	assert.Len(t, st.Scheduled, 1)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	st, err = s.Schedule()
	require.NoError(t, err)
	assert.Len(t, st.Scheduled, 2, "one decode and the 6-token prompt fit 10")
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	drain(t, s, 0)

	m = newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err = sched.New(m, sched.Config{MaxBatchTokens: 10})
	require.NoError(t, err)
	for range 2 {
		_, err = s.Submit(make([]int32, 6), sched.Options{MaxTokens: 3})
		require.NoError(t, err)
	}
	st, err = s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 2, "the second prompt's 2 uncached tokens fit the 4 left")
	assert.Equal(t, 4, st.Scheduled[1].Cached)
	assert.Equal(t, 8, st.Tokens)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	drain(t, s, 0)
}

func TestStrings(t *testing.T) {
	assert.Equal(t, "fcfs", sched.FCFS.String())
	assert.Equal(t, "priority", sched.Priority.String())
	assert.Equal(t, "Policy(9)", sched.Policy(9).String())
	assert.Equal(t, "recompute", sched.Recompute.String())
	assert.Equal(t, "swap", sched.Swap.String())
	assert.Equal(t, "Preemption(9)", sched.Preemption(9).String())
	assert.Equal(t, "scheduled", sched.PhaseScheduled.String())
	assert.Equal(t, "Phase(9)", sched.Phase(9).String())
	assert.Equal(t, "preempted", sched.Preempted.String())
	assert.Equal(t, "State(9)", sched.State(9).String())
	assert.True(t, sched.Cancelled.Done())
	assert.False(t, sched.Running.Done())
	assert.True(t, errors.Is(sched.ErrNever, sched.ErrNever))
}

// AdmitFirst admits before decoding: the newcomer may be preempted in the
// step that admitted it by an older sequence's growth, and it is not
// decoded in its admission step.
func TestAdmitFirst(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5})
	var phases []sched.Phase
	s, err := sched.New(m, sched.Config{AdmitFirst: true, Hooks: sched.Hooks{Phase: func(p sched.Phase) { phases = append(phases, p) }}})
	require.NoError(t, err)
	old, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	assert.Equal(t, []sched.Phase{sched.PhaseAdmit, sched.PhaseDecode, sched.PhaseScheduled, sched.PhaseOutput, sched.PhaseDone}, phases)

	// Old holds 2 full blocks; the newcomer takes the last 2.
	newer, err := s.Submit([]int32{4, 5, 6}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	st, err = s.Schedule()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Preempted, "old's fifth token needs a third block: the newcomer goes")
	require.Len(t, st.Scheduled, 1)
	assert.Equal(t, old.ID(), st.Scheduled[0].Request.ID())
	assert.False(t, st.Scheduled[0].Admitted)
	assert.Equal(t, sched.Preempted, newer.State(), "preempted in the step that admitted it, before it ran")
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, newer.State())
}

// ResampleAfterRecompute drops the victim's pending token, which costs it
// one more step than keeping it.
func TestResampleAfterRecompute(t *testing.T) {
	steps := map[bool]int64{}
	for _, resample := range []bool{false, true} {
		s, _ := tinyRun(t, paged.Config{BlockSize: 4, NumBlocks: 7}, sched.Config{ResampleAfterRecompute: resample})
		st := s.Stats()
		require.EqualValues(t, 1, st.Preemptions)
		steps[resample] = st.Steps
	}
	assert.Equal(t, steps[false]+1, steps[true])
}

func TestNext(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16})
	s, err := sched.New(m, sched.Config{MaxRunning: 1})
	require.NoError(t, err)
	_, _, ok := s.Next()
	assert.False(t, ok)
	_, err = s.Submit([]int32{1}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{2}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	r, sample, ok := s.Next()
	require.True(t, ok)
	assert.Equal(t, b, r)
	assert.Zero(t, sample)
	n := 0
	s.RunningSeqs(func(r *sched.Request, i int, seq paged.SeqID, tokens int) {
		n++
		assert.Equal(t, r.Seq(i), seq)
		l, err := m.Len(seq)
		assert.NoError(t, err)
		assert.Equal(t, l, tokens)
	})
	assert.Equal(t, 1, n)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
}

func TestRequestAccessors(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{Policy: sched.Priority})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3, 4, 5, 6}, sched.Options{MaxTokens: 3, N: 2, Priority: 7})
	require.NoError(t, err)
	other, err := s.Submit([]int32{1, 2, 3, 4, 5, 9}, sched.Options{MaxTokens: 1, Priority: 9})
	require.NoError(t, err)
	assert.EqualValues(t, 1, r.ID())
	assert.Equal(t, 6, r.PromptLen())
	assert.Equal(t, 3, r.MaxTokens())
	assert.Equal(t, 2, r.N())
	assert.Equal(t, 7, r.Priority())
	assert.Equal(t, 1, r.Samples())
	assert.Zero(t, r.Outputs(5), "no such sample")
	assert.Zero(t, r.Seq(-1))
	assert.Equal(t, sched.Waiting, r.State())
	drain(t, s, 1)
	assert.Equal(t, 2, r.Samples())
	assert.Equal(t, 3, r.Outputs(1))
	assert.Zero(t, r.Seq(0), "done")
	assert.Equal(t, 4, other.Cached(), "admitted after request 1 in the same step, it hits the full block request 1 just committed")
	assert.EqualValues(t, 2, s.Stats().Finished)
}
