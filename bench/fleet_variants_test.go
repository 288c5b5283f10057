//go:build fleetvariants

package bench

// The experiment behind docs/fleet.md's table "Cost terms tried": the
// cost-aware router with one more term (or a softmax), each term derived
// from the step model or from the router's own history, replayed on the
// Mooncake synthetic trace and its second half, with and without a shared
// first block, seed by seed, against the targets. It is a study,
// not a test: it prints the table and fails only if a replay fails.
//
//	go test -tags fleetvariants ./bench -run FleetVariants -v -timeout 60m
//
// PAGEDKV_FLEET_SEEDS=11-30 replays other seeds (default 1-10);
// PAGEDKV_FLEET_TRACES=heldout replays the Mooncake conversation trace and
// the Azure conversation trace with a shared block instead;
// PAGEDKV_FLEET_VARIANTS=name,name picks variants (default all).

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/sched"
)

// variantRouter is fleet.CostAware plus one term, with the history the
// terms estimate their expectations from: only what a router sees (its
// candidates, its decisions, the clock, its servers' metrics), never the
// trace's future.
type variantRouter struct {
	base fleet.CostAware
	term func(v *variantRouter, i int, c *fleet.Candidate) float64
	reqs []Request
	// now is the arrival time of the request being routed, in seconds of
	// the replay.
	now   float64
	speed float64
	n     int // requests routed so far
	// pulled counts the requests whose cached prefix was not the same on
	// every server (a conversation's later turn, which its cache pulls to
	// where its earlier turns ran), pulledTokens their uncached tokens on
	// the server chosen.
	pulled       int
	pulledTokens float64
	// Sums of every candidate's Load and Work over the decisions, overall
	// and per server (the time averages by PASTA, if arrivals are Poisson).
	loadSum, workSum, candN float64
	srvLoad, srvWork        []float64
	// From the probe: each server's resident KV tokens now, and its
	// finished requests and output tokens so far.
	kv               []float64
	finished, output []int64
	// current is the decision's candidates, for terms that compare
	// servers; scratch their copies with the term added.
	current, scratch []fleet.Candidate
	// decisions, when not nil, records every decision (TestFleetExplain).
	decisions *[]decision
}

// decision is one routing decision as the router saw it.
type decision struct {
	cands []fleet.Candidate // with the term in Work
	costs []float64
	best  int
}

func newVariantRouter(base fleet.CostAware, term func(v *variantRouter, i int, c *fleet.Candidate) float64, reqs []Request, speed float64) *variantRouter {
	const n = 8 // FleetConfig's default fleet
	return &variantRouter{base: base, term: term, reqs: reqs, speed: speed,
		srvLoad: make([]float64, n), srvWork: make([]float64, n),
		kv: make([]float64, n), finished: make([]int64, n), output: make([]int64, n)}
}

func (v *variantRouter) probe(k int, l sched.Load, st sched.Stats) {
	v.kv[k] = float64(l.KVTokens)
	v.finished[k], v.output[k] = st.Finished, st.Outputs
}

// share is server i's share of the requests routed so far, 1 on average.
func (v *variantRouter) share(cands []fleet.Candidate, i int) float64 {
	sum := 0.0
	for k := range cands {
		sum += cands[k].Routed
	}
	if sum == 0 {
		return 1
	}
	return cands[i].Routed * float64(len(cands)) / sum
}

// prefill is the uncached prompt tokens of the request on c.
func prefill(c *fleet.Candidate) float64 {
	return max(float64(c.Prompt)-float64(c.Blocks*MooncakeBlockSize), 0)
}

// Route implements fleet.Router: CostAware's choice, ties included, on
// its cost plus the term, which the candidates' copies carry as queued
// Work (CostAware weighs Work by 1).
func (v *variantRouter) Route(cands []fleet.Candidate) int {
	q := v.reqs[v.n]
	v.now, v.current = q.Arrival.Seconds()/v.speed, cands
	v.scratch = append(v.scratch[:0], cands...)
	for i := range v.scratch {
		v.scratch[i].Work = max(cands[i].Work, 0) + v.term(v, i, &cands[i])
	}
	best := v.base.Route(v.scratch)
	if v.decisions != nil {
		d := decision{cands: slices.Clone(v.scratch), costs: make([]float64, len(cands)), best: best}
		for i := range d.cands {
			d.costs[i] = v.base.Cost(&d.cands[i])
		}
		*v.decisions = append(*v.decisions, d)
	}
	mx, mn := cands[0].Blocks, cands[0].Blocks
	for i := range cands {
		mx, mn = max(mx, cands[i].Blocks), min(mn, cands[i].Blocks)
		v.loadSum += cands[i].Load
		v.workSum += cands[i].Work
		v.srvLoad[i] += cands[i].Load
		v.srvWork[i] += cands[i].Work
	}
	v.candN += float64(len(cands))
	if mx > mn {
		v.pulled++
		v.pulledTokens += prefill(&cands[best])
	}
	v.n++
	return best
}

// A variant of the cost: its name and its extra term (nil: a softmax of
// CostAware itself at temperature).
type costVariant struct {
	name        string
	term        func(v *variantRouter, i int, c *fleet.Candidate) float64
	temperature float64
}

// continuation returns the fraction f of requests that are a pulled later
// turn, the mean uncached prefill u of such a turn, and the fleet's mean
// Load and Work as the router saw them.
func (v *variantRouter) continuation() (f, u, load, work float64, ok bool) {
	if v.n == 0 || v.pulled == 0 || v.candN == 0 {
		return 0, 0, 0, 0, false
	}
	return float64(v.pulled) / float64(v.n), v.pulledTokens / float64(v.pulled), v.loadSum / v.candN, v.workSum / v.candN, true
}

var costVariants = []costVariant{
	{name: "cost-aware (as is)", term: func(*variantRouter, int, *fleet.Candidate) float64 { return 0 }},
	{
		// Decode interference: a decode step reads the KV of every
		// resident sequence (KVRead a token) against Token for a prompt
		// token, so over the request's expected output (the mean of the
		// outputs its servers have produced per finished request) its own
		// steps read the server's resident KV, and every resident's steps
		// read its prompt and half its output.
		name: "decode interference",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			var fin, out int64
			for k := range v.finished {
				fin += v.finished[k]
				out += v.output[k]
			}
			if fin == 0 {
				return 0
			}
			o := float64(out) / float64(fin)
			rho := DefaultStepModel.KVRead * 1e-9 / DefaultStepModel.Token.Seconds()
			return rho * o * (v.kv[i] + (float64(c.Prompt)+o/2)*max(c.Load, 0))
		},
	},
	{
		// No Routed tie rule: exact ties drawn at random.
		name: "ties at random",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			v.scratch[i].Routed = 0
			return 0
		},
	},
	{
		// Bounded load (Mirrokni, Thorup and Zadimoghaddam, SODA 2018):
		// a server takes the request only if its resident sequences stay
		// within ceil(1.1 x (all resident + 1) / servers).
		name: "bounded load 1.1",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			all := 0.0
			for k := range v.current {
				all += max(v.current[k].Load, 0)
			}
			if max(c.Load, 0)+1 > math.Ceil(1.1*(all+1)/float64(len(v.current))) {
				return math.Inf(1)
			}
			return 0
		},
	},
	{name: "softmax T=0.05", temperature: 0.05},
	{name: "softmax T=0.2", temperature: 0.2},
	{
		// Arrivals during the prefill: requests reach server i at its
		// observed rate (routed so far over the clock) and each one that
		// arrives during this prefill of D seconds waits for the rest of
		// it, D/2 on average: lambda x D x D/2, in tokens.
		name: "arrivals during the prefill",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			if v.now <= 0 {
				return 0
			}
			tau := DefaultStepModel.Token.Seconds()
			u := prefill(c)
			return c.Routed / v.now * tau * u * u / 2
		},
	},
	{
		// Expected load (Little's law): the sequences resident during
		// this prefill are those of the moment plus, on average, the
		// server's share of the fleet's mean load.
		name: "expected load, Little",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			if v.candN == 0 {
				return 0
			}
			return prefill(c) * v.loadSum / v.candN * v.share(v.cands(), i)
		},
	},
	{
		// The next turn: with probability f this request's conversation
		// comes back, its cache pulls the next turn to the same server,
		// and that turn costs there (by the same rule) the Work it waits
		// for and its u uncached tokens times the resident sequences; by
		// Little's law the server's expected Work and Load are the fleet's
		// means times its share of the requests.
		name: "next turn",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			f, u, load, work, ok := v.continuation()
			if !ok {
				return 0
			}
			return f * v.share(v.cands(), i) * (work + u*load)
		},
	},
	{
		// Every later turn (f/(1-f) of them, geometric), each with the
		// next turn's cost and the stall it and this request cause the
		// turns of other conversations pulled there while resident (a
		// fraction f of the arrivals): the whole attributable increase.
		name: "all later turns",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			f, u, load, work, ok := v.continuation()
			if !ok || f >= 1 {
				return 0
			}
			later := f / (1 - f)
			return v.share(v.cands(), i) * (f*u*load + later*(work+u*load*(1+f)))
		},
	},
	{
		// The same, with each server's expected Load and Work measured
		// as its own mean over the decisions so far instead of the fleet's
		// mean times its share.
		name: "all later turns, per-server means",
		term: func(v *variantRouter, i int, c *fleet.Candidate) float64 {
			f, u, _, _, ok := v.continuation()
			if !ok || f >= 1 {
				return 0
			}
			decisions := v.candN / float64(len(v.srvLoad))
			load, work := v.srvLoad[i]/decisions, v.srvWork[i]/decisions
			later := f / (1 - f)
			return f*u*load + later*(work+u*load*(1+f))
		},
	},
}

// cands is the candidate slice of the decision being made.
func (v *variantRouter) cands() []fleet.Candidate { return v.current }

type variantConfig struct {
	name string
	reqs []Request
}

func variantConfigs(t *testing.T) []variantConfig {
	half := func(reqs []Request) []Request {
		reqs = slices.Clone(reqs[1996:])
		t0 := reqs[0].Arrival
		for i := range reqs {
			reqs[i].Arrival -= t0
		}
		return reqs
	}
	shared := func(reqs []Request) []Request {
		out, err := SharedPrefix(reqs, 1, MooncakeBlockSize)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if os.Getenv("PAGEDKV_FLEET_TRACES") == "heldout" {
		conv, err := ReadTraceFile("traces/mooncake_conversation_first_half.jsonl", "")
		if err != nil {
			t.Fatal(err)
		}
		azure, err := ReadTraceFile("traces/azure_conv_2023.csv", "")
		if err != nil {
			t.Fatal(err)
		}
		return []variantConfig{{"conversation", conv}, {"azure+shared", shared(azure)}}
	}
	all := MooncakeSynthetic()
	return []variantConfig{{"whole", all}, {"whole+shared", shared(all)}, {"half", half(all)}, {"half+shared", shared(half(all))}}
}

func variantSeeds(t *testing.T) (lo, hi int) {
	lo, hi = 1, 10
	if s := os.Getenv("PAGEDKV_FLEET_SEEDS"); s != "" {
		a, b, ok := strings.Cut(s, "-")
		var err1, err2 error
		lo, err1 = strconv.Atoi(a)
		hi, err2 = strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || lo < 1 || hi < lo {
			t.Fatalf("PAGEDKV_FLEET_SEEDS %q: want lo-hi", s)
		}
	}
	return lo, hi
}

func TestFleetVariants(t *testing.T) {
	lo, hi := variantSeeds(t)
	pick := map[string]bool{}
	for _, name := range strings.Split(os.Getenv("PAGEDKV_FLEET_VARIANTS"), ",") {
		if name != "" {
			pick[name] = true
		}
	}
	cfg := FleetConfig{Speed: 2}
	t.Logf("seeds %d-%d; per configuration: imbalance min-max (seeds <= 1.10); hit rate over prefix-aware's, or over round-robin's with a shared block (seeds >= 0.95, >= 2); seeds with makespan and p90 wait within 5%% of least-loaded's; mean wait s", lo, hi)
	for _, tc := range variantConfigs(t) {
		// The baselines are deterministic: one replay each.
		ref := map[string]FleetResult{}
		for _, r := range FleetRouters(1, 8) {
			if r.Name == "prefix-aware" || r.Name == "round-robin" || r.Name == "least-loaded" {
				res, err := RunFleet(tc.reqs, cfg, r)
				if err != nil {
					t.Fatal(err)
				}
				ref[r.Name] = res
			}
		}
		shared := strings.Contains(tc.name, "shared") || tc.name == "conversation"
		for _, cv := range costVariants {
			if len(pick) > 0 && !pick[cv.name] {
				continue
			}
			var imb, hit, wait []float64
			okImb, okHit, okLL := 0, 0, 0
			for seed := lo; seed <= hi; seed++ {
				rng := rand.New(rand.NewPCG(uint64(seed), 0xc057)) // FleetRouters' cost-aware draws
				base := fleet.CostAware{BlockSize: MooncakeBlockSize, Rand: rng.Float64, Temperature: cv.temperature}
				var router fleet.Router = base
				c := cfg
				if cv.term != nil {
					v := newVariantRouter(base, cv.term, tc.reqs, cfg.Speed)
					router = v
					c.probe = v.probe
				}
				res, err := RunFleet(tc.reqs, c, FleetRouter{Name: cv.name, Router: router, Prefix: true})
				if err != nil {
					t.Fatalf("%s, %s, seed %d: %v", tc.name, cv.name, seed, err)
				}
				imb = append(imb, res.Imbalance)
				wait = append(wait, res.MeanWait)
				if res.Imbalance <= 1.10 {
					okImb++
				}
				h := res.HitRate / ref["prefix-aware"].HitRate
				if shared {
					h = res.HitRate / ref["round-robin"].HitRate
				}
				hit = append(hit, h)
				if (!shared && h >= 0.95) || (shared && h >= 2) {
					okHit++
				}
				ll := ref["least-loaded"]
				if res.Makespan <= 1.05*ll.Makespan && res.P90Wait <= 1.05*ll.P90Wait {
					okLL++
				}
			}
			t.Logf("| %s | %s | %.3f-%.3f (%d) | %.3f-%.3f (%d) | %d | %.3f-%.3f |", tc.name, cv.name,
				slices.Min(imb), slices.Max(imb), okImb, slices.Min(hit), slices.Max(hit), okHit, okLL, slices.Min(wait), slices.Max(wait))
		}
	}
}

// TestFleetExplain replays one configuration and seed
// (PAGEDKV_FLEET_EXPLAIN=half:7, the configuration's name from the table
// and a seed; PAGEDKV_FLEET_VARIANTS=name for a variant other than the
// router as is) and tells how the busiest server won its requests: the
// figures of docs/fleet.md's diagnosis of the second half.
func TestFleetExplain(t *testing.T) {
	spec := os.Getenv("PAGEDKV_FLEET_EXPLAIN")
	name, seedS, ok := strings.Cut(spec, ":")
	seed, err := strconv.Atoi(seedS)
	if !ok || err != nil || seed < 1 {
		t.Skip("set PAGEDKV_FLEET_EXPLAIN=config:seed, e.g. half:7")
	}
	var tc variantConfig
	for _, c := range variantConfigs(t) {
		if c.name == name {
			tc = c
		}
	}
	if tc.reqs == nil {
		t.Fatalf("no configuration %q", name)
	}
	cv := costVariants[0]
	for _, c := range costVariants {
		if c.name == os.Getenv("PAGEDKV_FLEET_VARIANTS") && c.term != nil {
			cv = c
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc057))
	v := newVariantRouter(fleet.CostAware{BlockSize: MooncakeBlockSize, Rand: rng.Float64}, cv.term, tc.reqs, 2)
	var log []decision
	v.decisions = &log
	res, err := RunFleet(tc.reqs, FleetConfig{Speed: 2, probe: v.probe}, FleetRouter{Name: cv.name, Router: v, Prefix: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.PerServer)
	hot := 0
	for k := range res.PerServer {
		if res.PerServer[k] > res.PerServer[hot] {
			hot = k
		}
	}
	t.Logf("%s, seed %d, %s: imbalance %.3f, requests per server %v", tc.name, seed, cv.name, res.Imbalance, res.PerServer)
	// A conversation is named by its first block of its own (after the
	// shared ones, whose IDs are negative).
	conv := func(q Request) int64 {
		for _, id := range q.HashIDs {
			if id >= 0 {
				return id
			}
		}
		return -1
	}
	shared := 0 // blocks every request shares
	for _, id := range tc.reqs[0].HashIDs {
		if id < 0 {
			shared++
		}
	}
	kinds := []string{"no hit anywhere", "longest prefix, alone", "longest prefix, tied", "shorter prefix"}
	won := make([][]int, len(kinds))
	for i := range won {
		won[i] = make([]int, n)
	}
	started := make([]int, n)
	seen := map[int64]bool{}
	turns := map[int64][]int{} // conversation -> servers, in order
	var work, load, cached, uncached, lead []float64
	loads := map[int]int{}
	for i, d := range log {
		b := make([]int, n)
		for k := range d.cands {
			b[k] = max(d.cands[k].Blocks-shared, 0)
		}
		mx := slices.Max(b)
		kind := 3
		switch tied := 0; {
		case mx == 0:
			kind = 0
		case b[d.best] == mx:
			for k := range b {
				if b[k] == mx {
					tied++
				}
			}
			kind = 1
			if tied > 1 {
				kind = 2
			}
		}
		won[kind][d.best]++
		c := conv(tc.reqs[i])
		if !seen[c] {
			seen[c] = true
			started[d.best]++
		}
		turns[c] = append(turns[c], d.best)
		if d.best != hot {
			continue
		}
		h := &d.cands[hot]
		work = append(work, h.Work)
		load = append(load, h.Load)
		loads[int(h.Load)]++
		cached = append(cached, float64(h.Blocks*MooncakeBlockSize))
		uncached = append(uncached, prefill(h))
		costs := slices.Clone(d.costs)
		slices.Sort(costs)
		lead = append(lead, costs[1]-costs[0])
	}
	for i, k := range kinds {
		t.Logf("won with %s: %v", k, won[i])
	}
	t.Logf("conversations started per server: %v", started)
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	slices.Sort(lead)
	t.Logf("server %d when it won: Load histogram %v, mean Load %.2f, Work %.0f, cached %.0f, to compute %.0f tokens; median lead over the next server %.0f tokens",
		hot, loads, mean(load), mean(work), mean(cached), mean(uncached), lead[len(lead)/2])
	type convTurns struct {
		id       int64
		all, hot int
	}
	var big []convTurns
	for id, ss := range turns {
		h := 0
		for _, s := range ss {
			if s == hot {
				h++
			}
		}
		big = append(big, convTurns{id, len(ss), h})
	}
	slices.SortFunc(big, func(a, b convTurns) int {
		if a.hot != b.hot {
			return b.hot - a.hot
		}
		return b.all - a.all
	})
	t.Logf("%d conversations; those with the most turns on server %d (turns there, of all):", len(big), hot)
	for _, c := range big[:min(8, len(big))] {
		t.Logf("  %d: %d of %d", c.id, c.hot, c.all)
	}
}
