package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// If Access did not promote, every block would stay on probation and SLRU
// would be LRU: the scan would flush the hot blocks.

func TestSLRUProtectsReusedBlocks(t *testing.T) {
	require.True(t, hotSurvivesScan(t, NewSLRU, 1))
}

func TestSLRUDemotesWhenProtectedOverflows(t *testing.T) {
	c := newCache(t, NewSLRU, 5) // protected share: 4 blocks
	c.fill(5)
	c.hit(0, 1, 2, 3, 4)
	// Protecting 4 pushed 0 back to probation, where it is the only one.
	assert.Equal(t, []allocator.BlockID{0, 1, 2, 3, 4}, c.victims(5))
	c.fill(3)
	c.hit(1)
	assert.Equal(t, []allocator.BlockID{0, 2, 1}, c.victims(3))
}
