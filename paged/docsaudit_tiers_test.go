package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// TestDocsauditSwapAsDocumented walks docs/tiers.md's "Host tier and swap"
// claim by claim: a block shared inside the swapped group moves once and
// comes back shared; a block shared with a sequence outside the group
// stays on the device for it; a swapped-out sequence refuses Append,
// Truncate, Admit and Preempt with ErrSequenceState; swapping twice or
// naming a sequence twice is refused and changes nothing; ResetCache names
// what holds blocks; CanAdmit of a swapped-out sequence answers as
// CanSwapIn; committed blocks still cached on the device are reclaimed by
// SwapIn, not copied; Free releases the host blocks.
func TestDocsauditSwapAsDocumented(t *testing.T) {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 33, HostBlocks: 32})
	require.NoError(t, err)
	parent, _, err := m.Create(seqTokens(10, 1), nil) // blocks: 2 full, 1 partial
	require.NoError(t, err)
	child, err := m.Fork(parent)
	require.NoError(t, err)
	require.NoError(t, m.Append(child, 500)) // copy-on-write of the partial block
	outside, err := m.Fork(parent)
	require.NoError(t, err)
	m.TakeCopies(nil)

	pt, err := m.Table(parent)
	require.NoError(t, err)
	pt = append([]allocator.BlockID(nil), pt...)
	ct, err := m.Table(child)
	require.NoError(t, err)
	ct = append([]allocator.BlockID(nil), ct...)
	ot, err := m.Table(outside)
	require.NoError(t, err)
	ot = append([]allocator.BlockID(nil), ot...)
	distinct := map[allocator.BlockID]bool{}
	for _, b := range append(append([]allocator.BlockID(nil), pt...), ct...) {
		distinct[b] = true
	}

	require.NoError(t, m.SwapOut(parent, child))
	swaps := m.TakeSwaps(nil)
	src := map[allocator.BlockID]int{}
	for _, s := range swaps {
		assert.Equal(t, paged.SwapOut, s.Kind)
		assert.Equal(t, paged.Device, s.Kind.SrcMedium())
		assert.Equal(t, paged.Host, s.Kind.DstMedium())
		src[s.Src]++
	}
	assert.Len(t, swaps, len(distinct), "every distinct block of the group is copied, a shared one once")
	for b, n := range src {
		assert.Equal(t, 1, n, "block %d copied once", b)
	}
	got, err := m.Table(outside)
	require.NoError(t, err)
	assert.Equal(t, ot, got, "the sequence outside the group keeps its device blocks")
	require.NoError(t, m.Check())

	// A swapped-out sequence refuses what needs device blocks; the
	// refusals change nothing.
	before := m.Stats()
	require.ErrorIs(t, m.Append(parent, 1), paged.ErrSequenceState)
	require.ErrorIs(t, m.Truncate(parent, 4), paged.ErrSequenceState)
	_, err = m.Admit(parent)
	require.ErrorIs(t, err, paged.ErrSequenceState)
	require.ErrorIs(t, m.Preempt(parent), paged.ErrSequenceState)
	require.ErrorIs(t, m.SwapOut(parent), paged.ErrSequenceState, "swapped twice")
	require.ErrorIs(t, m.SwapOut(outside, outside), paged.ErrInvalid, "a sequence given twice")
	err = m.ResetCache()
	require.ErrorIs(t, err, paged.ErrCacheInUse)
	assert.Regexp(t, `held by 1 running sequences and 0 pins; 2 sequences are swapped out`, err.Error(),
		"the message names how many of each hold blocks")
	assert.Equal(t, before, m.Stats(), "refusals change nothing")
	assert.Empty(t, m.TakeSwaps(nil))

	// CanAdmit of a swapped-out sequence answers for SwapIn.
	swapAns, _, err := m.CanSwapIn(parent)
	require.NoError(t, err)
	admitAns, err := m.CanAdmit(parent)
	require.NoError(t, err)
	assert.Equal(t, swapAns, admitAns)
	assert.Equal(t, paged.AdmitOK, admitAns)

	// SwapIn reclaims the committed blocks still cached on the device
	// (the two full prompt blocks, held by outside anyway) and copies the
	// rest; the block shared in the group comes back shared.
	ans, need, err := m.CanSwapIn(parent, child)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitOK, ans)
	require.NoError(t, m.SwapIn(parent, child))
	in := m.TakeSwaps(nil)
	assert.Less(t, len(in), len(distinct), "cached blocks are reclaimed, not copied")
	assert.Equal(t, need, len(in), "CanSwapIn's count is the blocks copied in")
	pt2, err := m.Table(parent)
	require.NoError(t, err)
	ct2, err := m.Table(child)
	require.NoError(t, err)
	assert.Equal(t, pt2[:2], ct2[:2], "the prompt's blocks are shared again")
	assert.Equal(t, pt[:2], pt2[:2], "and are the very blocks still cached on the device")
	require.NoError(t, m.Check())

	// Free releases a swapped-out sequence's host blocks; with only
	// swapped-out sequences left, ResetCache names them.
	require.NoError(t, m.SwapOut(parent, child))
	m.TakeSwaps(nil)
	require.NoError(t, m.Free(outside))
	err = m.ResetCache()
	require.ErrorIs(t, err, paged.ErrCacheInUse)
	assert.Regexp(t, `host blocks are held by 2 swapped-out sequences`, err.Error())
	require.NoError(t, m.Free(parent))
	require.Positive(t, m.Stats().Tiers.HostUsed)
	require.NoError(t, m.Free(child))
	assert.Zero(t, m.Stats().Tiers.HostUsed)
	assert.Zero(t, m.Stats().Tiers.Swapped)
	require.NoError(t, m.Check())
}

// TestDocsauditSwapRefusals: docs/tiers.md's "bad input changes nothing"
// for the tier: no host tier (ErrNoHostTier, for SwapOut and Onboard) and
// a host tier too small for the group (ErrNoSpace).
func TestDocsauditSwapRefusals(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(10, 1), nil)
	require.NoError(t, err)
	before := m.Stats()
	require.ErrorIs(t, m.SwapOut(id), paged.ErrNoHostTier)
	w, err := m.Add(seqTokens(10, 1), nil)
	require.NoError(t, err)
	_, err = m.Onboard(w)
	require.ErrorIs(t, err, paged.ErrNoHostTier)
	require.NoError(t, m.Free(w))
	assert.Equal(t, before.UsedBlocks, m.Stats().UsedBlocks)

	small, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17, HostBlocks: 2})
	require.NoError(t, err)
	big, _, err := small.Create(seqTokens(13, 1), nil) // 4 blocks
	require.NoError(t, err)
	stepDone(small)
	before = small.Stats()
	tbl, err := small.Table(big)
	require.NoError(t, err)
	tbl = append([]allocator.BlockID(nil), tbl...)
	err = small.SwapOut(big)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, before, small.Stats(), "a refused swap-out changes nothing")
	got, err := small.Table(big)
	require.NoError(t, err)
	assert.Equal(t, tbl, got)
	assert.Empty(t, small.TakeSwaps(nil))
	require.NoError(t, small.Check())
}
