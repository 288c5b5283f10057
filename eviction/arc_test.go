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

func TestARCFullGhostsMakeRoomAsCaseIV(t *testing.T) {
	c := newCache(t, NewARC, 4)
	a := c.p.(*ARC)
	key := uint64(100)
	fresh := func(id allocator.BlockID) {
		key++
		c.commit(id, Hint{Key: key, Parent: allocator.NoBlock, Priority: DefaultPriority})
		c.p.Insert(id)
	}
	for id := range allocator.BlockID(4) {
		fresh(id)
	}
	c.hit(0, 1, 2, 3) // all in T2, p = 0
	// Three evictions from T2 fill B2 with keys 101..103.
	for range 3 {
		v := c.victims(1)[0]
		fresh(v)
		c.hit(v)
	}
	require.Equal(t, 3, a.g.len(ghostB2))
	// Block 3 gets new content (T1), and its eviction puts the key in
	// B1; the ghosts are now full.
	c.p.Remove(3)
	c.p.(Forgetter).Forget(3)
	fresh(3)
	b1Key := key
	v := c.victims(1)
	require.Equal(t, []allocator.BlockID{3}, v)
	require.Equal(t, 1, a.g.len(ghostB1))
	require.True(t, a.g.full())
	fresh(v[0])
	// Every block gets new content, so T1 holds all four.
	for id := range allocator.BlockID(4) {
		if id != v[0] {
			c.p.Remove(id)
			c.p.(Forgetter).Forget(id)
			fresh(id)
		}
	}
	require.Equal(t, 4, a.n1)
	// Evicting from T1 leaves |T1|+|B1| = 4 = c: B1's oldest makes room,
	// although B2 is longer.
	c.victims(1)
	l, _ := a.g.find(b1Key)
	assert.Equal(t, -1, l, "B1's oldest key survived")
	l, _ = a.g.find(101)
	assert.Equal(t, ghostB2, l, "B2's oldest key was dropped")
	assert.Equal(t, 3, a.g.len(ghostB2))
}
