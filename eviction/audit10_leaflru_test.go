package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

// LeafLRU's documented order, in the two places the model test found it
// broken: a block that becomes a leaf competes by the release time it had,
// whatever the order in which blocks became leaves; and when every
// evictable block has children, the least recently released goes first.

// TestAudit10LeafLRUHitPrefixKeepsItsReleaseTime: two requests' chains
// 0 <- 1 and 2 <- 3 are released tail first; a third request hits 0 and
// releases it again, so 0 is the most recent release. LRU gives up 1, 3,
// 2, 0, and so must LeafLRU (it is leaf-first by itself here). LeafLRU
// gave up 0 before 2: 0 became a leaf (its child 1 went) before 2 did, and
// only the first block to become a leaf competed with the leaves.
func TestAudit10LeafLRUHitPrefixKeepsItsReleaseTime(t *testing.T) {
	for _, f := range []Factory{NewLRU, NewLeafLRU} {
		c := newCache(t, f, 4)
		c.chain(0, 1)
		c.chain(2, 3)
		for _, id := range []allocator.BlockID{1, 0, 3, 2} {
			c.p.Insert(id)
		}
		c.hit(0)
		assert.Equal(t, []allocator.BlockID{1, 3, 2, 0}, c.victims(4), "%T", c.p)
	}
}

// TestAudit10LeafLRUInnerFallbackByReleaseTime: a sliding window releases
// 0 and then 2, and only then commits their children 1 and 3, which stay
// referenced. Every evictable block has a child, so the least recently
// released, 0, goes first. LeafLRU gave up 2: a block that gains its first
// child while evictable went to the back of the inner blocks.
func TestAudit10LeafLRUInnerFallbackByReleaseTime(t *testing.T) {
	c := newCache(t, NewLeafLRU, 4)
	c.commit(0, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.commit(2, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(0)
	c.p.Insert(2)
	c.commit(3, Hint{Depth: 1, Parent: 2, Priority: DefaultPriority})
	c.commit(1, Hint{Depth: 1, Parent: 0, Priority: DefaultPriority})
	assert.Equal(t, []allocator.BlockID{0, 2}, c.victims(2))
}
