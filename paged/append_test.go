package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// One token appended to a sequence that was on Append's in-place path
// (last block partly filled, its own) after Preempt, Free or a swap-out
// must take the waiting, unknown-sequence or swapped branch, not the
// in-place one: Append's path reads no state, only ownVer == version.
func TestAppendOneTokenAfterStateChange(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 8})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 5), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(a, 6)) // in place
	require.NoError(t, m.Preempt(a))
	used := m.Stats().UsedBlocks
	require.NoError(t, m.Append(a, 7)) // waiting: extends the tokens only
	assert.Equal(t, used, m.Stats().UsedBlocks)
	running, err := m.Running(a)
	require.NoError(t, err)
	assert.False(t, running)
	n, _ := m.Len(a)
	assert.Equal(t, 7, n)

	b, _, err := m.Create(seqOf(100, 5), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(b))
	c, _, err := m.Create(seqOf(200, 5), nil) // reuses b's slot
	require.NoError(t, err)
	require.ErrorIs(t, m.Append(b, 1), paged.ErrUnknownSequence)
	n, _ = m.Len(c)
	assert.Equal(t, 5, n, "a stale handle changes nothing")
	require.ErrorIs(t, m.Append(c, -1), paged.ErrInvalid)
	n, _ = m.Len(c)
	assert.Equal(t, 5, n, "a bad token changes nothing")
	require.NoError(t, m.Check())
}

// One token that starts a fresh block skips hashing and committing only
// when there is nothing to do: it commits what the general path (two
// tokens at once) commits, after an accepted draft that ends the block
// before it and with one-token blocks, where every token fills its block.
func TestAppendOneTokenFreshBlock(t *testing.T) {
	for _, bs := range []int{1, 2} {
		var stored [2][]uint64
		for i, split := range []bool{true, false} {
			m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 32})
			require.NoError(t, err)
			a, _, err := m.Create([]int32{1, 2, 3}, nil)
			require.NoError(t, err)
			step := func(tokens ...int32) {
				if split {
					for _, tok := range tokens {
						require.NoError(t, m.Append(a, tok))
					}
				} else {
					require.NoError(t, m.Append(a, tokens...))
				}
				stored[i] = append(stored[i], m.Stats().BlocksStored)
			}
			require.NoError(t, m.AppendSpeculative(a, 4)) // a draft ends block [3 4]
			// A token after a pending draft is refused on every path and
			// changes nothing: it would make the draft look accepted.
			before := m.Stats()
			require.ErrorIs(t, m.Append(a, 5), paged.ErrSequenceState)
			require.ErrorIs(t, m.Append(a, 5, 6), paged.ErrSequenceState)
			assert.Equal(t, before, m.Stats())
			n, _ := m.Len(a)
			assert.Equal(t, 4, n)
			require.NoError(t, m.AcceptSpeculative(a, 1)) // [3 4] commits
			if split {
				// 5 starts a fresh block after committed ones: nothing to
				// commit but itself when it fills its block (size 1).
				before := m.Stats().BlocksStored
				require.NoError(t, m.Append(a, 5))
				filled := uint64(0)
				if bs == 1 {
					filled = 1
				}
				assert.Equal(t, before+filled, m.Stats().BlocksStored, "block size %d", bs)
				require.NoError(t, m.Append(a, 6))
				stored[i] = append(stored[i], m.Stats().BlocksStored)
			} else {
				step(5, 6)
			}
			step(7, 8)
			step(9, 10)
			require.NoError(t, m.Check())
		}
		assert.Equal(t, stored[1], stored[0], "block size %d", bs)
		assert.NotEqual(t, stored[0][0], stored[0][2], "block size %d: tokens filled blocks", bs)
	}
}
