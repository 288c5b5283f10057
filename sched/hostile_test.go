package sched_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The bad-input tests: every refused call returns an error wrapping the
// package's sentinel and leaves the scheduler and its manager as they
// were (statistics, queues, the step in progress).

// view is what a refused call must not change.
type view struct {
	Stats            sched.Stats
	Load             sched.Load
	Running, Waiting int
	Busy             bool
	Manager          paged.Stats
}

func viewOf(s *sched.Scheduler) view {
	return view{s.Stats(), s.Load(), s.Running(), s.Waiting(), s.Busy(), s.Manager().Stats()}
}

// TestBadInputSubmit: Submit's refusals, idle and in the middle of a step.
func TestBadInputSubmit(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 9, MaxModelLen: 24})
	s, err := sched.New(m, sched.Config{MaxRunning: 4, MaxBatchTokens: 16})
	require.NoError(t, err)
	one := []int32{1}
	cases := []struct {
		name   string
		prompt []int32
		opts   sched.Options
		want   error
	}{
		{"nil prompt", nil, sched.Options{MaxTokens: 1}, sched.ErrInvalid},
		{"empty prompt", []int32{}, sched.Options{MaxTokens: 1}, sched.ErrInvalid},
		{"zero max tokens", one, sched.Options{}, sched.ErrInvalid},
		{"negative max tokens", one, sched.Options{MaxTokens: -1}, sched.ErrInvalid},
		{"min int max tokens", one, sched.Options{MaxTokens: math.MinInt}, sched.ErrInvalid},
		{"max int max tokens", []int32{1, 2}, sched.Options{MaxTokens: math.MaxInt}, sched.ErrNever},
		{"negative N", one, sched.Options{MaxTokens: 1, N: -1}, sched.ErrInvalid},
		{"N above MaxSamples", one, sched.Options{MaxTokens: 1, N: sched.MaxSamples + 1}, sched.ErrInvalid},
		{"N above MaxRunning", one, sched.Options{MaxTokens: 1, N: 5}, sched.ErrInvalid},
		{"negative beam width", one, sched.Options{MaxTokens: 1, BeamWidth: -1}, sched.ErrInvalid},
		{"beam and N", one, sched.Options{MaxTokens: 1, BeamWidth: 2, N: 2}, sched.ErrInvalid},
		{"negative token", []int32{1, -2, 3}, sched.Options{MaxTokens: 1}, sched.ErrInvalid},
		{"bad seq options", one, sched.Options{MaxTokens: 1, Seq: &paged.SeqOptions{Window: -1}}, sched.ErrInvalid},
		// A full hit would schedule the prompt with no token to compute
		// and expect samples from it; BuildBatch then refused the step.
		{"full hit allowed", []int32{1, 2, 3, 4}, sched.Options{MaxTokens: 1, Seq: &paged.SeqOptions{AllowFullHit: true}}, sched.ErrInvalid},
		{"longer than MaxModelLen", make([]int32, 25), sched.Options{MaxTokens: 1}, sched.ErrNever},
		{"prompt plus outputs past MaxModelLen", make([]int32, 20), sched.Options{MaxTokens: 5}, sched.ErrNever},
		{"more KV than the pool", make([]int32, 20), sched.Options{MaxTokens: 4}, sched.ErrNever},
		{"over the budget unchunked", make([]int32, 17), sched.Options{MaxTokens: 1}, sched.ErrNever},
	}
	check := func(t *testing.T) {
		for _, tc := range cases {
			before := viewOf(s)
			r, err := s.Submit(tc.prompt, tc.opts)
			assert.ErrorIs(t, err, tc.want, tc.name)
			assert.Nil(t, r, tc.name)
			assert.Equal(t, before, viewOf(s), "%s: a refused Submit changes nothing", tc.name)
		}
	}
	t.Run("idle", check)
	_, err = s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 1)
	t.Run("in a step", check)
	require.NoError(t, s.Update([]int32{9}), "the step is intact")
	drain(t, s, 1)
	require.NoError(t, m.Check())
}

// TestBadInputCalls: calls out of order or with arguments that do not fit
// the step are refused with ErrInvalid and change nothing; the step they
// were refused in goes on.
func TestBadInputCalls(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)

	before := viewOf(s)
	assert.ErrorIs(t, s.Update(nil), sched.ErrInvalid, "Update without a step")
	assert.ErrorIs(t, s.Update([]int32{1}), sched.ErrInvalid, "Update without a step")
	assert.ErrorIs(t, s.UpdateBeams(nil, []int{}), sched.ErrInvalid, "UpdateBeams without a step")
	assert.ErrorIs(t, s.BuildBatch(&paged.Batch{}), sched.ErrInvalid, "BuildBatch without a step")
	assert.Equal(t, before, viewOf(s))

	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4, N: 2})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Equal(t, 2, st.Outputs, "the prompt's step samples both")

	before = viewOf(s)
	for name, call := range map[string]func() error{
		"Schedule twice":           func() error { _, err := s.Schedule(); return err },
		"Update short":             func() error { return s.Update([]int32{1}) },
		"Update long":              func() error { return s.Update([]int32{1, 2, 3}) },
		"Update nil":               func() error { return s.Update(nil) },
		"Update negative":          func() error { return s.Update([]int32{1, math.MinInt32}) },
		"UpdateBeams nil parents":  func() error { return s.UpdateBeams([]int32{1, 2}, nil) },
		"UpdateBeams short":        func() error { return s.UpdateBeams([]int32{1, 2}, []int{0}) },
		"UpdateBeams not a beam":   func() error { return s.UpdateBeams([]int32{1, 2}, []int{1, 0}) },
		"UpdateBeams out of range": func() error { return s.UpdateBeams([]int32{1, 2}, []int{0, math.MaxInt}) },
		"BuildBatch nil":           func() error { return s.BuildBatch(nil) },
		"BuildBatch bad stride":    func() error { return s.BuildBatch(&paged.Batch{Stride: -1}) },
		"Cancel nil":               func() error { return s.Cancel(nil) },
	} {
		assert.ErrorIs(t, call(), sched.ErrInvalid, name)
		assert.Equal(t, before, viewOf(s), "%s: a refused call changes nothing", name)
	}
	var b paged.Batch
	require.NoError(t, s.BuildBatch(&b), "the step is intact")
	require.NoError(t, s.Update([]int32{5, 6}))
	assert.Equal(t, 2, r.Samples())
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, r.State())
	assert.ErrorIs(t, s.Cancel(r), sched.ErrDone)
	assert.ErrorIs(t, s.Cancel(&sched.Request{}), sched.ErrForeign, "a Request not made by Submit")
	require.NoError(t, m.Check())
	assert.Zero(t, m.Stats().Sequences)
}

// TestBadInputRequestAccessors: out-of-range sample indexes read as
// nothing, never panic.
func TestBadInputRequestAccessors(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	for _, i := range []int{-1, 1, math.MaxInt, math.MinInt} {
		assert.Zero(t, r.Outputs(i), "Outputs(%d)", i)
		assert.Zero(t, r.Seq(i), "Seq(%d)", i)
	}
	assert.NotZero(t, r.Seq(0))
}

// TestLoadCountsSwappedBeams: a beam search swapped out as a group waits
// with every beam (Scheduler.Waiting counts them), and Load, whose
// Waiting is documented as Scheduler.Waiting, counts them and the tokens
// they have still to decode.
func TestLoadCountsSwappedBeams(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, HostBlocks: 16})
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	var tokens []int32
	var parents []int
	checked := false
	for s.Busy() {
		st := beamStep(t, s)
		if b.State() == sched.Preempted && b.Beams() == 2 && a.Beams() > 0 {
			l := s.Load()
			assert.Equal(t, 2, s.Waiting())
			assert.Equal(t, s.Waiting(), l.Waiting)
			// No stop tokens: a beam decodes until MaxTokens, and a
			// finished one has nothing left.
			decode := 0
			for _, r := range []*sched.Request{a, b} {
				for i := range r.Samples() {
					decode += r.MaxTokens() - r.Outputs(i)
				}
			}
			assert.Equal(t, decode, l.DecodeTokens, "decode tokens, the swapped beams' included")
			checked = true
		}
		tokens, parents = ownParents(st, tokens, parents)
		require.NoError(t, s.UpdateBeams(tokens, parents))
	}
	require.True(t, checked, "the second beam search was swapped out")
}
