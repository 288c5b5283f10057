package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestChainHazardsShareOneBaseline: Chain's tables follow a proportional-
// hazards model, so a class whose records were only watched while young
// still has a hit density at older ages (the shape of every class's
// pooled outcomes, at its own level), while a class never reused has none.
// With a hazard estimated per class alone, the young class would be worth
// nothing at ages its records never reached, and go first.
func TestChainHazardsShareOneBaseline(t *testing.T) {
	p := NewChain(1600).(*Chain)
	often := classOf(2, 2, false) // later turns: reused at many ages
	young := classOf(1, 4, false) // first turns: watched only while young
	never := classOf(1, 4, true)  // last blocks: never reused
	for b := 8; b <= 20; b++ {
		p.reuse[often][b] = 10
	}
	p.cens[often][24] = 100
	p.reuse[young][4] = 2
	p.cens[young][6] = 18
	p.cens[never][24] = 100
	p.rebuild()

	const old = 12 // older than any record of class young
	assert.Positive(t, p.score[often][old])
	assert.Positive(t, p.score[young][old], "a class seen young keeps the baseline's shape")
	assert.Zero(t, p.score[never][old])
	// The same outcomes at a tenth of the weight are the same class.
	for b := range chainBuckets {
		p.reuse[young][b] = p.reuse[often][b] / 10
		p.cens[young][b] = p.cens[often][b] / 10
	}
	p.rebuild()
	for b := range chainBuckets {
		assert.InDelta(t, p.score[often][b], p.score[young][b], 1e-12*(1+p.score[often][b]), "bucket %d", b)
	}
}

// TestChainCountsReleasesNotBlocks: a release's blocks come back together
// or not at all, so Chain's statistics count each release once, its blocks
// 1/n each. Of four releases of one class, one of 100 blocks returns and
// three of 64 do not: the class returned once in four, not 99 blocks in
// 288 as a count by blocks would say.
func TestChainCountsReleasesNotBlocks(t *testing.T) {
	p := NewChain(400).(*Chain)
	next := allocator.BlockID(0)
	key := uint64(1)
	release := func(n int) []allocator.BlockID {
		ids := make([]allocator.BlockID, n)
		for i := range ids {
			par := allocator.NoBlock
			if i > 0 {
				par = ids[i-1]
			}
			ids[i] = next
			p.Hint(next, Hint{Key: key, Depth: int32(i), Parent: par, Priority: DefaultPriority})
			next++
			key++
		}
		for i := n - 1; i >= 0; i-- {
			p.Insert(ids[i])
		}
		return ids
	}
	back := release(100)
	for range 3 {
		release(64)
	}
	for _, id := range back {
		p.Access(id)
	}
	p.rebuild()
	c := classOf(0, 100, false)
	require.Equal(t, c, classOf(0, 64, false), "one class")
	var reused, all float64
	for b := range chainBuckets {
		reused += p.reuse[c][b]
		all += p.reuse[c][b] + p.cens[c][b] + p.open[c][b]
	}
	assert.InDelta(t, 99.0/100, reused, 1e-9)
	assert.InDelta(t, 99.0/100+3*63.0/64, all, 1e-9)
}
