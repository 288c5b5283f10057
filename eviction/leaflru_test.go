package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

// chain commits blocks ids as one hash chain, ids[0] its first block.
func (c *cache) chain(ids ...allocator.BlockID) {
	parent := allocator.NoBlock
	for d, id := range ids {
		c.commit(id, Hint{Depth: int32(d), Parent: parent, Priority: DefaultPriority})
		parent = id
	}
}

// If LeafLRU never counted children it would be LRU and give up 0, the
// oldest release, first: the first test would fail.

func TestLeafLRUEvictsLeavesBeforeAncestors(t *testing.T) {
	// A sliding window releases the head of a chain before its tail.
	c := newCache(t, NewLeafLRU, 4)
	c.chain(0, 1, 2)
	c.commit(3, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	for _, id := range []allocator.BlockID{0, 1, 3, 2} {
		c.p.Insert(id)
	}
	// Leaves by release: 3, 2; then 1 becomes a leaf, then 0.
	assert.Equal(t, []allocator.BlockID{3, 2, 1, 0}, c.victims(4))

	lru := newCache(t, NewLRU, 4)
	for _, id := range []allocator.BlockID{0, 1, 3, 2} {
		lru.p.Insert(id)
	}
	assert.Equal(t, []allocator.BlockID{0, 1, 3, 2}, lru.victims(4))
}

func TestLeafLRUFallsBackToInnerBlocks(t *testing.T) {
	c := newCache(t, NewLeafLRU, 3)
	c.chain(0, 1)
	c.commit(2, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(0) // 1 stays referenced
	c.p.Insert(2)
	assert.Equal(t, []allocator.BlockID{2, 0}, c.victims(2))
}

func TestLeafLRUIgnoresStaleParents(t *testing.T) {
	c := newCache(t, NewLeafLRU, 4)
	c.chain(0, 1)
	c.p.Insert(0) // 1 stays referenced
	assert.Equal(t, []allocator.BlockID{0}, c.victims(1))
	// Block 0 is reused for unrelated content; 1 no longer counts for it,
	// and dropping 1 must not change 0's count (it has a child of its own).
	c.chain(0, 2)
	c.p.(Forgetter).Forget(1)
	c.commit(3, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(0)
	c.p.Insert(3)
	// 0 still has child 2 (referenced), so the leaf 3 goes first.
	assert.Equal(t, []allocator.BlockID{3, 0}, c.victims(2))
}

func TestLeafLRUParentKeepsItsReleaseTime(t *testing.T) {
	// A request's chain 0 <- 1 is released tail first, then two unrelated
	// blocks. Once 1 is gone, 0 is a leaf released before 2 and 3, so it
	// goes next, as in LRU. (LeafLRU used to give it one more round as the
	// most recent leaf: a dead chain then lost one block per round, and on
	// the Mooncake conversation trace LeafLRU fell below LRU.)
	c := newCache(t, NewLeafLRU, 4)
	c.chain(0, 1)
	c.commit(2, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.commit(3, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	for _, id := range []allocator.BlockID{1, 0, 2, 3} {
		c.p.Insert(id)
	}
	assert.Equal(t, []allocator.BlockID{1, 0, 2, 3}, c.victims(4))
}
