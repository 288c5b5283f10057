package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Gaps audit15's mutations of priority.go found: each test below fails
// with one mutation every other test of the repository survived.

// TestAudit15ParentTakesChildsPlace: a parent whose last evictable child
// is evicted takes the child's place at the front of its level, as the
// doc says (it was released right after the child, tail first), not the
// back: an unrelated block released after the chain goes after it. (The
// parent pushed to the back survived every other test.)
func TestAudit15ParentTakesChildsPlace(t *testing.T) {
	c := newCache(t, NewPriority, 3)
	c.commit(0, prio(DefaultPriority, 0))
	c.commit(1, child(DefaultPriority, 0, 0))
	c.commit(2, prio(DefaultPriority, 0))
	for _, id := range []allocator.BlockID{1, 0, 2} { // the chain tail first, then another
		c.p.Insert(id)
	}
	assert.Equal(t, []allocator.BlockID{1, 0, 2}, c.victims(3))
}

// TestAudit15LowerStepLapses: a block kept at a staircase of two promises
// (90 until tick 10, then 60 until tick 20) falls to the default when the
// second lapses, as the first did to 60. (A revert that did not queue the
// lower step's own expiry left the block at 60 for good, and survived
// every other test.)
func TestAudit15LowerStepLapses(t *testing.T) {
	c := newCache(t, NewPriority, 3)
	tk, rt := c.p.(Ticker), c.p.(Retainer)
	c.commit(0, prio(DefaultPriority, 0))
	rt.Retain(0, 90, 10)
	rt.Retain(0, 60, 20)
	c.commit(1, prio(DefaultPriority, 0))
	c.commit(2, prio(50, 0))
	for _, id := range []allocator.BlockID{0, 1, 2} {
		c.p.Insert(id)
	}
	tk.Advance(10) // 0 at 60: after 2 (50)
	p := c.p.(*Priority)
	require.Equal(t, uint8(60), p.tree.node[0].x.level)
	tk.Advance(20) // 0 back at the default, the most recent of its level
	assert.Equal(t, []allocator.BlockID{1, 0, 2}, c.victims(3))
}
