package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

func TestLRUEvictsLeastRecentlyReleased(t *testing.T) {
	c := newCache(t, NewLRU, 4)
	c.fill(4)
	c.hit(0) // released again: now the most recent
	assert.Equal(t, []allocator.BlockID{1, 2, 3, 0}, c.victims(4))
}

func TestFIFOIgnoresHits(t *testing.T) {
	c := newCache(t, NewFIFO, 4)
	c.fill(4)
	c.hit(0, 0)
	// Content keeps its creation order; only new content joins the back.
	assert.Equal(t, []allocator.BlockID{0, 1}, c.victims(2))
	c.scan(1) // block 2 goes; new content in it joins the back
	assert.Equal(t, []allocator.BlockID{3, 2}, c.victims(2))
}
