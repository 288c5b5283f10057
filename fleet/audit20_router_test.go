package fleet_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/fleet"
)

// With LoadCap, the affinity gain is weighed among the servers the
// request may go to: a hot server at the cap, which hits the family now,
// is no alternative for its next request either (it spills too), so the
// server holding the family's group-0 blocks gains them, and gets the
// spilled request rather than an idle one holding nothing. The gain was
// taken against the capped server's hit, 0, and the idle server won.
func TestAudit20PrefixAwareCapWeighsAffinityAmongTheEligible(t *testing.T) {
	cands := []fleet.Candidate{cand(8, 8, 10, 0), cand(0, 8, 1, 0), cand(0, 0, 0, 0)}
	assert.Equal(t, 1, fleet.PrefixAware{LoadCap: 5}.Route(cands))
	assert.Equal(t, 2, fleet.PrefixAware{LoadCap: 5, IgnoreAffinity: true}.Route(cands))
	assert.Equal(t, 0, fleet.PrefixAware{}.Route(cands), "without the cap, the hit")
	// Every server at the cap: all of them weighed, as without it.
	hot := []fleet.Candidate{cand(8, 8, 10, 0), cand(0, 8, 10, 0), cand(0, 0, 10, 0)}
	assert.Equal(t, 0, fleet.PrefixAware{LoadCap: 5}.Route(hot))
}

// The capped router weighs the gain without allocating, and takes
// hostile loads (NaN counts as at the cap) and scores.
func TestAudit20CappedAffinityAllocatesNothing(t *testing.T) {
	r := fleet.PrefixAware{LoadCap: 5, LoadPenalty: 0.5}
	cands := []fleet.Candidate{cand(8, 8, 10, 0), cand(0, 8, 1, 0), cand(0, 0, 0, 0)}
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = r.Route(cands) }))
	hostile := []fleet.Candidate{cand(8, 8, math.NaN(), 0), cand(0, math.MaxInt, 1, 0), cand(math.MaxInt, math.MinInt, math.Inf(1), 0)}
	assert.Equal(t, 1, r.Route(hostile), "the one server under the cap")
}
