package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

// With reference bits that were never set, CLOCK and SIEVE would be FIFO
// and give up block 0 first: the tests below would fail.

func TestCLOCKGivesVisitedBlockSecondChance(t *testing.T) {
	c := newCache(t, NewCLOCK, 3)
	c.fill(3)
	c.hit(0)
	assert.Equal(t, []allocator.BlockID{1}, c.victims(1))
	// 0 went to the back with its bit cleared; new content joins behind it.
	c.scan(0)
	c.commit(1, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(1)
	assert.Equal(t, []allocator.BlockID{2, 0, 1}, c.victims(3))
}

func TestCLOCKHitWhileReferencedCounts(t *testing.T) {
	c := newCache(t, NewCLOCK, 2)
	c.fill(2)
	c.p.Remove(0)
	c.p.(Accessor).Access(0) // hit by a second sequence
	c.p.Insert(0)
	assert.Equal(t, []allocator.BlockID{1, 0}, c.victims(2))
}

func TestSIEVEGivesVisitedBlockSecondChanceInPlace(t *testing.T) {
	c := newCache(t, NewSIEVE, 4)
	c.fill(3)
	c.hit(0)
	assert.Equal(t, []allocator.BlockID{1}, c.victims(1))
	// Unlike CLOCK, 0 keeps its place at the tail and the hand stays at
	// 2, so block 3's new content goes before 0 (CLOCK: 2, 0, 3).
	c.commit(3, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(3)
	assert.Equal(t, []allocator.BlockID{2, 3, 0}, c.victims(3))
}
