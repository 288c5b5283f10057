package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// An LFU whose counts never grew would keep every block in bucket 0, which
// is LRU: the hot blocks, released before the scan, would be its first
// victims and both tests below would fail.

func TestLFUKeepsFrequentBlocksThroughScan(t *testing.T) {
	require.True(t, hotSurvivesScan(t, NewLFU, 1))
}

func TestLFUOrdersByHitsThenRecency(t *testing.T) {
	c := newCache(t, NewLFU, 6)
	c.fill(6)
	c.hit(4, 4, 4, 1, 1, 5)
	// Hits held while referenced count too: block 0 is hit twice by
	// other sequences before its release.
	c.p.Remove(0)
	c.p.(Accessor).Access(0)
	c.p.(Accessor).Access(0)
	c.p.Insert(0)
	// 2 and 3 have no hits (2 released first); 5 has one; 1 and 0 two
	// (1 released first); 4 three.
	assert.Equal(t, []allocator.BlockID{2, 3, 5, 1, 0, 4}, c.victims(6))
}

func TestLFUCountsBelongToContent(t *testing.T) {
	c := newCache(t, NewLFU, 3)
	c.fill(3)
	c.hit(0, 0, 1)
	c.p.Remove(0)
	c.p.(Forgetter).Forget(0) // content dropped in place
	c.commit(0, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
	c.p.Insert(0)
	// Block 0's new content starts from no hits: 2 (released earlier) then 0.
	assert.Equal(t, []allocator.BlockID{2, 0, 1}, c.victims(3))
}
