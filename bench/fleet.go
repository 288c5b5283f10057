package bench

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// FleetConfig configures a fleet replay: Servers block managers behind one
// router, fed a Mooncake-style trace (512-token hash-ID blocks).
//
// Time model: request i arrives at Arrival/Speed and goes to the server
// the router picks, where it waits in a FIFO queue. A server runs at most
// Slots requests at once; a running request holds its blocks (prompt
// plus output tokens) for PrefillSeconds(uncached prompt tokens) + output
// tokens x DecodeStep, then frees them, which leaves its full prompt
// blocks cached (evictable, LRU). A request the pool cannot fit now waits
// for a completion. Load, for routers, is a server's running plus queued
// requests. Cache hits thus pay twice: less prefill time and fewer blocks.
type FleetConfig struct {
	// Servers is the fleet size. Default 8.
	Servers int
	// Blocks is each server's pool in blocks of BlockSize tokens, the null
	// block included. Default 2048 (1Mi tokens).
	Blocks int
	// BlockSize in tokens. Default MooncakeBlockSize (512).
	BlockSize int
	// Slots bounds the concurrently running requests of a server. Default 8.
	Slots int
	// PrefillRate is prompt tokens computed per second for one request.
	// Default 10000.
	PrefillRate float64
	// DecodeStep is the time per output token. Default 30 ms.
	DecodeStep time.Duration
	// Speed divides arrival times (2 replays the trace twice as fast).
	// Default 1.
	Speed float64
	// Index receives every server's KV events; prefix-aware routers look
	// requests up in it. Nil: a fresh in-memory index.
	Index *fleet.Index
}

func (c FleetConfig) withDefaults() (FleetConfig, error) {
	if c.Servers == 0 {
		c.Servers = 8
	}
	if c.Blocks == 0 {
		c.Blocks = 2048
	}
	if c.BlockSize == 0 {
		c.BlockSize = MooncakeBlockSize
	}
	if c.Slots == 0 {
		c.Slots = 8
	}
	if c.PrefillRate == 0 {
		c.PrefillRate = 10000
	}
	if c.DecodeStep == 0 {
		c.DecodeStep = 30 * time.Millisecond
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.Servers < 1 || c.Servers > 1<<12 || c.Blocks < 2 || c.BlockSize < 1 || c.Slots < 1 || !(c.PrefillRate > 0) || c.DecodeStep < 0 || !(c.Speed > 0) {
		return c, fmt.Errorf("bench: fleet config out of range: %+v", c)
	}
	if c.Index == nil {
		x, err := fleet.New(fleet.Config{MaxServers: c.Servers})
		if err != nil {
			return c, err
		}
		c.Index = x
	}
	return c, nil
}

// estimate is the service time of q with nothing cached, the guess a
// router makes for a request still queued.
func (c FleetConfig) estimate(q Request) float64 {
	return float64(q.InputTokens)/c.PrefillRate + float64(q.OutputTokens)*c.DecodeStep.Seconds()
}

// wait estimates when a request routed to s now would start: its slots
// free as their running requests end (s.slots holds the remaining times)
// and each queued request takes the first free slot for its estimated
// service.
func (c FleetConfig) wait(s *fleetServer, reqs []Request) float64 {
	free := s.slots
	for len(free) < c.Slots {
		free = append(free, 0)
	}
	for _, i := range s.queue {
		k := slices.Index(free, slices.Min(free))
		free[k] += c.estimate(reqs[i])
	}
	s.slots = free
	return slices.Min(free)
}

// FleetRouter names a routing policy for the study. Prefix says whether it
// needs the index's scores (the others get zero scores and no lookup).
type FleetRouter struct {
	// Name labels the router in results.
	Name string
	// Router makes the routing decisions.
	Router fleet.Router
	// Prefix is true when the router needs the index's prefix scores.
	Prefix bool
}

// RoundRobin routes to the servers in turn, the cache-blind baseline.
type RoundRobin struct{ next int }

// Route implements fleet.Router.
func (r *RoundRobin) Route(cands []fleet.Candidate) int {
	if len(cands) == 0 {
		return -1
	}
	i := r.next % len(cands)
	r.next++
	return i
}

// Random routes uniformly at random from a seeded generator.
type Random struct{ rng *rand.Rand }

// NewRandom returns a Random router with a fixed seed.
func NewRandom(seed uint64) *Random { return &Random{rng: rand.New(rand.NewPCG(seed, 0x5eed))} }

// Route implements fleet.Router.
func (r *Random) Route(cands []fleet.Candidate) int {
	if len(cands) == 0 {
		return -1
	}
	return r.rng.IntN(len(cands))
}

// FleetRouters returns the study's routers: random, round-robin,
// least-loaded, prefix-aware, and prefix-aware excluding servers whose
// load reaches loadCap.
func FleetRouters(seed uint64, loadCap float64) []FleetRouter {
	return []FleetRouter{
		{Name: "random", Router: NewRandom(seed)},
		{Name: "round-robin", Router: &RoundRobin{}},
		{Name: "least-loaded", Router: fleet.LeastLoaded{}},
		{Name: "prefix-aware", Router: fleet.PrefixAware{}, Prefix: true},
		{Name: fmt.Sprintf("prefix-aware, load cap %g", loadCap), Router: fleet.PrefixAware{LoadCap: loadCap}, Prefix: true},
		{Name: "cost-aware", Router: fleet.CostAware{BlockSize: MooncakeBlockSize}, Prefix: true},
	}
}

// FleetResult is what one replay measured.
type FleetResult struct {
	// Router is the name of the router replayed (FleetRouter.Name).
	Router string
	// Requests were served; Rejected could never fit a server's pool.
	Requests, Rejected int
	// InputTokens and HitTokens sum the prompts and their cached prefixes
	// over the fleet, in tokens.
	InputTokens, HitTokens int64
	// HitRate is HitTokens / InputTokens.
	HitRate float64
	// PerServer counts the requests each server served.
	PerServer []int
	// Imbalance is the largest PerServer count over the mean (1 is perfect
	// balance).
	Imbalance float64
	// MeanWait and P90Wait are simulated queueing delays before a request
	// starts, in seconds; Makespan is when the last request finished.
	MeanWait, P90Wait, Makespan float64
	// Lookups counts the index lookups (0 for routers without Prefix).
	Lookups int
	// LookupTime is the wall time spent in those lookups.
	LookupTime time.Duration
	// BlockEvents counts the blocks named by the KV events applied to the
	// index.
	BlockEvents int64
	// ApplyTime is the wall time spent applying those events.
	ApplyTime time.Duration
	// Decisions is the server chosen for each request, in trace order.
	Decisions []int
	// Index is the index's counters at the end of the replay (losses,
	// gaps, conflicts), and PartialServers the servers it then marked
	// partial: both zero unless the backend misbehaved.
	Index          fleet.Stats
	PartialServers int
}

// LookupsPerSecond is Lookups / LookupTime.
func (r FleetResult) LookupsPerSecond() float64 {
	if r.LookupTime <= 0 {
		return 0
	}
	return float64(r.Lookups) / r.LookupTime.Seconds()
}

// BlockEventsPerSecond is BlockEvents / ApplyTime.
func (r FleetResult) BlockEventsPerSecond() float64 {
	if r.ApplyTime <= 0 {
		return 0
	}
	return float64(r.BlockEvents) / r.ApplyTime.Seconds()
}

// MooncakeHash turns a trace's block hash ID into a paged.Hash: the ID
// little-endian in the first 8 bytes, then a fixed tag. Equal IDs mean
// equal prefixes in the trace, so equal hashes mean shared blocks.
func MooncakeHash(id int64) paged.Hash {
	var h paged.Hash
	binary.LittleEndian.PutUint64(h[:8], uint64(id))
	copy(h[8:], "mooncake hash id")
	return h
}

// fleetServer is one simulated server.
type fleetServer struct {
	name    string
	m       *paged.Manager
	queue   []int // request indices waiting, FIFO
	running int
	served  int
	events  []paged.Event
	// slots is scratch for the wait estimate: when each slot frees.
	slots []float64
}

// completion is a running request's end.
type completion struct {
	at     float64
	server int
	seq    paged.SeqID
	order  int // tie-break: start order
}

type completions []completion

func (c completions) Len() int { return len(c) }
func (c completions) Less(i, j int) bool {
	return c[i].at < c[j].at || (c[i].at == c[j].at && c[i].order < c[j].order)
}
func (c completions) Swap(i, j int) { c[i], c[j] = c[j], c[i] }
func (c *completions) Push(x any)   { *c = append(*c, x.(completion)) }
func (c *completions) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// RunFleet replays reqs through cfg.Servers managers behind router r and
// returns what it measured. The index in cfg is fed every event; it must
// be fresh (or Resync'ed) for the servers "s0".."sN-1".
func RunFleet(reqs []Request, cfg FleetConfig, r FleetRouter) (FleetResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return FleetResult{}, err
	}
	res := FleetResult{Router: r.Name, PerServer: make([]int, cfg.Servers), Decisions: make([]int, len(reqs))}
	servers := make([]fleetServer, cfg.Servers)
	byName := make(map[string]int, cfg.Servers)
	for i := range servers {
		m, err := paged.New(paged.Config{BlockSize: cfg.BlockSize, NumBlocks: cfg.Blocks, Events: 1 << 16})
		if err != nil {
			return res, err
		}
		servers[i] = fleetServer{name: fmt.Sprint("s", i), m: m}
		byName[servers[i].name] = i
		if _, err := cfg.Index.Register(servers[i].name); err != nil {
			return res, err
		}
	}
	feed := func(s *fleetServer) error {
		s.events = s.m.DrainEvents(s.events[:0])
		if len(s.events) == 0 {
			return nil
		}
		t0 := time.Now()
		err := cfg.Index.Apply(s.name, s.events)
		res.ApplyTime += time.Since(t0)
		for i := range s.events {
			res.BlockEvents += int64(len(s.events[i].Hashes))
		}
		return err
	}

	hashes := make([][]paged.Hash, len(reqs))
	for i, q := range reqs {
		n := min(len(q.HashIDs), q.InputTokens/cfg.BlockSize)
		hashes[i] = make([]paged.Hash, n)
		for k := range n {
			hashes[i][k] = MooncakeHash(q.HashIDs[k])
		}
	}
	var (
		done   completions
		waits  []float64
		order  int
		scores []fleet.Score
		cands  = make([]fleet.Candidate, cfg.Servers)
	)
	opts := &paged.SeqOptions{AllowFullHit: true}
	start := func(si int, now float64) error {
		s := &servers[si]
		for s.running < cfg.Slots && len(s.queue) > 0 {
			i := s.queue[0]
			q := reqs[i]
			id, cached, err := s.m.CreateFromHashes(hashes[i], q.InputTokens+max(q.OutputTokens, 1), opts)
			if errors.Is(err, paged.ErrNoSpace) {
				if s.running == 0 {
					return fmt.Errorf("bench: request %d does not fit an idle server", i)
				}
				break // waits for a completion
			}
			s.queue = s.queue[1:]
			if errors.Is(err, paged.ErrNever) {
				res.Rejected++
				continue
			}
			if err != nil {
				return err
			}
			if err := feed(s); err != nil {
				return err
			}
			res.Requests++
			res.InputTokens += int64(q.InputTokens)
			res.HitTokens += int64(cached)
			s.running++
			s.served++
			waits = append(waits, now-reqs[i].Arrival.Seconds()/cfg.Speed)
			service := float64(q.InputTokens-cached)/cfg.PrefillRate + float64(q.OutputTokens)*cfg.DecodeStep.Seconds()
			heap.Push(&done, completion{at: now + service, server: si, seq: id, order: order})
			order++
		}
		return nil
	}
	finish := func(c completion) error {
		s := &servers[c.server]
		if err := s.m.Free(c.seq); err != nil {
			return err
		}
		s.running--
		res.Makespan = max(res.Makespan, c.at)
		if err := feed(s); err != nil {
			return err
		}
		return start(c.server, c.at)
	}

	for i, q := range reqs {
		now := q.Arrival.Seconds() / cfg.Speed
		for len(done) > 0 && done[0].at <= now {
			if err := finish(heap.Pop(&done).(completion)); err != nil {
				return res, err
			}
		}
		for k := range servers {
			cands[k] = fleet.Candidate{Score: fleet.Score{Server: fleet.ServerID(k), Name: servers[k].name}, Load: float64(servers[k].running + len(servers[k].queue))}
			servers[k].slots = servers[k].slots[:0]
		}
		// Work: the wait a new request would have at each server, in
		// prefill tokens.
		for _, c := range done {
			servers[c.server].slots = append(servers[c.server].slots, c.at-now)
		}
		for k := range cands {
			cands[k].Work = cfg.PrefillRate * cfg.wait(&servers[k], reqs)
			cands[k].Queue = float64(len(servers[k].queue)) / float64(cfg.Slots)
		}
		if r.Prefix {
			t0 := time.Now()
			scores, err = cfg.Index.Lookup(hashes[i], scores[:0])
			res.LookupTime += time.Since(t0)
			res.Lookups++
			if err != nil {
				return res, err
			}
			// Scores come by the index's server IDs, which routers
			// sharing the index may have assigned in another order.
			for k := range scores {
				if si, ok := byName[scores[k].Name]; ok {
					cands[si].Score = scores[k]
				}
			}
		}
		si := r.Router.Route(cands)
		if si < 0 || si >= len(servers) {
			return res, fmt.Errorf("bench: router %s returned %d", r.Name, si)
		}
		res.Decisions[i] = si
		servers[si].queue = append(servers[si].queue, i)
		if err := start(si, now); err != nil {
			return res, err
		}
	}
	for len(done) > 0 {
		if err := finish(heap.Pop(&done).(completion)); err != nil {
			return res, err
		}
	}
	res.Index = cfg.Index.Stats()
	st, err := cfg.Index.Servers(nil)
	if err != nil {
		return res, err
	}
	for _, s := range st {
		if s.Partial {
			res.PartialServers++
		}
	}
	for i := range servers {
		if len(servers[i].queue) > 0 {
			return res, fmt.Errorf("bench: server %d ends with %d queued requests", i, len(servers[i].queue))
		}
		res.PerServer[i] = servers[i].served
	}
	if res.InputTokens > 0 {
		res.HitRate = float64(res.HitTokens) / float64(res.InputTokens)
	}
	if res.Requests > 0 {
		res.Imbalance = float64(slices.Max(res.PerServer)) * float64(cfg.Servers) / float64(res.Requests)
		sum := 0.0
		for _, w := range waits {
			sum += w
		}
		res.MeanWait = sum / float64(len(waits))
		slices.Sort(waits)
		res.P90Wait = waits[(len(waits)*9)/10]
	}
	return res, nil
}

// FleetHitBound is the hit rate of one server with an unbounded cache and
// no concurrency: each request hits the leading blocks of its prompt that
// any earlier request had, which no fleet or router can beat.
func FleetHitBound(reqs []Request, blockSize int) float64 {
	seen := make(map[int64]bool)
	var in, hit int64
	for _, q := range reqs {
		n := min(len(q.HashIDs), q.InputTokens/blockSize)
		k := 0
		for k < n && seen[q.HashIDs[k]] {
			k++
		}
		for _, id := range q.HashIDs[:n] {
			seen[id] = true
		}
		in += int64(q.InputTokens)
		hit += int64(k * blockSize)
	}
	if in == 0 {
		return 0
	}
	return float64(hit) / float64(in)
}

// SharedPrefix returns a copy of reqs in which every request begins with
// the same n blocks of blockSize tokens (a common system prompt), its
// prompt n*blockSize tokens longer. The shared blocks get hash IDs -1 ..
// -n, which trace IDs (from 0) never use. A request without hash IDs (an
// Azure trace has only lengths) gets unique IDs for its own full blocks,
// so its prompt takes cache space without ever hitting. n = 0 only adds
// those IDs.
func SharedPrefix(reqs []Request, n, blockSize int) ([]Request, error) {
	if n < 0 || blockSize < 1 {
		return nil, fmt.Errorf("bench: shared prefix of %d blocks of %d tokens", n, blockSize)
	}
	out := make([]Request, len(reqs))
	next := int64(-n - 1) // unique IDs for requests without any, downwards
	for i, q := range reqs {
		ids := make([]int64, 0, n+max(len(q.HashIDs), q.InputTokens/blockSize))
		for k := range n {
			ids = append(ids, int64(-1-k))
		}
		if len(q.HashIDs) > 0 {
			ids = append(ids, q.HashIDs...)
		} else {
			for range q.InputTokens / blockSize {
				ids = append(ids, next)
				next--
			}
		}
		q.HashIDs = ids
		q.InputTokens += n * blockSize
		out[i] = q
	}
	return out, nil
}
