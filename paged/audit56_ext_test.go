package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The thirteenth mutation round's gaps in the group operations that the
// external tests' helpers reach (audit56_test.go has the others).

// TestAudit56MissThatFitsAloneWaits (M719): a prompt whose checkpoint hit
// never fits (its pages besides the sequence's own) falls back to the
// miss, which is AdmitLater, not AdmitNever, when it needs exactly the
// room of the idle pool: it is admitted once the sequence running beside
// it ends. The mutant refused it for good.
func TestAudit56MissThatFitsAloneWaits(t *testing.T) {
	// 9 usable blocks: the prompt of 28 tokens takes 7 blocks and 2 state
	// pages computed from scratch; with the hit on its 2-block prefix,
	// the checkpoint's 2 pages more.
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 10,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	// A checkpoint of the state after the 2-block prefix.
	with := branchedAt(t, m, seqOf(1, 8))
	require.Equal(t, 6, m.Stats().CachedBlocks, "the prefix, a block of each branch, the checkpoint")
	// One token beside it takes the 3 free blocks, evicting nothing.
	x, _, err := m.Create([]int32{900}, nil)
	require.NoError(t, err)
	require.Equal(t, 6, m.Stats().CachedBlocks)

	id, err := m.Add(with(300, 20), nil)
	require.NoError(t, err)
	a2, err := m.CanAdmit(id)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitLater, a2, "the miss fits the idle pool exactly")
	_, err = m.Admit(id)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	require.NoError(t, m.Free(x))
	cached, err := m.Admit(id)
	require.NoError(t, err)
	require.Zero(t, cached, "computed from scratch")
	require.NoError(t, m.Check())
}
