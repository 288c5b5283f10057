package eviction

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAudit10ChainHugeDepth: a release's outcome weight is one over its
// blocks, positive whatever depth the hint gave. With Hint.Depth
// MaxInt32 the count of blocks (depth+1) overflowed int32 and the weight
// came out negative, and a negative weight poisons every later score of
// the class (the statistics are halved, never reset).
func TestAudit10ChainHugeDepth(t *testing.T) {
	for _, d := range []int32{math.MaxInt32, math.MinInt32, -1} {
		p := NewChain(4).(*Chain)
		p.Hint(0, Hint{Key: 7, Depth: d, Parent: -1})
		p.Insert(0)
		_, s := p.recs.find(7)
		if assert.GreaterOrEqual(t, s, int32(0), "depth %d: no record", d) {
			assert.Greater(t, p.runit[s], 0.0, "depth %d", d)
			assert.GreaterOrEqual(t, p.rweight[s], 0.0, "depth %d", d)
		}
	}
}
