package fleet

import (
	"fmt"
	"math"
)

// CostAware routes each request to the server where it costs the least
// work, in tokens of prefill:
//
//	cost = (uncached prompt tokens there + HostCost x prompt tokens to bring back from the host tier)
//	       x (1 + Candidate.Queue)
//	     + LoadWeight x Candidate.Work
//
// The prefill terms come from the index: a server holding Score.Device
// leading blocks on the device and Score.Blocks on either tier computes
// every prompt token past its run, and copies the host part back. That
// prefill costs the request itself, and it holds one of the server's
// slots, so it also delays the requests that will queue behind it, a
// token each per slot: about Queue of them (waiting requests per slot),
// taking as many to wait behind it as wait there now. Work is the
// server's backlog, the delay before the request starts. The request's
// own length is the same on every server, so only the differences matter
// and the router measures prefill relative to the whole prompt: a server
// that holds nothing costs 0 plus its backlog.
//
// With the default weights every term is a token of prefill, so no
// weight is tuned to a trace: on an idle fleet a request that saves N
// tokens of prefill by landing on a busier server is worth it exactly
// when that server's backlog is less than N tokens longer; on a queued
// one the saving counts for everyone waiting behind, so the cache weighs
// more as queues grow. When every server holds the same
// prefix the cache terms are equal and the router balances by Work alone
// (ties go to the lower Load, then to a server drawn with Rand when it is
// set, else the lower index: a fixed order would send every exact tie to
// the same server).
//
// The idea follows NVIDIA Dynamo's KV router, which weighs the blocks a
// worker would have to prefill against its active blocks and samples a
// softmax of that cost, and llm-d's scheduler, which adds weighted
// prefix-cache and load scorers; this is our own formulation in tokens.
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
	// LoadWeight scales Work. Default 1: Work is already in tokens of
	// prefill.
	LoadWeight float64
	// Temperature of the softmax sampling; 0 picks the cheapest server.
	Temperature float64
	// Rand returns uniform numbers in [0, 1); required when Temperature
	// is positive, and used to break exact ties when set.
	Rand func() float64
}

// Validate reports a configuration CostAware cannot route with.
func (c CostAware) Validate() error {
	if c.BlockSize < 1 {
		return fmt.Errorf("%w: CostAware.BlockSize %d must be positive", ErrInvalid, c.BlockSize)
	}
	if c.HostCost < 0 || c.HostCost > 1 || math.IsNaN(c.HostCost) {
		return fmt.Errorf("%w: CostAware.HostCost %v must be in [0, 1]", ErrInvalid, c.HostCost)
	}
	if c.LoadWeight < 0 || math.IsNaN(c.LoadWeight) || math.IsInf(c.LoadWeight, 0) {
		return fmt.Errorf("%w: CostAware.LoadWeight %v must be finite and not negative", ErrInvalid, c.LoadWeight)
	}
	if c.Temperature < 0 || math.IsNaN(c.Temperature) || math.IsInf(c.Temperature, 0) {
		return fmt.Errorf("%w: CostAware.Temperature %v must be finite and not negative", ErrInvalid, c.Temperature)
	}
	if c.Temperature > 0 && c.Rand == nil {
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

// Cost returns the cost of the request on one server, as Route weighs it.
func (c CostAware) Cost(cand *Candidate) float64 {
	host, load := c.weights()
	bs := float64(max(c.BlockSize, 1))
	// Relative to computing the whole prompt: every cached token saves its
	// prefill, a host token gives back HostCost of it.
	saved := float64(cand.Blocks)*bs - float64(cand.Blocks-cand.Device)*bs*host
	return load*cand.Work - saved*(1+max(cand.Queue, 0))
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
	for i := range cands {
		v := c.Cost(&cands[i])
		switch {
		case best < 0 || v < lo || (v == lo && cands[i].Load < cands[best].Load):
			best, lo, ties = i, v, 1
		case v == lo && cands[i].Load == cands[best].Load:
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
		sum += math.Exp(-(c.Cost(&cands[i]) - lo) / scale)
	}
	u := c.Rand() * sum
	for i := range cands {
		u -= math.Exp(-(c.Cost(&cands[i]) - lo) / scale)
		if u < 0 {
			return i
		}
	}
	return best
}
