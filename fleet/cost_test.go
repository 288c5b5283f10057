package fleet

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCostAwareWeighsHitsAgainstBacklog(t *testing.T) {
	c := CostAware{BlockSize: 16}
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Load: 0, Work: 100, Prompt: 80}, // computes 16, 100 queued
		{Score: Score{}, Load: 0, Work: 0, Prompt: 80},                       // computes 80, idle
		{Score: Score{Blocks: 4, Device: 0}, Load: 0, Work: 0, Prompt: 80},   // 4 host blocks: 16 + 6.4
	}
	assert.InDelta(t, 100+16, c.Cost(&cands[0]), 1e-9)
	assert.InDelta(t, 80, c.Cost(&cands[1]), 1e-9)
	assert.InDelta(t, 16+6.4, c.Cost(&cands[2]), 1e-9)
	assert.Equal(t, 2, c.Route(cands))
	cands[2].Work = 60 // now 2.4 worse than the idle server
	assert.Equal(t, 1, c.Route(cands))
	cands[0].Work = 10 // 10 queued for 64 saved
	assert.Equal(t, 0, c.Route(cands))
}

func TestCostAwareCountsTheStallOfResidentSequences(t *testing.T) {
	c := CostAware{BlockSize: 16}
	// Saving 64 tokens on a server with 100 more tokens queued is not
	// worth it for the request alone...
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Work: 100, Prompt: 64},
		{Work: 0, Prompt: 64},
	}
	assert.Equal(t, 1, c.Route(cands))
	// ...but with two sequences resident on each server, the idle one's
	// 64-token prefill stalls them too: 3 x 64 against 100.
	cands[0].Load, cands[1].Load = 2, 2
	assert.InDelta(t, 192, c.Cost(&cands[1]), 1e-9)
	assert.Equal(t, 0, c.Route(cands))
	cands[1].Load = -3 // nonsense counts as none
	assert.Equal(t, 1, c.Route(cands))
}

func TestCostAwareWithoutPromptRanksByCache(t *testing.T) {
	c := CostAware{BlockSize: 16}
	cands := []Candidate{{Score: Score{Blocks: 4, Device: 4}, Work: 50}, {Work: 0}}
	assert.InDelta(t, 50-64, c.Cost(&cands[0]), 1e-9)
	assert.Equal(t, 0, c.Route(cands))
	cands[0].Work = 70
	assert.Equal(t, 1, c.Route(cands))
}

func TestCostAwareDegradesToLoadBalancing(t *testing.T) {
	// Every server holds the same prefix: Work and Load decide.
	c := CostAware{BlockSize: 16}
	cands := []Candidate{
		{Score: Score{Blocks: 2, Device: 2}, Load: 2, Work: 30, Prompt: 40},
		{Score: Score{Blocks: 2, Device: 2}, Load: 5, Work: 10, Prompt: 40},
		{Score: Score{Blocks: 2, Device: 2}, Load: 1, Work: 10, Prompt: 40},
	}
	assert.Equal(t, 2, c.Route(cands))
	cands[1].Load = 1
	cands[1].Routed, cands[2].Routed = 3, 4
	assert.Equal(t, 1, c.Route(cands), "exact ties go to the server with fewer routed requests")
}

func TestCostAwareSoftmaxSpreadsNearTies(t *testing.T) {
	cands := []Candidate{{Work: 0}, {Work: 1}, {Work: 1000}}
	picked := softmaxPicks(cands, 100)
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
	cands := []Candidate{{Routed: 1}, {Routed: 1}, {Routed: 1}, {Routed: 0, Load: 1}}
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

// Without Prompt the prefill is relative (cached tokens count negative),
// so it must not be multiplied by the resident sequences: that made a
// busier server holding the same prefix look cheaper (-64 x 9 against
// -64), and CostAware sent the request to the loaded server.
func TestCostAwareWithoutPromptDoesNotPreferLoad(t *testing.T) {
	c := CostAware{BlockSize: 16}
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Load: 8},
		{Score: Score{Blocks: 4, Device: 4}, Load: 0},
	}
	assert.LessOrEqual(t, c.Cost(&cands[1]), c.Cost(&cands[0]), "the idle server costs no more")
	assert.Equal(t, 1, c.Route(cands))
	// More cache still wins at equal load.
	cands[0].Load, cands[0].Blocks, cands[0].Device = 0, 5, 5
	assert.Equal(t, 0, c.Route(cands))
}

// The softmax spreads over the range of costs, max minus min, negative
// costs (no Prompt) included: exact ties keep the deterministic tie
// break. Before, the maximum started at 0, so with every cost negative
// the range was wrong and equal costs were sampled as if they differed.
func TestCostAwareTemperatureWithNegativeCosts(t *testing.T) {
	c := CostAware{BlockSize: 16, Temperature: 1, Rand: func() float64 { return 0.99 }}
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Load: 1},
		{Score: Score{Blocks: 4, Device: 4}, Load: 3},
	}
	require.Equal(t, c.Cost(&cands[0]), c.Cost(&cands[1]))
	require.Negative(t, c.Cost(&cands[0]))
	assert.Equal(t, 0, c.Route(cands), "equal costs: the lower Load wins, as at Temperature 0")
}

// TestAudit53CostClampsAndTies (the eighth mutation round, docs/testing.md):
// a negative Load counts as none (M614) and a cache longer than the prompt
// saves the prompt, no more (M615); an exact tie of cost and Load goes to
// fewer Routed wherever the server stands in the list (M619).
func TestAudit53CostClampsAndTies(t *testing.T) {
	c := CostAware{BlockSize: 16}
	assert.InDelta(t, c.Cost(&Candidate{Prompt: 40}), c.Cost(&Candidate{Prompt: 40, Load: -5}), 1e-9, "a negative Load")
	assert.InDelta(t, 0, c.Cost(&Candidate{Score: Score{Blocks: 2, Device: 2}, Prompt: 20}), 1e-9, "32 cached tokens of a 20-token prompt")
	// Host hits still cost their copy when the cache covers the prompt.
	assert.InDelta(t, 3.2, c.Cost(&Candidate{Score: Score{Blocks: 2}, Prompt: 20}), 1e-9)
	cands := []Candidate{{Routed: 4}, {Routed: 3}, {Routed: 5}}
	assert.Equal(t, 1, c.Route(cands), "fewer routed, second in the list")
}

// TestAudit53SoftmaxWhereverTheCheapestStands (M618): the softmax draw
// follows the weights whatever the cheapest server's place in the list;
// the cheapest last, costs 500, 1000, 0 at Temperature 1 weigh e^-0.5,
// e^-1 and 1.
func TestAudit53SoftmaxWhereverTheCheapestStands(t *testing.T) {
	cands := []Candidate{{Work: 500}, {Work: 1000}, {Work: 0}}
	const n = 1000
	picked := softmaxPicks(cands, n)
	w := []float64{math.Exp(-0.5), math.Exp(-1), 1}
	sum := w[0] + w[1] + w[2]
	for i := range cands {
		assert.InDelta(t, n*w[i]/sum, picked[i], 3, "server %d", i)
	}
}

// softmaxPicks routes cands n times through CostAware at Temperature 1
// with Rand stepping evenly through [0, 1), and counts each server's picks.
func softmaxPicks(cands []Candidate, n int) map[int]int {
	u := 0.0
	c := CostAware{BlockSize: 1, Temperature: 1, Rand: func() float64 { return u }}
	picked := map[int]int{}
	for i := range n {
		u = (float64(i) + 0.5) / float64(n)
		picked[c.Route(cands)]++
	}
	return picked
}
