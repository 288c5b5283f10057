package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The ninety-fourth round of mutation testing (docs/testing.md): the
// sequences' handles and generations, and their slots' reuse
// (sequence.go).

// TestAudit141ReusedSlotStartsPlain: a slot freed by a windowed sequence
// whose window had released blocks, taken again by a sequence without a
// window, keeps nothing of the window: waiting, the new sequence may be
// cut back to its first token; running, its positions all have slots,
// and a split plan of its decode step starts at block 0.
func TestAudit141ReusedSlotStartsPlain(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 16})
	require.NoError(t, err)
	w, _, err := m.Create(seqOf(1, 9), &paged.SeqOptions{Window: 2})
	require.NoError(t, err)
	require.NoError(t, m.Append(w, 10, 11))
	_, err = m.Slot(w, 0)
	require.ErrorIs(t, err, paged.ErrInvalid, "the window released block 0")
	require.NoError(t, m.Free(w))
	id, err := m.Add(seqOf(100, 9), nil)
	require.NoError(t, err)
	require.Equal(t, uint32(w), uint32(id), "the freed slot is taken again")
	require.NoError(t, m.Truncate(id, 1))
	_, err = m.Admit(id)
	require.NoError(t, err)
	require.NoError(t, m.Append(id, seqOf(101, 8)...))
	require.NoError(t, m.Check())
	for pos := range 9 {
		_, err := m.Slot(id, pos)
		require.NoError(t, err, "position %d", pos)
	}
	b := paged.Batch{SplitUnits: 2}
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 9}}))
	require.NoError(t, m.Append(id, 109))
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}))
	assert.Equal(t, []int32{0}, b.FirstBlocks, "a decode step reads every block")
	require.NoError(t, b.Split.CheckFrom(b.FirstBlocks, b.BlocksPerSeq))
}
