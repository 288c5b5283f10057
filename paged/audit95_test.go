package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit95SwapCountersCountCallsAndBlocks: one SwapOut and one SwapIn
// of a group of two sequences are one call each, and the blocks they copy
// are counted in TierStats and in group 0's TierStatsGroup alike; the
// swapped count is the group's size.
func TestAudit95SwapCountersCountCallsAndBlocks(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 8})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(6, 1), nil) // a full block and a partial one
	require.NoError(t, err)
	b, _, err := m.Create(seqTokens(6, 100), nil)
	require.NoError(t, err)
	stepDone(m)

	require.NoError(t, m.SwapOut(a, b))
	ts := m.Stats().Tiers
	require.Equal(t, 2, ts.Swapped)
	require.Equal(t, uint64(1), ts.SwapOutCalls)
	require.Equal(t, uint64(4), ts.SwapOutBlocks)
	g0, err := m.TierStatsGroup(0)
	require.NoError(t, err)
	require.Equal(t, uint64(4), g0.SwapOutBlocks)
	stepDone(m)

	// The full blocks are reclaimed from the device prefix cache; the
	// partial ones are copied back.
	require.NoError(t, m.SwapIn(a, b))
	require.NoError(t, m.Check())
	ts = m.Stats().Tiers
	require.Equal(t, 0, ts.Swapped)
	require.Equal(t, uint64(1), ts.SwapInCalls)
	require.Equal(t, uint64(2), ts.SwapInBlocks)
	g0, err = m.TierStatsGroup(0)
	require.NoError(t, err)
	require.Equal(t, uint64(2), g0.SwapInBlocks)
	require.Equal(t, uint64(1), m.Stats().Tiers.SwapOutCalls)
}

// TestAudit95SwapInNeverPastTheWatermark: a sequence that grew by Append
// past what the watermark leaves of the pool (7 blocks of 8 usable, a
// watermark of 2) can never be swapped back in, though the pool could
// hold it: a swap-in is held to the watermark as an admission is.
func TestAudit95SwapInNeverPastTheWatermark(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 8, Watermark: 0.25})
	require.NoError(t, err)
	require.Equal(t, 8, m.Stats().UsableBlocks)
	a, _, err := m.Create(seqTokens(4, 1), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(a, seqTokens(24, 5)...)) // 7 blocks
	stepDone(m)
	require.NoError(t, m.SwapOut(a))
	stepDone(m)
	adm, _, err := m.CanSwapIn(a)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitNever, adm)
	require.ErrorIs(t, m.SwapIn(a), paged.ErrNever)
}

// TestAudit95HybridSwapInSharedTailIsCopiedOnWrite: in a hybrid manager a
// fork group swapped out and in comes back sharing its partly filled last
// blocks, so the next one-token Append copies the tail on write instead
// of writing into the block the fork reads.
func TestAudit95HybridSwapInSharedTailIsCopiedOnWrite(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 16,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}}})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(6, 1), nil)
	require.NoError(t, err)
	b, err := m.Fork(a)
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(a, b))
	stepDone(m)
	require.NoError(t, m.SwapIn(a, b))
	stepDone(m)
	ta, err := m.Table(a)
	require.NoError(t, err)
	tb, err := m.Table(b)
	require.NoError(t, err)
	require.Equal(t, ta, tb, "the group comes back sharing its blocks")

	require.NoError(t, m.Append(a, 99))
	require.NoError(t, m.Check())
	ta, err = m.Table(a)
	require.NoError(t, err)
	tb, err = m.Table(b)
	require.NoError(t, err)
	require.Equal(t, ta[0], tb[0])
	require.NotEqual(t, ta[1], tb[1], "the shared tail is copied before the write")
	require.Len(t, m.TakeCopies(nil), 2, "one copy per group")
}

// TestAudit95SwapInHintsNameTheParent: a block a SwapIn copies back and
// commits again is hinted to a hinting policy (audit 13's spy) with its
// depth and the device block before it as its parent, as at admission.
func TestAudit95SwapInHintsNameTheParent(t *testing.T) {
	spy := &spyPolicy{hints: map[allocator.BlockID]eviction.Hint{}}
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 8, DisableOffload: true,
		Policy: func(n int) eviction.Policy {
			spy.Policy = eviction.NewLRU(n)
			return spy
		}})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(10, 1), nil) // 2 full blocks and a partial one
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(a))
	stepDone(m)
	filler, _, err := m.Create(seqTokens(32, 100), nil) // evicts a's device copies
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.Free(filler))

	require.NoError(t, m.SwapIn(a))
	require.Equal(t, 3, kinds(m.TakeSwaps(nil))[paged.SwapIn], "everything is copied back")
	tbl, err := m.Table(a)
	require.NoError(t, err)
	h := spy.hints[tbl[1]]
	require.Equal(t, int32(1), h.Depth)
	require.Equal(t, tbl[0], h.Parent, "block 1's parent is block 0")
	require.Equal(t, allocator.NoBlock, spy.hints[tbl[0]].Parent)
}

// TestAudit95SwapOutNeedsNoHostBlockForReleasedWindow: a windowed
// sequence swapped out right after its prompt step holds blocks its next
// query does not read; they are released without a copy, so a host tier
// with room for the rest alone takes it.
func TestAudit95SwapOutNeedsNoHostBlockForReleasedWindow(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 2})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(16, 1), &paged.SeqOptions{Window: 8}) // 4 blocks, the query at 16 reads blocks 2 and 3
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(a))
	require.Equal(t, 2, kinds(m.TakeSwaps(nil))[paged.SwapOut])
	require.Equal(t, 2, m.Stats().Tiers.HostUsed)
}
