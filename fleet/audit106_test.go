package fleet

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The sixtieth mutation round (docs/testing.md): fleet's backend records,
// routers, affinity and hash table.

// audit106Cand is a candidate that hits blocks now and holds affinity
// blocks of the request's family, at load.
func audit106Cand(blocks, affinity int, load float64) Candidate {
	return Candidate{Score: Score{Blocks: blocks, Device: blocks, Value: float64(blocks), Affinity: affinity}, Load: load}
}

// TestAudit106InfiniteDeviceWeightIsTheDefault (M2565): PrefixAware takes
// an infinite DeviceWeight as the default 1, as it documents; kept, it
// made every score with no gain 0*Inf = NaN, and the first candidate won
// whatever the others held. With weight 1, a server holding 9 blocks of
// the family against a hit of 4 elsewhere gains 5 and wins.
func TestAudit106InfiniteDeviceWeightIsTheDefault(t *testing.T) {
	cands := []Candidate{audit106Cand(4, 4, 0), audit106Cand(0, 9, 0)}
	for _, w := range []float64{0, 1, math.Inf(1), math.Inf(-1), math.NaN(), -3} {
		assert.Equal(t, 1, PrefixAware{DeviceWeight: w}.Route(cands), "weight %v", w)
	}
	// A finite weight is taken: at 0.5 the gain of 5 is worth 2.5 < 4.
	assert.Equal(t, 0, PrefixAware{DeviceWeight: 0.5}.Route(cands))
}

// TestAudit106PrefixAwareTiesGoToTheLowestIndex (M2568): equal scores
// and equal loads go to the first such candidate, not the last.
func TestAudit106PrefixAwareTiesGoToTheLowestIndex(t *testing.T) {
	cands := []Candidate{audit106Cand(1, 1, 2), audit106Cand(3, 3, 1), audit106Cand(3, 3, 1), audit106Cand(3, 3, 1)}
	assert.Equal(t, 1, PrefixAware{}.Route(cands))
	assert.Equal(t, 1, PrefixAware{LoadCap: 5}.Route(cands))
}

// TestAudit106NoLoadCapExcludesNoLoad (M2571): a LoadCap of 0 is
// no cap, for a load below 0 too (the unit is the caller's; a load
// measured against a mean is negative for an idle server): the highest
// score wins (the mutant's capped pass kept only the servers below 0,
// and routed to the idle server that hits 1 block, or to the one that
// gains 3 against the hit of 9 it passed over).
func TestAudit106NoLoadCapExcludesNoLoad(t *testing.T) {
	assert.Equal(t, 0, PrefixAware{}.Route([]Candidate{audit106Cand(9, 9, 1), audit106Cand(1, 1, -1)}))
	assert.Equal(t, 0, PrefixAware{}.Route([]Candidate{audit106Cand(9, 9, 1), audit106Cand(0, 12, -1), audit106Cand(1, 1, -1)}))
}
