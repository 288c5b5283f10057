package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The thirty-fifth mutation round (docs/testing.md): the scheduler's
// load, submission and set-up.

// A sequence swapped out keeps its computed KV on the host: Load counts
// no prefill for it, only its pending token and its decode (M1565).
func TestAudit81SwappedOutLoadHasNoPrefill(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 6, HostBlocks: 16})
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 6})
	require.NoError(t, err)
	b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6})
	require.NoError(t, err)
	swapped := false
	for s.Busy() && !swapped {
		st, err := s.Schedule()
		require.NoError(t, err)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
		swapped = b.State() == sched.Preempted
	}
	require.True(t, swapped, "b was swapped out")
	require.Equal(t, sched.Running, a.State())
	l := s.Load()
	assert.Equal(t, 1, l.Waiting)
	assert.Zero(t, l.PrefillTokens, "the swapped-out sequence recomputes nothing")
	assert.Equal(t, 6-a.Outputs(0)+6-b.Outputs(0), l.DecodeTokens)
}

// Submit's bounds on samples and beams, each at MaxSamples under a
// MaxRunning above it, with errors that name the option at fault (a
// BeamWidth out of range was refused all the same as an N, which the
// caller never set: M1578, M1579, M1581); Stats.Submitted counts the
// requests taken, not the refused (M1590).
func TestAudit81SampleBoundsAndSubmitted(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{MaxRunning: 2 * sched.MaxSamples})
	require.NoError(t, err)
	prompt := []int32{1, 2, 3}
	for _, tc := range []struct {
		opts sched.Options
		name string
	}{
		{sched.Options{MaxTokens: 2, N: sched.MaxSamples + 1}, "N 65"},
		{sched.Options{MaxTokens: 2, BeamWidth: sched.MaxSamples + 1}, "BeamWidth 65"},
		{sched.Options{MaxTokens: 2, BeamWidth: -1}, "BeamWidth -1"},
		{sched.Options{MaxTokens: 2, N: -1}, "N -1"},
	} {
		_, err := s.Submit(prompt, tc.opts)
		require.ErrorIs(t, err, sched.ErrInvalid, tc.name)
		assert.Contains(t, err.Error(), tc.name)
	}
	assert.Zero(t, s.Stats().Submitted)
	assert.Zero(t, s.Waiting())
	_, err = s.Submit(prompt, sched.Options{MaxTokens: 2, N: sched.MaxSamples})
	require.NoError(t, err)
	_, err = s.Submit(prompt, sched.Options{MaxTokens: 2, BeamWidth: sched.MaxSamples})
	require.NoError(t, err)
	assert.EqualValues(t, 2, s.Stats().Submitted)
	assert.Equal(t, 2, s.Waiting())
}

// Without prefix caching a chunked-local group keeps no block before its
// chunk's: the scheduler's count of what it releases must not keep one,
// or a forking prompt that fits alone is refused room for its forks and
// aborted. The smallest case TestForkAloneWithinBoundRapid finds under
// M1572 (which it catches at CI's 20,000 runs, not at 100), set down: one
// token a block, a window of 2, a chunk of 1, a State group of one page,
// a prompt of 2 and 2 samples in a pool of the prompt's floor (6), one
// page for the fork and one block spare.
func TestAudit81ChunkedLocalWithoutCachingForksAtTheEdge(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2},
		{Kind: paged.ChunkedLocal, Chunk: 1}, {Kind: paged.State, Pages: 1}}
	cold := newManager(t, paged.Config{BlockSize: 1, NumBlocks: 1000, Groups: groups, DisablePrefixCaching: true})
	floor, err := cold.PrefillFloor(2, nil, true)
	require.NoError(t, err)
	require.Equal(t, 6, floor)
	m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: floor + 1 + 1, Groups: groups, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 2})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 1, N: 2})
	require.NoError(t, err)
	drain(t, s, 10)
	assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
	assert.EqualValues(t, 1, s.Stats().Forks)
	require.NoError(t, m.Check())
}
