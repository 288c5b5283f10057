package fleet

import (
	"fmt"
	"math"
)

// CostAware routes each request to the server where it adds the least
// prefill time to the fleet: the wait it has there, its own prefill, and
// the stall that prefill causes the sequences already there, in units of
// one prompt token's computation:
//
//	cost = LoadWeight x Work + prefill x (1 + Load)
//	prefill = Prompt - cached tokens + HostCost x cached tokens on the host tier
//	          - affinity gain x BlockSize
//
// The terms are those of a continuous-batching engine with chunked
// prefill (docs/fleet.md): it computes queued prompt tokens first come
// first served, so a request waits for the Work tokens queued before it,
// then computes its own uncached ones (copying host-tier hits back at a
// fraction of the cost); the steps that carry its prompt's chunks carry
// every resident sequence (Load, running and waiting) too, and each of
// them waits for those chunks. Summed, this is the increase of the fleet's
// total completion time the request causes, the quantity list scheduling
// minimizes greedily: a cached prefix is worth more on a busy server, and
// a busy server costs more for every request. No weight is fitted to a
// trace: every term is a token of prefill, LoadWeight is 1.
//
// The affinity gain is 0 unless a server's Score.Affinity exceeds its
// Blocks (a hybrid server holding more of the request's prefix family
// than it can hit now): the blocks that routing the request there makes
// a hit for the family's next request, beyond what the fleet can hit
// already (see Score.Affinity). Each saves the next request a token of
// prefill per token, counted as this request's own cached tokens are,
// the server found as it is now. IgnoreAffinity leaves it out.
//
// When every server holds the same prefix the cache terms differ only by
// Load, and the router balances Work and Load: it degrades to load
// balancing. Exact ties go to the lower Load, then to the server with
// fewer Routed requests (a request that hits nowhere starts a prefix whose
// later requests will follow it there), then to one drawn with Rand when
// it is set, else the lower index.
//
// The idea follows NVIDIA Dynamo's KV router, which weighs the blocks a
// worker would have to prefill against its active blocks and samples a
// softmax of that cost, and llm-d's scheduler, which adds weighted
// prefix-cache and load scorers; this is our own formulation in time.
//
// Temperature > 0 samples a server with probability proportional to
// exp(-(cost - min cost) / (Temperature x (max cost - min cost))), so
// near-ties spread over servers instead of all going to one; Rand must
// then supply uniform numbers in [0, 1). Temperature 0 is deterministic.
type CostAware struct {
	// BlockSize is the number of tokens per block. Required.
	BlockSize int
	// HostCost is the cost of bringing one token back from the host tier,
	// as a fraction of computing it. Default 0.1: a PCIe copy of a token's
	// KV is about an order of magnitude cheaper than its prefill
	// (LMCache's and vLLM's CPU offloading report such ratios).
	HostCost float64
	// LoadWeight scales Work. Default 1: Work is already in prompt tokens.
	LoadWeight float64
	// Temperature of the softmax sampling; 0 picks the cheapest server.
	Temperature float64
	// Rand returns uniform numbers in [0, 1); required when Temperature
	// is positive, and used to break exact ties when set.
	Rand func() float64
	// IgnoreAffinity costs the exact hit alone: a hybrid fleet's prefix
	// families then spread over servers by load where no server can hit
	// them yet.
	IgnoreAffinity bool
}

// Validate reports a configuration CostAware cannot route with.
func (c CostAware) Validate() error {
	switch {
	case c.BlockSize < 1:
		return fmt.Errorf("%w: CostAware.BlockSize %d must be positive", ErrInvalid, c.BlockSize)
	case c.HostCost < 0 || c.HostCost > 1 || math.IsNaN(c.HostCost):
		return fmt.Errorf("%w: CostAware.HostCost %v must be in [0, 1]", ErrInvalid, c.HostCost)
	case c.LoadWeight < 0 || math.IsNaN(c.LoadWeight) || math.IsInf(c.LoadWeight, 0):
		return fmt.Errorf("%w: CostAware.LoadWeight %v must be finite and not negative", ErrInvalid, c.LoadWeight)
	case c.Temperature < 0 || math.IsNaN(c.Temperature) || math.IsInf(c.Temperature, 0):
		return fmt.Errorf("%w: CostAware.Temperature %v must be finite and not negative", ErrInvalid, c.Temperature)
	case c.Temperature > 0 && c.Rand == nil:
		return fmt.Errorf("%w: CostAware.Temperature %v needs Rand", ErrInvalid, c.Temperature)
	}
	return nil
}

func (c CostAware) weights() (host, load float64) {
	host, load = c.HostCost, c.LoadWeight
	if host == 0 {
		host = 0.1
	}
	if load == 0 {
		load = 1
	}
	return host, load
}

// Cost returns the cost of the request on one server, in prompt tokens,
// as Route weighs it but for the affinity gain, which depends on the
// other candidates (a server whose Affinity equals its Blocks has none). Without Prompt (0: unknown) the prefill is counted
// relative to the whole prompt, which is the same on every server: the
// ranking by cache is kept, and the prompt's stall of the resident
// sequences is not counted (Load then only breaks ties).
func (c CostAware) Cost(cand *Candidate) float64 {
	return c.cost(cand, 0)
}

// cost is Cost with an affinity gain of gain blocks.
func (c CostAware) cost(cand *Candidate, gain int) float64 {
	host, load := c.weights()
	bs := float64(max(c.BlockSize, 1))
	cached := (float64(cand.Blocks) + float64(gain)) * bs
	prefill := float64(cand.Blocks-cand.Device) * bs * host
	if cand.Prompt <= 0 {
		// Relative to the whole prompt, the prefill is negative: scaled
		// by the resident sequences it would make a busier server look
		// cheaper. Its stall is left out.
		return load*max(cand.Work, 0) + prefill - cached
	}
	prefill += max(float64(cand.Prompt)-cached, 0)
	return load*max(cand.Work, 0) + prefill*(1+max(cand.Load, 0))
}

// Route implements Router. A configuration Validate rejects routes to
// the least-loaded server (Route cannot return an error).
func (c CostAware) Route(cands []Candidate) int {
	if len(cands) == 0 {
		return -1
	}
	if c.Validate() != nil {
		return LeastLoaded{}.Route(cands)
	}
	best, lo, hi, ties := -1, 0.0, 0.0, 0
	a := affinityOf(cands, 0)
	for i := range cands {
		v := c.costOf(cands, i, a)
		switch {
		case best < 0 || v < lo || (v == lo && tieLess(&cands[i], &cands[best])):
			best, lo, ties = i, v, 1
		case v == lo && !tieLess(&cands[best], &cands[i]):
			// Reservoir sampling: each of the ties ends up chosen with
			// probability 1/ties.
			ties++
			if c.Rand != nil && c.Rand()*float64(ties) < 1 {
				best = i
			}
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	if c.Temperature == 0 || hi == lo {
		return best
	}
	scale := c.Temperature * (hi - lo)
	sum := 0.0
	for i := range cands {
		sum += math.Exp(-(c.costOf(cands, i, a) - lo) / scale)
	}
	u := c.Rand() * sum
	for i := range cands {
		u -= math.Exp(-(c.costOf(cands, i, a) - lo) / scale)
		if u < 0 {
			return i
		}
	}
	return best
}

// costOf is candidate i's cost as Route weighs it: with its affinity
// gain among cands, unless IgnoreAffinity.
func (c CostAware) costOf(cands []Candidate, i int, a affinity) float64 {
	if c.IgnoreAffinity {
		return c.cost(&cands[i], 0)
	}
	return c.cost(&cands[i], a.gain(cands, i))
}

// tieLess orders servers of equal cost: lower Load, then fewer Routed.
func tieLess(a, b *Candidate) bool {
	if a.Load != b.Load {
		return a.Load < b.Load
	}
	return a.Routed < b.Routed
}
