package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// forkWindowLayout is full attention, a window of 4 tokens and 3 state
// pages, in blocks of 4 tokens.
var forkWindowLayout = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 3}}

// TestSubmitForkBoundCountsWindows: Submit's bound on a request whose
// samples fork (each takes state pages of its own at once) counts what
// the prompt holds when it forks in every group, window groups too
// (paged's PrefillFloor): it counted the full attention blocks and the
// state pages only, so a request whose window blocks made the fork never
// fit was queued, its prompt computed, then aborted. Here an 8-token
// prompt holds 2 full attention blocks, 3 state pages and at least 2
// window blocks when admitted whole (a hit restores none of them), 1
// when its last token is computed alone: with three samples' pages, 13
// or 12 blocks of 11.
func TestSubmitForkBoundCountsWindows(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 12, Groups: forkWindowLayout})
		cfg := sched.Config{}
		if chunked {
			cfg = sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4}
		}
		s, err := sched.New(m, cfg)
		require.NoError(t, err)
		r, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 2, N: 3})
		require.ErrorIs(t, err, sched.ErrNever, "chunked %v", chunked)
		assert.Nil(t, r)
		assert.Zero(t, s.Stats().Submitted)
		assert.Zero(t, m.Stats().Sequences, "nothing added")
	}
}

// TestSubmitForkBoundAtTheEdge: at the bound a request is queued and
// every sample finishes; one sample more is refused. A 13-token prompt
// computed 4 tokens a step computes its last token alone: it holds 4 full
// attention blocks, 3 state pages and 2 window blocks (the 4 the window
// group holds whole would refuse it), and two samples' fork takes 3
// pages more: 12 of 12.
func TestSubmitForkBoundAtTheEdge(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 13, Groups: forkWindowLayout})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4})
	require.NoError(t, err)
	prompt := make([]int32, 13)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	r, err := s.Submit(prompt, sched.Options{MaxTokens: 3, N: 3})
	require.ErrorIs(t, err, sched.ErrNever, "three samples: 15 blocks of 12")
	assert.Nil(t, r)
	r, err = s.Submit(prompt, sched.Options{MaxTokens: 3, N: 2})
	require.NoError(t, err)
	drain(t, s, 7)
	assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
	assert.EqualValues(t, 1, s.Stats().Forks)
}
