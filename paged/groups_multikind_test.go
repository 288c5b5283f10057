package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// TestMultiKindHit: on a Hymba-like layout (full attention, a state group
// and two sliding windows of different sizes) three requests share a
// system prompt: the first computes it, the second branches after it (a
// checkpoint of every state group is taken there), the third hits it
// whole: full-attention blocks [0, L), each window's own blocks before L,
// and the checkpoint at L, copied into its own state pages.
func TestMultiKindHit(t *testing.T) {
	const bs = 4
	groups := []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.SlidingWindow, Window: 5}, {Kind: paged.SlidingWindow, Window: 12}, {Kind: paged.State, Pages: 1}}
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 128, Groups: groups})
	require.NoError(t, err)
	system := seqOf(1, 24) // 6 blocks
	prompt := func(tail int) []int32 { return append(append([]int32(nil), system...), seqOf(tail, 6)...) }
	var cached [3]int
	for i := range 3 {
		id, n, err := m.Create(prompt(1000*(i+1)), nil)
		require.NoError(t, err)
		cached[i] = n
		cks := m.TakeCheckpoints(nil)
		if i == 1 {
			require.Len(t, cks, 2, "the branch point's checkpoint, one per state group")
			for _, c := range cks {
				assert.Equal(t, 24, c.Tokens)
				assert.Len(t, c.Pages, groups[c.Group].Pages)
			}
		}
		if i == 2 {
			copies := m.TakeCopies(nil)
			assert.Len(t, copies, 3, "the checkpoint's pages copied into the sequence's state")
			win5, err := m.TableGroup(id, 2)
			require.NoError(t, err)
			win12, err := m.TableGroup(id, 3)
			require.NoError(t, err)
			// A hit at 24 needs ceil(4/4) = 1 block of the 5-token
			// window and ceil(11/4) = 3 of the 12-token one.
			assert.Equal(t, []allocator.BlockID{0, 0, 0, 0, 0}, win5[:5])
			assert.NotEqual(t, allocator.BlockID(0), win5[5])
			assert.Equal(t, []allocator.BlockID{0, 0, 0}, win12[:3])
			assert.NotContains(t, win12[3:6], allocator.BlockID(0))
		}
		require.NoError(t, m.Check())
		require.NoError(t, m.Free(id))
	}
	assert.Equal(t, [3]int{0, 0, 24}, cached, "the second branches, the third hits")
}
