package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests of the hundred-and-eleventh mutation round (docs/testing.md)
// through the exported API; the others are in
// audit159_internal_test.go.

// TestAudit159SwapOutWithDraftsKeepsTheLastTokensWindow: a windowed
// sequence with drafts pending is swapped out from the position before
// its accepted length, since the token sampled last is computed with the
// drafts (swapFrom, as Append slides). Window 4 over blocks of 4, 7
// accepted tokens and 2 drafts: the query at position 6 reads block 0,
// so all 3 blocks are copied to the host and come back (M4574 swapped
// from position 7, whose window starts at block 1, and released block 0
// without a copy).
func TestAudit159SwapOutWithDraftsKeepsTheLastTokensWindow(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 32})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(7, 1), &paged.SeqOptions{Window: 4})
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.AppendSpeculative(id, 50, 51))
	stepDone(m)
	require.NoError(t, m.SwapOut(id))
	outs := 0
	for _, d := range m.TakeSwaps(nil) {
		if d.Kind == paged.SwapOut {
			outs++
		}
	}
	require.Equal(t, 3, outs, "blocks copied to the host")
	require.NoError(t, m.SwapIn(id))
	tab, err := m.Table(id)
	require.NoError(t, err)
	require.Len(t, tab, 3)
	require.NotZero(t, tab[0], "block 0 came back, not the null block")
	require.NoError(t, m.Check())
}

// TestAudit159OnboardingsOfTwoGroupsStayApart: blocks onboarded one
// after another along a chain merge into one BlockMoved event only
// within a group. Two admissions in a row over an offloaded prefix of a
// full-attention and a window group: the first onboards blocks 0-1 of
// group 0, then of group 1; the second onboards group 0's blocks 2-3,
// whose chain follows the last event (group 1's, ending at block 1).
// Each group's BlockMoved events count its onboards (M4581 merged group
// 0's blocks 2-3 into group 1's event).
func TestAudit159OnboardingsOfTwoGroupsStayApart(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 49, HostBlocks: 64, Events: 1024,
		Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}}})
	require.NoError(t, err)
	prefix := seqOf(1, 16)
	with := func(n int, tail int32) []int32 {
		return append(append([]int32(nil), prefix[:n]...), tail)
	}
	a, _, err := m.Create(with(16, 1000), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	m.TakeSwaps(nil)
	m.DrainEvents(nil)
	_, cached, err := m.Create(with(8, 3000), nil)
	require.NoError(t, err)
	require.Equal(t, 8, cached)
	_, cached, err = m.Create(with(16, 4000), nil)
	require.NoError(t, err)
	require.Equal(t, 16, cached)
	moved := make([]int, 2)
	for _, e := range m.DrainEvents(nil) {
		if e.Kind == paged.BlockMoved && e.From == paged.Host && e.Medium == paged.Device {
			moved[e.Group] += len(e.Hashes)
		}
	}
	for g := range moved {
		st, err := m.TierStatsGroup(g)
		require.NoError(t, err)
		require.EqualValues(t, st.Onboards, moved[g], "group %d BlockMoved events", g)
	}
	st, err := m.TierStatsGroup(0)
	require.NoError(t, err)
	require.EqualValues(t, 4, st.Onboards, "group 0 onboards its 4 blocks")
	require.NoError(t, m.Check())
}

// TestAudit159SwapInKeepsTheWatermark: a swap-in is an admission, so it
// leaves the watermark's blocks free as Admit does. 10 usable blocks
// with a watermark of 2, a swapped-out sequence of 3 blocks and 4 free:
// it fits only by taking the watermark's, so CanSwapIn answers later and
// SwapIn is refused with ErrNoSpace; once 2 more are free it comes back
// (M4576 let it in at once).
func TestAudit159SwapInKeepsTheWatermark(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 11, HostBlocks: 16, Watermark: 0.2, DisablePrefixCaching: true})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(12, 1), nil)
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(a))
	stepDone(m)
	b, _, err := m.Create(seqTokens(24, 100), nil)
	require.NoError(t, err)
	require.Equal(t, 4, m.Stats().FreeBlocks, "free blocks beside b")
	adm, need, err := m.CanSwapIn(a)
	require.NoError(t, err)
	require.Equal(t, 3, need)
	require.Equal(t, paged.AdmitLater, adm)
	require.ErrorIs(t, m.SwapIn(a), paged.ErrNoSpace)
	require.NoError(t, m.Truncate(b, 16))
	adm, _, err = m.CanSwapIn(a)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitOK, adm)
	require.NoError(t, m.SwapIn(a))
	require.NoError(t, m.Check())
}
