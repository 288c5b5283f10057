package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit114CheckCountsLivePlacements: Check finds a live counter that
// disagrees with the live slots.
func TestAudit114CheckCountsLivePlacements(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Device: Config{BlockSize: 4, NumBlocks: 9}, Devices: 2})
	require.NoError(t, err)
	_, err = p.Create([]int32{1, 2, 3}, 2)
	require.NoError(t, err)
	require.NoError(t, p.Check())
	p.nlive++
	require.ErrorContains(t, p.Check(), "1 placed sequences live, counter says 2")
}

// TestAudit114FreedSlotIsUnknown: Free moves a slot's generation on and
// Create moves it again, so the generation between (the freed slot's own)
// is never issued and names no sequence, before the slot's reuse or after.
func TestAudit114FreedSlotIsUnknown(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Device: Config{BlockSize: 4, NumBlocks: 9}, Devices: 2})
	require.NoError(t, err)
	id, err := p.Create([]int32{1, 2, 3}, 2)
	require.NoError(t, err)
	require.NoError(t, p.Free(id))
	idx, gen := id.parts()
	next := makeSeqID(idx, gen+1)
	_, err = p.Len(next)
	require.ErrorIs(t, err, ErrUnknownSequence)
	require.ErrorIs(t, p.Append(next, 4), ErrUnknownSequence)
	again, err := p.Create([]int32{5}, 1)
	require.NoError(t, err)
	require.Equal(t, makeSeqID(idx, gen+2), again)
	_, err = p.Len(next)
	require.ErrorIs(t, err, ErrUnknownSequence)
	require.NoError(t, p.Check())
}
