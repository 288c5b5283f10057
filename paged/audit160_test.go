package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The hundred-and-twelfth round of mutation testing (docs/testing.md):
// pins' events and PinIDs.

// TestAudit160RejectedEventReportsTheBlocksAskedFor: a PinRejected
// event's Blocks is the blocks the pin asked for (PinEvent's doc), not
// the blocks it would have added: a pin of four blocks, two of them
// pinned already, over a budget of two.
func TestAudit160RejectedEventReportsTheBlocksAskedFor(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	p := prompt(1000, 16) // four blocks
	computed(t, m, p)
	require.NoError(t, m.SetPinBudget(2))
	_, tokens, err := m.Pin(p[:8], nil, 0)
	require.NoError(t, err)
	require.Equal(t, 8, tokens)
	_, _, err = m.Pin(p, nil, 0)
	require.ErrorIs(t, err, paged.ErrPinBudget)
	ev := m.TakePinEvents(nil)
	require.Len(t, ev, 2)
	assert.Equal(t, paged.PinRejected, ev[1].Kind)
	assert.Equal(t, 4, ev[1].Blocks, "the blocks the refused pin asked for")
	require.NoError(t, m.Check())
}

// TestAudit160ExpiryEventNamesThePin: a PinExpired event names the pin
// that expired, as Pin returned it, for pins in several slots.
func TestAudit160ExpiryEventNamesThePin(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	a, b := prompt(1000, 8), prompt(2000, 8)
	computed(t, m, a)
	computed(t, m, b)
	require.NoError(t, m.SetPinBudget(4))
	pa, _, err := m.Pin(a, nil, 5)
	require.NoError(t, err)
	pb, _, err := m.Pin(b, nil, 7)
	require.NoError(t, err)
	m.TakePinEvents(nil)
	m.Advance(5)
	m.Advance(7)
	ev := m.TakePinEvents(nil)
	require.Len(t, ev, 2)
	for i, want := range []paged.PinID{pa, pb} {
		assert.Equal(t, paged.PinExpired, ev[i].Kind)
		assert.Equal(t, want, ev[i].Pin, "expiry event %d", i)
	}
	require.NoError(t, m.Check())
}

// TestAudit160PinIDPastTheLastSlotIsUnknown: a PinID naming the slot just
// past the last one issued is ErrUnknownPin for Unpin and ExtendPin, no
// panic, before any pin and after one.
func TestAudit160PinIDPastTheLastSlotIsUnknown(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	p := prompt(1000, 8)
	computed(t, m, p)
	require.NoError(t, m.SetPinBudget(2))
	for slots := range 2 {
		past := paged.PinID(1<<32 | uint64(slots+1))
		assert.ErrorIs(t, m.Unpin(past), paged.ErrUnknownPin, "%d slots", slots)
		assert.ErrorIs(t, m.ExtendPin(past, 0), paged.ErrUnknownPin, "%d slots", slots)
		if slots == 0 {
			_, _, err := m.Pin(p, nil, 0)
			require.NoError(t, err)
		}
	}
	assert.Equal(t, 1, m.PinStats().Pins)
	require.NoError(t, m.Check())
}

// TestAudit160PinStopsAtTheFirstMiss: a pin holds the leading blocks
// found in the cache, none after the first block that is not: hashes
// whose first block is uncached and whose next two are a cached prompt's
// pin nothing (0 tokens), and a prefix of that prompt's hashes with an
// uncached one in the middle pins only the blocks before it.
func TestAudit160PinStopsAtTheFirstMiss(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	a := prompt(1000, 12) // three blocks
	computed(t, m, a)
	require.NoError(t, m.SetPinBudget(4))
	ha, err := m.BlockHashes(nil, a, nil)
	require.NoError(t, err)
	hz, err := m.BlockHashes(nil, prompt(5000, 4), nil)
	require.NoError(t, err)
	_, tokens, err := m.PinHashes([]paged.Hash{hz[0], ha[0], ha[1]}, 0)
	require.NoError(t, err)
	assert.Zero(t, tokens)
	assert.Zero(t, m.PinStats().PinnedBlocks)
	_, tokens, err = m.PinHashes([]paged.Hash{ha[0], hz[0], ha[2]}, 0)
	require.NoError(t, err)
	assert.Equal(t, 4, tokens)
	assert.Equal(t, 1, m.PinStats().PinnedBlocks)
	require.NoError(t, m.Check())
}
