package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
