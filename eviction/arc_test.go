package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// If Access did not move content to T2, the hot blocks would sit at the
// recent end of T1 and the scan would flush them as it flushes LRU; if
// ghosts were not consulted, p would never move.

func TestARCResistsScan(t *testing.T) {
	require.True(t, hotSurvivesScan(t, NewARC, 1))
}

func TestARCGhostHitsAdaptTarget(t *testing.T) {
	c := newCache(t, NewARC, 4)
	for id := range allocator.BlockID(4) {
		c.commit(id, Hint{Key: uint64(10 + id), Parent: allocator.NoBlock, Priority: DefaultPriority})
		c.p.Insert(id)
	}
	c.hit(3) // T2: {3}, T1: {0, 1, 2}
	a := c.p.(*ARC)
	require.Equal(t, []allocator.BlockID{0}, c.victims(1)) // T1 > p = 0; key 10 to B1
	// Key 10 is requested again: recency was undervalued, p grows.
	c.commit(0, Hint{Key: 10, Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(0)
	assert.Equal(t, 1, a.p)
	assert.Equal(t, arcT2, a.tag[0])
	// T1 = {1, 2} > p = 1: T1 still goes first, its oldest block first.
	require.Equal(t, []allocator.BlockID{1}, c.victims(1))
	// Now |T1| = 1 = p: T2's least recently released goes (3, before 0).
	require.Equal(t, []allocator.BlockID{3}, c.victims(1))
	// Key 13 is a B2 ghost: frequency was undervalued, p shrinks.
	c.commit(3, Hint{Key: 13, Parent: allocator.NoBlock, Priority: DefaultPriority})
	assert.Equal(t, 0, a.p)
}
