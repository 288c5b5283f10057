package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests of the hundred-and-sixteenth mutation round (docs/testing.md)
// through the exported API.

// TestAudit164WatermarkKeptFreeOfAdmissions: an admission leaves the
// watermark's blocks free, now as well as for good. 10 usable blocks of
// 4 tokens and a watermark of 0.2 (2 blocks); a sequence of 28 tokens
// holds 7, leaving 3 free: a prompt of 4 tokens (1 block) fits, one of 8
// (2 blocks) would dip into the watermark and waits, in Admit, CanAdmit
// and CanAdmitTokens alike, and fits once the first sequence is gone
// (M4774 let Admit and CanAdmit take the watermark's blocks; M4776, the
// same in CanAdmitTokens, was caught by TestRefusedCallsChangeNothing).
func TestAudit164WatermarkKeptFreeOfAdmissions(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 11, Watermark: 0.2})
	require.NoError(t, err)
	big, _, err := m.Create(seqTokens(28, 1), nil)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitOK, m.CanAdmitTokens(4))
	require.Equal(t, paged.AdmitLater, m.CanAdmitTokens(8))
	id, err := m.Add(seqTokens(8, 100), nil)
	require.NoError(t, err)
	a, err := m.CanAdmit(id)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitLater, a)
	_, err = m.Admit(id)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	require.NoError(t, m.Free(big))
	require.Equal(t, paged.AdmitOK, m.CanAdmitTokens(8))
	_, err = m.Admit(id)
	require.NoError(t, err)
	require.NoError(t, m.Check())
}

// TestAudit164TruncateToNothingIsInvalidInEveryState: Truncate keeps at
// least one token (Free ends a sequence): a length of 0 is ErrInvalid
// whatever the sequence's state, as a length past its tokens is, and
// changes nothing. A running, a waiting and a swapped-out sequence are
// cut to 0 and to one token more than they hold. For the running and
// the waiting one minTruncate refuses 0 too (it is at least 1), so only
// the swapped-out one, whose state is checked before minTruncate, tells
// the length check's bound (M4783 let 0 through to the state check,
// which answered ErrSequenceState).
func TestAudit164TruncateToNothingIsInvalidInEveryState(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 16})
	require.NoError(t, err)
	run, _, err := m.Create(seqTokens(6, 1), nil)
	require.NoError(t, err)
	swapped, _, err := m.Create(seqTokens(6, 50), nil)
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(swapped))
	stepDone(m)
	wait, err := m.Add(seqTokens(6, 100), nil)
	require.NoError(t, err)
	for _, id := range []paged.SeqID{run, wait, swapped} {
		before := table(t, m, id)
		for _, n := range []int{0, 7} {
			require.ErrorIs(t, m.Truncate(id, n), paged.ErrInvalid, "%v to %d", id, n)
		}
		toks, err := m.Tokens(id)
		require.NoError(t, err)
		require.Len(t, toks, 6)
		require.Equal(t, before, table(t, m, id))
		require.NoError(t, m.Check())
	}
}
