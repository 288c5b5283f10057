package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCostAwareWeighsHitsAgainstBacklog(t *testing.T) {
	c := CostAware{BlockSize: 16}
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Load: 3, Work: 100}, // saves 64 tokens, 100 queued
		{Score: Score{}, Load: 1, Work: 0},                       // saves nothing, idle
		{Score: Score{Blocks: 4, Device: 0}, Load: 0, Work: 0},   // 4 host blocks: saves 64 - 6.4
	}
	assert.InDelta(t, 100-64, c.Cost(&cands[0]), 1e-9)
	assert.InDelta(t, -64+6.4, c.Cost(&cands[2]), 1e-9)
	assert.Equal(t, 2, c.Route(cands))
	cands[2].Work = 60 // now 2.6 worse than the idle server
	assert.Equal(t, 1, c.Route(cands))
	cands[0].Work = 10 // 10 queued for 64 saved
	assert.Equal(t, 0, c.Route(cands))
}

func TestCostAwareDegradesToLoadBalancing(t *testing.T) {
	// Every server holds the same prefix: the backlog decides, then Load.
	c := CostAware{BlockSize: 16}
	cands := []Candidate{
		{Score: Score{Blocks: 2, Device: 2}, Load: 2, Work: 30},
		{Score: Score{Blocks: 2, Device: 2}, Load: 5, Work: 10},
		{Score: Score{Blocks: 2, Device: 2}, Load: 1, Work: 10},
	}
	assert.Equal(t, 2, c.Route(cands))
	for i := range cands {
		cands[i].Work = 0
	}
	assert.Equal(t, 2, c.Route(cands), "ties go to the lower Load")
}

func TestCostAwareSoftmaxSpreadsNearTies(t *testing.T) {
	u := 0.0
	c := CostAware{BlockSize: 1, Temperature: 1, Rand: func() float64 { return u }}
	cands := []Candidate{{Work: 0}, {Work: 1}, {Work: 1000}}
	picked := map[int]int{}
	for i := range 100 {
		u = (float64(i) + 0.5) / 100
		picked[c.Route(cands)]++
	}
	// Weights 1, e^-0.001, e^-1: about 42, 42, 16.
	assert.InDelta(t, 42, picked[0], 3)
	assert.InDelta(t, 42, picked[1], 3)
	assert.InDelta(t, 16, picked[2], 3)
	assert.Equal(t, 0, CostAware{BlockSize: 1}.Route(cands), "temperature 0 is the cheapest")
}

func TestCostAwareValidate(t *testing.T) {
	require.NoError(t, CostAware{BlockSize: 16}.Validate())
	for _, c := range []CostAware{
		{},
		{BlockSize: 16, HostCost: 2},
		{BlockSize: 16, LoadWeight: -1},
		{BlockSize: 16, Temperature: -1},
		{BlockSize: 16, Temperature: 1}, // no Rand
	} {
		require.ErrorIs(t, c.Validate(), ErrInvalid, "%+v", c)
	}
	assert.Equal(t, -1, CostAware{BlockSize: 16}.Route(nil))
	// An invalid router balances load rather than guessing.
	assert.Equal(t, 1, CostAware{}.Route([]Candidate{{Score: Score{Blocks: 9}, Load: 2}, {Load: 1}}))
}

func TestCostAwareBreaksExactTiesWithRand(t *testing.T) {
	u := 0.0
	c := CostAware{BlockSize: 16, Rand: func() float64 { return u }}
	cands := []Candidate{{Load: 1}, {Load: 1}, {Load: 1}, {Load: 2}}
	picked := map[int]int{}
	for i := range 300 {
		u = float64(i%100)/100 + 0.005
		picked[c.Route(cands)]++
	}
	assert.Zero(t, picked[3], "a higher Load never wins a cost tie")
	for i := range 3 {
		assert.Greater(t, picked[i], 50, "server %d", i)
	}
	assert.Equal(t, 0, CostAware{BlockSize: 16}.Route(cands), "without Rand: the lowest index")
}

func TestCostAwareWeighsHitsMoreWhenRequestsQueue(t *testing.T) {
	c := CostAware{BlockSize: 16}
	// Saving 64 tokens on a server whose backlog is 100 tokens longer is
	// not worth it for the request alone...
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Work: 100},
		{Work: 0},
	}
	assert.Equal(t, 1, c.Route(cands))
	// ...but with one request per slot waiting there, the 64 tokens are
	// also saved for each of them: 128 saved against 100.
	cands[0].Queue = 1
	assert.InDelta(t, 100-128, c.Cost(&cands[0]), 1e-9)
	assert.Equal(t, 0, c.Route(cands))
	cands[0].Queue = -3 // nonsense counts as none
	assert.Equal(t, 1, c.Route(cands))
}
