package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Without hit counters S3-FIFO would evict every block from the small
// queue in order, as FIFO does, and lose the hot blocks; without ghost
// lookups the re-committed key would start in the small queue again.

func TestS3FIFOResistsScan(t *testing.T) {
	require.True(t, hotSurvivesScan(t, NewS3FIFO, 2))
	// One hit is not enough to leave the small queue (the paper's rule).
	require.False(t, hotSurvivesScan(t, NewS3FIFO, 1))
}

func TestS3FIFOGhostSendsContentToMain(t *testing.T) {
	c := newCache(t, NewS3FIFO, 20)
	for id := range allocator.BlockID(20) {
		c.commit(id, Hint{Key: uint64(100 + id), Parent: allocator.NoBlock, Priority: DefaultPriority})
		c.p.Insert(id)
	}
	v := c.victims(1)
	require.Equal(t, []allocator.BlockID{0}, v)
	p := c.p.(*S3FIFO)
	// Key 100 comes back in another block: it skips the small queue.
	c.commit(0, Hint{Key: 100, Parent: allocator.NoBlock, Priority: DefaultPriority})
	assert.Equal(t, queueMain, p.queue[0])
	c.commit(0, Hint{Key: 999, Parent: allocator.NoBlock, Priority: DefaultPriority})
	assert.Equal(t, queueSmall, p.queue[0])
}
