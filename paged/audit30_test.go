package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// forkPinLayout: full attention, a sliding window of 1 token and a State
// group of 1 page, in blocks of 1 token: a sequence that branches from a
// cached prefix pins the window block before its branch point when its
// window leaves it (retention pins, docs/hybrid.md).
var forkPinLayout = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}, {Kind: paged.State, Pages: 1}}

// forkPinParent caches token 1 and runs [1 2] past it chunk by chunk, in
// a pool of 6 usable blocks: it holds 4 (2 full-attention blocks, its
// window's and its state page) and pins the window block of token 1,
// with one block left.
func forkPinParent(t *testing.T, m *paged.Manager) paged.SeqID {
	t.Helper()
	w, _, err := m.Create([]int32{1}, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(w))
	id, err := m.Add([]int32{1, 2}, nil)
	require.NoError(t, err)
	_, rest, err := m.AdmitChunk(id, 1, nil)
	require.NoError(t, err)
	m.TakeCheckpoints(nil)
	m.EndStep()
	require.NoError(t, m.Append(id, rest...))
	m.TakeCheckpoints(nil)
	m.EndStep()
	require.Equal(t, 1, m.Stats().RetentionPins)
	return id
}

// TestForkSamplesReleasePins: a sequence alone in the pool releases its
// retention pins when a Fork finds no room otherwise (pins are a soft
// cost: they never make a request fail that a pool without them would
// serve). A scheduler forks a prompt's samples one after another, so at
// the second fork the first one runs too: the manager counted it as
// another sequence, kept the pins and refused the fork (ErrNoSpace), and
// sched aborted the request as one whose samples never fit beside their
// prompt, though without the cached prefix (no pin) they fit. The
// sequence's own forks no longer count (aloneInLine); another sequence
// running still does.
func TestForkSamplesReleasePins(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 7, Groups: forkPinLayout})
	require.NoError(t, err)
	id := forkPinParent(t, m)
	c1, err := m.Fork(id)
	require.NoError(t, err, "one block left for the first fork's page")
	c2, err := m.Fork(id)
	require.NoError(t, err, "the second takes the pin's block")
	assert.EqualValues(t, 1, m.Stats().RetentionPinsReleased)
	assert.Zero(t, m.Stats().RetentionPins)
	require.NoError(t, m.Check())
	// A fork of a fork is of the line too.
	for _, c := range []paged.SeqID{c1, c2} {
		require.NoError(t, m.Free(c))
	}
	require.NoError(t, m.Check())

	// Beside a sequence of another line the pins stay: a scheduler
	// preempts that one, or waits for it.
	m, err = paged.New(paged.Config{BlockSize: 1, NumBlocks: 10, Groups: forkPinLayout})
	require.NoError(t, err)
	id = forkPinParent(t, m)
	other, err := m.Add([]int32{9}, nil)
	require.NoError(t, err)
	_, err = m.Admit(other) // 3 of the 4 blocks left
	require.NoError(t, err)
	_, err = m.Fork(id)
	require.NoError(t, err)
	_, err = m.Fork(id)
	require.ErrorIs(t, err, paged.ErrNoSpace, "another sequence runs")
	assert.Equal(t, 1, m.Stats().RetentionPins)
	require.NoError(t, m.Check())
}
