package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// forkPinLayout: full attention, a sliding window of 1 token and a State
// group of 1 page: a prompt that branches from a cached prefix pins the
// window block before its branch point (paged's retention pins).
var forkPinLayout = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}, {Kind: paged.State, Pages: 1}}

// warmRun serves prompt alone with one sample, leaving its blocks cached.
func warmRun(t *testing.T, s *sched.Scheduler, prompt []int32) {
	t.Helper()
	r, err := s.Submit(prompt, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 7)
	require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
}

// TestForkSamplesWarmPins: a 2-token prompt with 3 samples, alone in a
// pool of 6 blocks of 1 token, with chunked prefill: it holds 4 blocks
// when it forks, and its 2 forks take a state page each. With an empty
// cache it is served. With its first token cached (a one-sample request
// before it), the prompt branches there and pins the window block of
// token 1: the first fork took the last free block, and the manager
// refused the second (its first fork counted as another sequence
// running, so the pins were kept), so the scheduler aborted the request
// ("its 3 samples' state pages do not fit beside its prompt with nothing
// else running"). Pins are a soft cost (docs/hybrid.md): the second fork
// now takes the pin's block.
func TestForkSamplesWarmPins(t *testing.T) {
	for _, warm := range []bool{false, true} {
		m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: 7, Groups: forkPinLayout})
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 1})
		require.NoError(t, err)
		if warm {
			warmRun(t, s, []int32{1})
		}
		r, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 1, N: 3})
		require.NoError(t, err)
		drain(t, s, 7)
		assert.Equal(t, sched.Finished, r.State(), "warm %v: %v", warm, r.Err())
		assert.EqualValues(t, 2, s.Stats().Forks, "warm %v", warm)
		assert.Zero(t, m.Stats().UsedBlocks)
	}
}
