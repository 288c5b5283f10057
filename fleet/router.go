package fleet

import "math"

// Candidate is a server as a Router sees it: its prefix score for the
// request and its current load, as its engine reports it (sched.Load for a
// server built on package sched).
type Candidate struct {
	Score
	// Load is the server's load in whatever unit the caller uses
	// consistently; PrefixAware and LeastLoaded only compare it, and take
	// a NaN (a server that reported no usable load) as the highest load.
	// CostAware reads it as the sequences resident there, running and
	// waiting.
	Load float64
	// Work is the prompt tokens the server has yet to compute for its
	// running and waiting requests: the wait, in tokens of prefill, that
	// its queue puts before a new request's prefill. CostAware reads it.
	Work float64
	// Routed counts the requests routed to the server so far (or over a
	// recent window). CostAware breaks exact ties of cost and Load with it.
	Routed float64
	// Prompt is the request's length in tokens, the same in every
	// candidate; 0 when unknown. CostAware reads it.
	Prompt int
}

// Router picks the server for one request. Route returns an index into
// cands, or -1 when cands is empty. Routers in this package are stateless
// and safe for concurrent use.
type Router interface {
	Route(cands []Candidate) int
}

// PrefixAware routes to the server with the highest prefix score, so the
// request recomputes the fewest blocks (llm-d's precise prefix-cache
// scorer works this way). Ties go to the least loaded server, then the
// lowest index.
//
// The score is Value plus, for a hybrid server, its affinity gain at
// DeviceWeight a block: the blocks of its Affinity beyond its exact hit
// that routing the request there makes a hit for the family's next
// request, beyond what the fleet can hit already (see Score.Affinity and
// docs/fleet.md, "Hybrid models in the fleet study"). It is 0 for every
// server whose Affinity equals its Blocks, a fleet of one group
// included, which is routed by Value alone. With LoadCap the gain is
// weighed among the servers under the cap: one at it is no alternative
// for the family's next request either.
type PrefixAware struct {
	// LoadCap, when positive, excludes servers whose Load is at or above
	// it, unless every server is: a hot prefix then spills to other
	// servers instead of queueing on one.
	LoadCap float64
	// LoadPenalty, when positive, is subtracted from the score per unit of
	// load, trading cache hits for balance continuously.
	LoadPenalty float64
	// DeviceWeight is what one block of affinity gain adds to the score:
	// the Index's Config.DeviceWeight, as the request computes those
	// blocks on the device. Default 1, the Index's default; a negative,
	// NaN or infinite weight is taken as the default too (Route cannot
	// fail).
	DeviceWeight float64
	// IgnoreAffinity routes by Value alone, the exact hit: a hybrid
	// fleet's prefix families then spread over servers by load where no
	// server can hit them yet.
	IgnoreAffinity bool
}

// Route implements Router.
func (p PrefixAware) Route(cands []Candidate) int {
	best := p.pick(cands, true)
	if best < 0 {
		best = p.pick(cands, false)
	}
	return best
}

func (p PrefixAware) pick(cands []Candidate, capped bool) int {
	best, bestV, bestL := -1, 0.0, 0.0
	limit := 0.0
	if capped {
		limit = p.LoadCap
	}
	a := affinityOf(cands, limit)
	w := p.DeviceWeight
	if !(w > 0) || w > math.MaxFloat64 {
		w = 1
	}
	for i := range cands {
		c := &cands[i]
		l := loadOf(c)
		if capped && p.LoadCap > 0 && l >= p.LoadCap {
			continue
		}
		v := c.Value
		if !p.IgnoreAffinity {
			v += float64(a.gain(cands, i)) * w
		}
		if p.LoadPenalty > 0 {
			v -= p.LoadPenalty * l
		}
		if best < 0 || v > bestV || (v == bestV && l < bestL) {
			best, bestV, bestL = i, v, l
		}
	}
	return best
}

// loadOf is c's load for comparisons: a NaN load compares as the highest
// (where it would otherwise win or lose depending on its place in cands).
func loadOf(c *Candidate) float64 {
	if c.Load != c.Load {
		return math.Inf(1)
	}
	return c.Load
}

// LeastLoaded routes to the server with the lowest load, ignoring the
// cache; ties go to the lowest index. It is the load-only baseline.
type LeastLoaded struct{}

// Route implements Router.
func (LeastLoaded) Route(cands []Candidate) int {
	best, bestL := -1, 0.0
	for i := range cands {
		if l := loadOf(&cands[i]); best < 0 || l < bestL {
			best, bestL = i, l
		}
	}
	return best
}
