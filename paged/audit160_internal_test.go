package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The hundred-and-twelfth round of mutation testing (docs/testing.md):
// Check's rules on the pins' counts and on a State group's table.

// TestAudit160CheckCatchesPinCountCorruption: a pinned block's pin count
// one above the pins naming it, the distinct count unchanged (the block
// is pinned either way), is Check's "pin count" error.
func TestAudit160CheckCatchesPinCountCorruption(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	p := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	id, _, err := m.Create(p, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(id))
	require.NoError(t, m.SetPinBudget(2))
	pin, tokens, err := m.Pin(p, nil, 0)
	require.NoError(t, err)
	require.Equal(t, 8, tokens)
	require.NoError(t, m.Check())
	b := m.pins.pins[uint32(pin)-1].blocks[1]
	m.pins.count[b]++
	err = m.Check()
	require.Error(t, err)
	require.Regexp(t, `block \d+ has pin count 2 but 1 pins name it`, err.Error())
}

// TestAudit160CheckCatchesAReleasedStatePage: a State group keeps its
// pages (a released entry is a kept group's rule, checkKept), so a state
// table with a released entry is Check's "released entries" error.
func TestAudit160CheckCatchesAReleasedStatePage(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Check())
	s, err := m.seq(id)
	require.NoError(t, err)
	s.ext[0].released = 1
	err = m.Check()
	require.Error(t, err)
	require.Regexp(t, `state group 1 has 1 released entries`, err.Error())
}
