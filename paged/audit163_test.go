package paged_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit163AddHashedLeavesTheCallersSpareCapacity: AddHashed copies
// the hashes it is given; the capacity past them stays the caller's, even
// when it would hold every hash of the sequence's MaxTokens hint (M4755:
// the sequence's hash buffer was made by appending to the caller's slice
// without capping it, so it took over the caller's array and wrote into
// the spare capacity).
func TestAudit163AddHashedLeavesTheCallersSpareCapacity(t *testing.T) {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 16})
	require.NoError(t, err)
	prompt := seqTokens(9, 1)
	given, err := m.BlockHashes(make([]paged.Hash, 0, 16), prompt, nil)
	require.NoError(t, err)
	require.Len(t, given, 2)
	spare := given[2:16]
	for i := range spare {
		spare[i] = paged.Hash{byte(i + 1)}
	}
	want := slices.Clone(spare)

	id, err := m.AddHashed(prompt, given, &paged.SeqOptions{MaxTokens: 12 * bs})
	require.NoError(t, err)
	_, err = m.Admit(id)
	require.NoError(t, err)
	require.NoError(t, m.Append(id, seqTokens(12, 50)...))
	require.Equal(t, want, spare, "the caller's spare capacity was written")
	require.NoError(t, m.Check())
}

// TestAudit163CreateFromHashesNeverWaits: CreateFromHashes, like Create,
// admits at once, so Config.MaxWaiting does not apply to it: with the
// waiting set full it succeeds (M4765: it was checked against MaxWaiting
// as AddFromHashes is, and refused with ErrNoSpace).
func TestAudit163CreateFromHashesNeverWaits(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, MaxWaiting: 1})
	require.NoError(t, err)
	_, err = m.Add(seqTokens(4, 1), nil)
	require.NoError(t, err)
	_, err = m.AddFromHashes(nil, 4, nil)
	require.ErrorIs(t, err, paged.ErrNoSpace)

	id, cached, err := m.CreateFromHashes(nil, 6, nil)
	require.NoError(t, err, "CreateFromHashes never waits")
	require.Zero(t, cached)
	require.Equal(t, 1, m.Stats().Waiting)
	require.Equal(t, 1, m.Stats().Running)
	require.NoError(t, m.Free(id))
	require.NoError(t, m.Check())
}
