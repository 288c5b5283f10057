package paged

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Internal tests of the twenty-third mutation round (docs/testing.md);
// the others are in audit70_test.go.

// TestAudit70PinEventsBounded: undrained pin events are kept up to
// maxPinEvents; the rest are counted in PinStats.EventsDropped, and
// kept and dropped together are every event made. M1066 kept one more.
func TestAudit70PinEventsBounded(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(4))
	p := []int32{1, 2, 3, 4}
	id, _, err := m.Create(p, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(id))
	const pairs = maxPinEvents/2 + 3 // Pinned and Unpinned each
	for range pairs {
		pin, _, err := m.Pin(p, nil, 0)
		require.NoError(t, err)
		require.NoError(t, m.Unpin(pin))
	}
	events := m.TakePinEvents(nil)
	assert.Len(t, events, maxPinEvents)
	assert.EqualValues(t, 2*pairs-maxPinEvents, m.PinStats().EventsDropped)
	require.NoError(t, m.Check())
}

// TestAudit70CheckCatchesPinsPastBudget: Check refuses pins holding more
// distinct blocks than the budget allows, the counts otherwise right.
// M1069 dropped that rule.
func TestAudit70CheckCatchesPinsPastBudget(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(4))
	p := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	id, _, err := m.Create(p, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(id))
	_, _, err = m.Pin(p, nil, 0)
	require.NoError(t, err)
	require.NoError(t, m.Check())
	m.pins.budget = 1 // two blocks pinned
	err = m.Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "budget 1")
}
