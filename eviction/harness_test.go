package eviction

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// cache plays the manager in behaviour tests: blocks get content (Hint with
// a fresh key), are released (Insert), hit (Access, Remove, Insert) and
// given up (Victim).
type cache struct {
	t   *testing.T
	p   Policy
	key uint64
}

func newCache(t *testing.T, f Factory, capacity int) *cache {
	return &cache{t: t, p: f(capacity)}
}

// fill gives blocks 0..n-1 new content and releases them in that order.
func (c *cache) fill(n int) {
	for id := range allocator.BlockID(n) {
		c.commit(id, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
		c.p.Insert(id)
	}
}

// commit hints new content with a fresh key unless h has one.
func (c *cache) commit(id allocator.BlockID, h Hint) {
	if h.Key == 0 {
		c.key++
		h.Key = c.key + 1<<32
	}
	if hn, ok := c.p.(Hinter); ok {
		hn.Hint(id, h)
	}
}

// hit claims an evictable block for a prefix hit and releases it again.
func (c *cache) hit(ids ...allocator.BlockID) {
	for _, id := range ids {
		require.True(c.t, c.p.Contains(id))
		if a, ok := c.p.(Accessor); ok {
			a.Access(id)
		}
		c.p.Remove(id)
		c.p.Insert(id)
	}
}

// victims takes n victims.
func (c *cache) victims(n int) []allocator.BlockID {
	var out []allocator.BlockID
	for range n {
		id, ok := c.p.Victim()
		require.True(c.t, ok)
		out = append(out, id)
	}
	return out
}

// scan gives n victims new one-time content, as a scan of unrelated
// prompts does, and returns the victims.
func (c *cache) scan(n int) []allocator.BlockID {
	var out []allocator.BlockID
	for range n {
		id, ok := c.p.Victim()
		require.True(c.t, ok)
		out = append(out, id)
		c.commit(id, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority})
		c.p.Insert(id)
	}
	return out
}

// hotSurvivesScan fills a pool of 20 blocks, hits blocks 0..4 the given
// number of times each, runs a scan five times the pool, and reports
// whether any hot block was evicted.
func hotSurvivesScan(t *testing.T, f Factory, hits int) bool {
	c := newCache(t, f, 20)
	c.fill(20)
	for range hits {
		c.hit(0, 1, 2, 3, 4)
	}
	for _, id := range c.scan(100) {
		if id < 5 {
			return false
		}
	}
	return true
}

func TestScanFlushesLRU(t *testing.T) {
	// The scan tests below are meaningful only because the same scan
	// flushes the hot blocks out of LRU and FIFO.
	require.False(t, hotSurvivesScan(t, NewLRU, 2))
	require.False(t, hotSurvivesScan(t, NewFIFO, 2))
}
