package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The twenty-third mutation round (docs/testing.md): paged's pins, hash
// memo and stats. Each test closes a mutation that survived it.

// TestAudit70ExtendPinNotToNow: ExtendPin, like Pin, refuses an expiry
// at or before the current time with ErrInvalid and changes nothing: a
// pin extended to now would expire at the Advance that made now, so the
// call would promise a lifetime it never gives. One tick later is taken.
// M1053 let an expiry equal to now through ExtendPin.
func TestAudit70ExtendPinNotToNow(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(4))
	p := prompt(1000, 8)
	computed(t, m, p)
	m.Advance(10)
	id, _, err := m.Pin(p, nil, 20)
	require.NoError(t, err)
	m.Advance(15)
	before := m.PinStats()
	for _, until := range []int64{15, 14} {
		assert.ErrorIs(t, m.ExtendPin(id, until), paged.ErrInvalid, "an expiry of %d at 15", until)
	}
	assert.Equal(t, before, m.PinStats())
	require.NoError(t, m.ExtendPin(id, 16))
	m.Advance(16)
	assert.Zero(t, m.PinStats().Pins, "the pin expires at 16")
	require.NoError(t, m.Check())
}

// TestAudit70PinPeakIsTheMost: PinStats.PeakPinnedBlocks is the most
// blocks pins ever held at once, not what a later, smaller pin holds:
// two blocks pinned and unpinned, then one, leave a peak of two. M1057
// set the peak to the blocks pinned at each new pin.
func TestAudit70PinPeakIsTheMost(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(4))
	a, b := prompt(1000, 8), prompt(2000, 4)
	computed(t, m, a)
	computed(t, m, b)
	pa, _, err := m.Pin(a, nil, 0)
	require.NoError(t, err)
	require.NoError(t, m.Unpin(pa))
	_, _, err = m.Pin(b, nil, 0)
	require.NoError(t, err)
	ps := m.PinStats()
	assert.Equal(t, 1, ps.PinnedBlocks)
	assert.Equal(t, 2, ps.PeakPinnedBlocks, "two blocks were pinned at once before")
	require.NoError(t, m.Check())
}

// TestAudit70PinsExpireInOrder: pins expire at their own expiries
// whatever order they were made in: three pins due at 10, 20 and 30
// (made in that order, so held in slots in that order) expire one at
// each of those times. After the first expiry the manager finds the
// next one due among the live pins; M1065 took the last live pin's
// expiry instead of the earliest, and the pin due at 20 lived to 30.
func TestAudit70PinsExpireInOrder(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(8))
	for i, until := range []int64{10, 20, 30} {
		p := prompt(1000*(i+1), 4)
		computed(t, m, p)
		_, _, err := m.Pin(p, nil, until)
		require.NoError(t, err)
	}
	for i, now := range []int64{10, 20, 30} {
		m.Advance(now)
		assert.Equal(t, 2-i, m.PinStats().Pins, "pins live at %d", now)
		assert.EqualValues(t, i+1, m.PinStats().Expired, "pins expired at %d", now)
	}
	require.NoError(t, m.Check())
}

// TestAudit70StatsRatios: Stats.HitRate is hit tokens over queried
// tokens (blocks are counted apart, PrefixHitBlocks), and Stats.Usage is
// the blocks in use over the usable ones (the null block and any other
// block the pool sets aside excluded, as UsableBlocks counts them), both
// 0 on an empty denominator. M1076 divided hit blocks by queried tokens;
// M1077 divided by the total blocks.
func TestAudit70StatsRatios(t *testing.T) {
	s := paged.Stats{PrefixQueryTokens: 64, PrefixHitTokens: 48, PrefixQueryBlocks: 4, PrefixHitBlocks: 3,
		TotalBlocks: 17, UsableBlocks: 16, UsedBlocks: 4}
	assert.Equal(t, 0.75, s.HitRate())
	assert.Equal(t, 0.25, s.Usage())
	assert.Zero(t, paged.Stats{}.HitRate())
	assert.Zero(t, paged.Stats{}.Usage())

	// The same from a manager: a prompt of 8 tokens whose first block is
	// cached hits 4 of 8 tokens; 2 of the 16 usable blocks are in use.
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	computed(t, m, prompt(1000, 4))
	_, _, err = m.Create(prompt(1000, 8), nil)
	require.NoError(t, err)
	st := m.Stats()
	require.Equal(t, 16, st.UsableBlocks)
	assert.InDelta(t, float64(st.PrefixHitTokens)/float64(st.PrefixQueryTokens), st.HitRate(), 1e-12)
	assert.Equal(t, 2.0/16, st.Usage())
}
