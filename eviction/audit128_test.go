package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

// The eighty-first mutation round (docs/testing.md): the stamp heap and
// queue, SIEVE, SLRU, LFU and LeafLRU. Each test closes a mutation that
// survived it.

// TestAudit128SLRUDemotedBlockIsNewestOnProbation: a block demoted from
// the protected segment joins probation as its most recently released
// block, behind probationary content that was never hit. In a pool of 10
// (8 protected) hitting 0..8 demotes 0, the least recently released
// protected block; 9, released before the hits and never hit, goes
// before it, and the protected blocks after both. The model test of audit
// 10 rarely demotes while another block waits on probation: that takes a
// pool of at least six blocks with more than 80% of them hit since their
// content came, and a victim right after.
func TestAudit128SLRUDemotedBlockIsNewestOnProbation(t *testing.T) {
	c := newCache(t, NewSLRU, 10)
	c.fill(10)
	c.hit(0, 1, 2, 3, 4, 5, 6, 7, 8)
	assert.Equal(t, []allocator.BlockID{9, 0, 1, 2}, c.victims(4))
}

// TestAudit128SLRUDemotesTheLastEvictableProtectedBlock: the share is
// enforced while any protected block is evictable, the last one included.
// Pool of 10 (8 protected): 0..7 are hit and protected, then 1..7 and 8
// are claimed again (referenced), so that 0 is the only evictable
// protected block; a hit on the referenced 8 puts nine blocks' content in
// the protected segment, and 0 must fall back to probation. A scan then
// gives 9 new content: 0, demoted earlier, goes before it.
func TestAudit128SLRUDemotesTheLastEvictableProtectedBlock(t *testing.T) {
	c := newCache(t, NewSLRU, 10)
	c.fill(10)
	c.hit(0, 1, 2, 3, 4, 5, 6, 7)
	for id := range allocator.BlockID(8) {
		if id > 0 {
			c.p.Remove(id)
		}
	}
	c.p.Remove(8)
	c.p.(Accessor).Access(8)
	assert.Equal(t, []allocator.BlockID{9}, c.scan(1))
	assert.Equal(t, []allocator.BlockID{0, 9}, c.victims(2))
}
