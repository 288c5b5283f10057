package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// ErrFleetInvalid is returned (wrapped, with the value at fault) for a
// fleet study configuration, step model or shared prefix out of range.
var ErrFleetInvalid = errors.New("bench: fleet: invalid argument")

// StepModel gives the duration of one engine step from what the step
// computes, as a roofline: a step takes as long as the larger of its
// arithmetic and its memory traffic, plus a fixed overhead.
//
//	compute = tokens x Token + attention pairs x Pair
//	memory  = Weights + context tokens read by decodes x KVRead
//	step    = Overhead + max(compute, memory)
//
// Tokens are every token the step computes (prompt chunks and decodes);
// attention pairs are, for a prompt chunk over positions [s, e), the
// (query, key) pairs of causal attention, (e*e - s*s)/2; a decode of a
// sequence of n tokens reads the KV of its n tokens.
//
// DefaultStepModel derives the four figures from public specifications,
// not from any trace: docs/fleet.md shows the arithmetic.
type StepModel struct {
	// Overhead is paid by every step (scheduling, kernel launches).
	Overhead time.Duration
	// Weights is the time to read the model's weights once, the floor of
	// any step.
	Weights time.Duration
	// Token is the time of the dense layers' arithmetic for one token.
	Token time.Duration
	// Pair is the attention arithmetic of one (query, key) pair, in
	// nanoseconds (a fraction of one).
	Pair float64
	// KVRead is the time to read one token's KV from device memory, in
	// nanoseconds.
	KVRead float64
}

// DefaultStepModel is a Llama-3-70B-class dense model (70.6B parameters,
// 80 layers, hidden size 8,192, 320 KiB of KV per token at 16 bits) served
// with tensor parallelism on 8 H100 SXM GPUs (3.35 TB/s of HBM3 and 989
// TFLOP/s of dense BF16 each): weights 141 GB / 26.8 TB/s = 5.27 ms; a
// token's dense layers 2 x 70.6 GFLOP at half the 7.9 PFLOP/s peak = 35.7
// us; an attention pair 4 x 80 x 8,192 FLOP at the same rate = 0.662 ns; a
// token's KV 327,680 B / 26.8 TB/s = 12.2 ns. No overhead is charged: CUDA
// graphs and an overlapped scheduler hide most of it.
var DefaultStepModel = StepModel{
	Weights: 5270 * time.Microsecond,
	Token:   35700 * time.Nanosecond,
	Pair:    0.662,
	KVRead:  12.2,
}

// Validate reports a model that cannot time steps.
func (m StepModel) Validate() error {
	if m.Overhead < 0 || m.Weights < 0 || m.Token < 0 || !(m.Pair >= 0) || !(m.KVRead >= 0) ||
		math.IsInf(m.Pair, 0) || math.IsInf(m.KVRead, 0) || m.Overhead+m.Weights+m.Token <= 0 {
		return fmt.Errorf("%w: step model needs non-negative finite costs, not all zero: %+v", ErrFleetInvalid, m)
	}
	return nil
}

// Duration returns the step's duration in seconds.
func (m StepModel) Duration(st *sched.Step) float64 {
	var tokens, pairs, reads float64
	for i := range st.Scheduled {
		sc := &st.Scheduled[i]
		n, s := float64(sc.NewTokens), float64(sc.Start)
		tokens += n
		if sc.Prefill {
			pairs += n * (2*s + n) / 2 // ((s+n)^2 - s^2) / 2
		} else {
			reads += s + n
		}
	}
	compute := tokens*m.Token.Seconds() + pairs*m.Pair*1e-9
	memory := m.Weights.Seconds() + reads*m.KVRead*1e-9
	return m.Overhead.Seconds() + max(compute, memory)
}

// PrefillSeconds returns the time the model takes to compute n prompt
// tokens after s cached ones in steps of budget tokens, none of them
// shared with other work: what a request costs a server that does
// nothing else.
func (m StepModel) PrefillSeconds(s, n, budget int) float64 {
	if budget < 1 {
		budget = max(n, 1)
	}
	var st sched.Step
	st.Scheduled = make([]sched.Scheduled, 1)
	total := 0.0
	for n > 0 {
		k := min(n, budget)
		st.Scheduled[0] = sched.Scheduled{Start: s, NewTokens: k, Prefill: true}
		total += m.Duration(&st)
		s, n = s+k, n-k
	}
	return total
}

// FleetConfig configures a fleet replay: Servers inference servers, each a
// sched.Scheduler over its own paged.Manager, behind one router, fed a
// Mooncake-style trace (512-token hash-ID blocks).
//
// The replay is a discrete-event simulation. Request i arrives at
// Arrival/Speed and goes to the server the router picks, where it is
// submitted to that server's scheduler. A server with work runs engine
// steps back to back: each step is the scheduler's (FCFS, chunked prefill
// within MaxBatchTokens, preemption by recompute), and lasts what Step
// says for the tokens it computes; its sampled tokens are handed back at
// its end. A request ends after its trace's output tokens. The managers'
// KV events feed the index after every Schedule and every Update, so the
// router sees each server's cache as its engine reports it, and each
// scheduler's Load at the moment of the decision.
type FleetConfig struct {
	// Servers is the fleet size. Default 8.
	Servers int
	// Blocks is each server's pool in blocks of BlockSize tokens, the null
	// block included. Default 2048 (1Mi tokens: 320 GiB of a 70B model's
	// KV, what 8 80-GB GPUs hold beside its weights).
	Blocks int
	// BlockSize in tokens, at least 4. Default MooncakeBlockSize (512).
	BlockSize int
	// MaxRunning bounds each server's running sequences (vLLM's
	// max_num_seqs). Default sched.DefaultMaxRunning (256).
	MaxRunning int
	// MaxBatchTokens is each step's token budget (vLLM's
	// max_num_batched_tokens). Default 8192.
	MaxBatchTokens int
	// Step times the steps. Zero: DefaultStepModel.
	Step StepModel
	// Speed divides arrival times (2 replays the trace twice as fast).
	// Default 1.
	Speed float64
	// Index receives every server's KV events; prefix-aware routers look
	// requests up in it. Nil: a fresh in-memory index.
	Index *fleet.Index
	// Check calls every manager's Check after each of its steps (slow: for
	// tests). Each manager is checked at the end in any case.
	Check bool
	// EventDelay is the time from a server's Schedule or Update to the
	// router seeing the events they made: the index (and a Pending record)
	// receive them that much later. 0, the default, feeds them at once,
	// the best case; a real router also waits for the engine's
	// publication and the network (vLLM publishes a step's events after
	// Schedule or after the step, depending on its version).
	EventDelay time.Duration
	// Layout gives every server the KV cache groups of a hybrid model
	// (fleet.ParseLayout("b512 full window:128"), gpt-oss-like): each
	// manager is made with them (its State groups StatePages blocks a
	// sequence) and takes its checkpoint and copy directives every step,
	// as a server does with its batch; and the index is told the layout
	// (Index.SetLayout), unless BlindIndex. Its BlockSize must be
	// BlockSize. The zero Layout is one full-attention group.
	Layout fleet.Layout
	// StatePages is the blocks a sequence's state takes in each State
	// group of Layout. Default 1.
	StatePages int
	// BlindIndex keeps Layout from the index: it scores every server by
	// group 0's run of leading blocks, as before layouts, an upper bound
	// of a hybrid server's hit (FleetResult.OverReports counts where it
	// was above).
	BlindIndex bool

	// probe, when set, sees every server's scheduler load and counters
	// before each routing decision: the seam through which the cost-term
	// experiments (fleet_variants_test.go) read what a real router would
	// learn from its servers' metrics but Candidate does not carry.
	probe func(server int, l sched.Load, st sched.Stats)
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
	if c.MaxRunning == 0 {
		c.MaxRunning = sched.DefaultMaxRunning
	}
	if c.MaxBatchTokens == 0 {
		c.MaxBatchTokens = 8192
	}
	if c.Step == (StepModel{}) {
		c.Step = DefaultStepModel
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.StatePages == 0 {
		c.StatePages = 1
	}
	if len(c.Layout.Groups) > 0 {
		if err := c.Layout.Validate(); err != nil {
			return c, fmt.Errorf("%w: %w", ErrFleetInvalid, err)
		}
		if c.Layout.BlockSize != c.BlockSize {
			return c, fmt.Errorf("%w: layout %q has blocks of %d tokens, the fleet %d", ErrFleetInvalid, c.Layout, c.Layout.BlockSize, c.BlockSize)
		}
	}
	if c.StatePages < 1 || c.StatePages >= c.Blocks {
		return c, fmt.Errorf("%w: %d state pages, want [1, blocks-1=%d]", ErrFleetInvalid, c.StatePages, c.Blocks-1)
	}
	if c.EventDelay < 0 {
		return c, fmt.Errorf("%w: event delay %v is negative", ErrFleetInvalid, c.EventDelay)
	}
	if c.Servers < 1 || c.Servers > 1<<12 || c.Blocks < 2 || c.BlockSize < 4 || c.MaxRunning < 1 || c.MaxBatchTokens < 1 ||
		!(c.Speed > 0) || math.IsInf(c.Speed, 0) {
		return c, fmt.Errorf("%w: config out of range: servers %d, blocks %d, block size %d, max running %d, batch tokens %d, speed %g",
			ErrFleetInvalid, c.Servers, c.Blocks, c.BlockSize, c.MaxRunning, c.MaxBatchTokens, c.Speed)
	}
	if err := c.Step.Validate(); err != nil {
		return c, err
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

// FleetRouter names a routing policy for the study. Prefix says whether it
// needs the index's scores (the others get zero scores and no lookup).
type FleetRouter struct {
	// Name labels the router in results.
	Name string
	// Router makes the routing decisions.
	Router fleet.Router
	// Prefix is true when the router needs the index's prefix scores.
	Prefix bool
	// Pending completes the index's scores with a fleet.Pending record of
	// the prompts this router sent each server that its events have not
	// reported yet (with Prefix).
	Pending bool
}

// RoundRobin routes to the servers in turn, the cache-blind baseline.
// Unlike fleet's routers it keeps state: it is not safe for concurrent
// use.
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

// Random routes uniformly at random from a seeded generator, which it
// advances: it is not safe for concurrent use.
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
// least-loaded, prefix-aware, prefix-aware excluding servers whose load
// reaches loadCap, cost-aware, and prefix-aware and cost-aware with a
// fleet.Pending record. seed draws the random router's choices and the
// cost-aware routers' exact ties (both cost-aware routers the same draws).
func FleetRouters(seed uint64, loadCap float64) []FleetRouter {
	rng := rand.New(rand.NewPCG(seed, 0xc057))
	rng2 := rand.New(rand.NewPCG(seed, 0xc057)) // the same draws as cost-aware's
	return []FleetRouter{
		{Name: "random", Router: NewRandom(seed)},
		{Name: "round-robin", Router: &RoundRobin{}},
		{Name: "least-loaded", Router: fleet.LeastLoaded{}},
		{Name: "prefix-aware", Router: fleet.PrefixAware{}, Prefix: true},
		{Name: fmt.Sprintf("prefix-aware, load cap %g", loadCap), Router: fleet.PrefixAware{LoadCap: loadCap}, Prefix: true},
		{Name: "cost-aware", Router: fleet.CostAware{BlockSize: MooncakeBlockSize, Rand: rng.Float64}, Prefix: true},
		{Name: "prefix-aware, pending", Router: fleet.PrefixAware{}, Prefix: true, Pending: true},
		{Name: "cost-aware, pending", Router: fleet.CostAware{BlockSize: MooncakeBlockSize, Rand: rng2.Float64}, Prefix: true, Pending: true},
	}
}

// IgnoringAffinity returns r with its router reading the exact hit
// alone (fleet.PrefixAware and fleet.CostAware with IgnoreAffinity), as
// the study's routers did before Score.Affinity; other routers are
// returned as they are.
func (r FleetRouter) IgnoringAffinity() FleetRouter {
	switch rt := r.Router.(type) {
	case fleet.PrefixAware:
		rt.IgnoreAffinity = true
		r.Router = rt
	case fleet.CostAware:
		rt.IgnoreAffinity = true
		r.Router = rt
	}
	return r
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
	// PerServerBusy is the time each server spent in steps, in seconds,
	// and BusyImbalance the largest over the mean: the balance of the
	// work itself, where requests that hit a server's cache cost it less.
	PerServerBusy []float64
	BusyImbalance float64
	// MeanWait and P90Wait are the simulated delays from a request's
	// arrival to the start of the step that first admits it, in seconds;
	// MeanTTFT and P90TTFT run to the end of the step that samples its
	// first token (time to first token); Makespan is when the last step
	// ended.
	MeanWait, P90Wait, MeanTTFT, P90TTFT, Makespan float64
	// Steps counts the engine steps of all servers; Preemptions the
	// sequences their schedulers preempted.
	Steps, Preemptions int
	// OverReports counts the requests, of a router with Prefix, whose
	// chosen server the index scored above the prefix the server's
	// manager then gave at the request's first admission, and
	// OverReportTokens sums the excess (score x BlockSize - hit, in
	// tokens). Pending claims are left out of the score. A score can
	// exceed the hit by eviction between routing and admission, or by
	// scoring blocks a hit cannot use (a hybrid layout the index does
	// not know: FleetConfig.BlindIndex).
	OverReports      int
	OverReportTokens int64
	// ClaimOverReports and ClaimOverReportTokens are the same with the
	// Pending claims counted in the score (routers with Pending): a
	// claim promises what the routed request leaves on the server, and
	// over-reports where that is less (a State group's checkpoint is
	// taken only at a request's branch point: fleet.Pending.Claim).
	ClaimOverReports      int
	ClaimOverReportTokens int64
	// AwayRoutes counts the requests, of a router with Prefix, sent to a
	// server holding fewer of their leading group-0 blocks than another
	// (Score.Affinity; the blind index's score), and AwayNoHit those of
	// them when no server could hit any block (every Score.Blocks 0):
	// the decisions that move a prefix family off the servers holding
	// it. AwayHitTokens sums the hits they then got.
	AwayRoutes, AwayNoHit int
	AwayHitTokens         int64
	// FamilyServers is the mean number of servers a prefix family (the
	// requests whose prompts share their first block) was sent to, over
	// the families of two or more requests, and FamilyMoves the share of
	// their requests after the first that went to a server the family
	// had not been sent to before (0: each family stays where it
	// started). Zero for a router without Prefix.
	FamilyServers, FamilyMoves float64
	// Checkpoints counts the state checkpoints the managers handed out
	// (sched.Step.Checkpoints; Layout with State groups only).
	Checkpoints int
	// Lookups counts the index lookups (0 for routers without Prefix).
	Lookups int
	// LookupTime is the wall time spent in those lookups.
	LookupTime time.Duration
	// BlockEvents counts the blocks named by the KV events applied to the
	// index.
	BlockEvents int64
	// ApplyTime is the wall time spent applying those events.
	ApplyTime time.Duration
	// Decisions is the server chosen for each request, in trace order,
	// and Hits the prompt tokens it found cached at its first admission
	// (0 for a rejected request).
	Decisions, Hits []int
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

// idMarker opens a prompt block that stands for a trace hash ID: the
// block's next three tokens carry the ID, 31 bits each, and mooncakeHasher
// names the block MooncakeHash(ID). It is far above any vocabulary, and the
// replay's generated tokens are 0, so no other block starts with it.
const idMarker = 0x6d6f6f6e

// mooncakeHasher names a block that stands for a trace hash ID by that ID,
// so that the managers' hashes, their KV events and the router's lookups
// agree with MooncakeHash; a trace ID already names its whole prefix, so
// the parent adds nothing. Other blocks (generated tokens) are hashed with
// their parent by paged.FastHasher, whose hashes never look like
// MooncakeHash's (their last 16 bytes are zero).
type mooncakeHasher struct{ paged.FastHasher }

func (h mooncakeHasher) Sum(parent *paged.Hash, tokens []int32, extra []byte) paged.Hash {
	if len(tokens) >= 4 && tokens[0] == idMarker && len(extra) == 0 {
		return MooncakeHash(int64(uint64(tokens[1]) | uint64(tokens[2])<<31 | uint64(tokens[3])<<62))
	}
	return h.FastHasher.Sum(parent, tokens, extra)
}

// promptOf writes the prompt of q into buf: each full block the trace
// names by a hash ID carries the ID (see idMarker), the rest is zeros.
func promptOf(buf []int32, q Request, bs int) []int32 {
	buf = slices.Grow(buf[:0], q.InputTokens)[:q.InputTokens]
	clear(buf)
	for k := range min(len(q.HashIDs), q.InputTokens/bs) {
		id := q.HashIDs[k]
		u := uint64(id)
		buf[k*bs], buf[k*bs+1], buf[k*bs+2], buf[k*bs+3] = idMarker, int32(u&(1<<31-1)), int32(u>>31&(1<<31-1)), int32(u>>62)
	}
	return buf
}

// groups returns the managers' Config.Groups for cfg.Layout: nil for one
// full-attention group (the zero Layout too).
func (c FleetConfig) groups() []paged.Group {
	l := c.Layout.Groups
	if len(l) == 0 || len(l) == 1 && l[0].Kind == paged.FullAttention {
		return nil
	}
	gs := make([]paged.Group, len(l))
	for i, g := range l {
		gs[i] = paged.Group{Kind: g.Kind, Window: g.Window, Chunk: g.Chunk, Target: g.Target}
		if g.Kind == paged.State {
			gs[i].Pages = c.StatePages
		}
	}
	return gs
}

// fleetServer is one simulated inference server.
type fleetServer struct {
	name string
	id   fleet.ServerID // in the index
	m    *paged.Manager
	s    *sched.Scheduler
	// busy: a step runs until end.
	busy   bool
	end    float64
	events []paged.Event
	tokens []int32
	step   *sched.Step
	// copies takes a hybrid manager's copy directives each step.
	copies []paged.Copy
	// reqs maps the scheduler's request IDs (from 1) to trace indices.
	reqs []int
}

// fleetRun is one replay in progress.
type fleetRun struct {
	cfg     FleetConfig
	reqs    []Request
	servers []fleetServer
	res     *FleetResult
	pending *fleet.Pending // nil unless the router uses one
	now     float64        // the simulated clock, in seconds
	// inbox holds events on their way to the router (EventDelay > 0), in
	// the order they are due.
	inbox []delivery
	// Per trace index: the scheduler's request, when it was first
	// admitted and when its first token came (NaN: not yet).
	handles      []*sched.Request
	start, first []float64
	// scored is the index's score of the chosen server, in blocks, its
	// Pending claims left out (-1: not looked up).
	scored []int
	// claimed is the same with the Pending claims (-1: no claims).
	claimed []int
	// away marks the requests routed off the servers holding the most of
	// their group-0 blocks (FleetResult.AwayRoutes); families lists the
	// servers each prefix family was sent to, by its first block's ID,
	// and moves counts its requests sent to a server new to it.
	away     []bool
	families map[int64]*family
	repeats  int
	moves    int
	// hybrid: the managers have several groups and hand out directives.
	hybrid bool
}

// delivery is a batch of one server's events due at the router.
type delivery struct {
	due    float64
	server *fleetServer
	events []paged.Event
}

// feed sends a server's queued KV events to the router: at once, or
// after EventDelay (the events are copied: DrainEvents reuses them).
func (f *fleetRun) feed(s *fleetServer) error {
	s.events = s.m.DrainEvents(s.events[:0])
	if len(s.events) == 0 {
		return nil
	}
	if f.cfg.EventDelay == 0 {
		return f.deliver(s, s.events)
	}
	evs := slices.Clone(s.events)
	for i := range evs {
		evs[i].Hashes = slices.Clone(evs[i].Hashes)
	}
	f.inbox = append(f.inbox, delivery{due: f.now + f.cfg.EventDelay.Seconds(), server: s, events: evs})
	return nil
}

// deliver applies one server's events to the index and the router's
// Pending record.
func (f *fleetRun) deliver(s *fleetServer, events []paged.Event) error {
	t0 := time.Now()
	err := f.cfg.Index.Apply(s.name, events)
	f.res.ApplyTime += time.Since(t0)
	if err == nil && f.pending != nil {
		err = f.pending.Observe(s.id, events)
	}
	for i := range events {
		f.res.BlockEvents += int64(len(events[i].Hashes))
	}
	return err
}

// begin starts server si's next step at now, if it has work.
func (f *fleetRun) begin(si int, now float64) error {
	f.now = now
	s := &f.servers[si]
	s.busy = false
	if !s.s.Busy() {
		return nil
	}
	st, err := s.s.Schedule()
	if err != nil {
		return fmt.Errorf("bench: server %s: %w", s.name, err)
	}
	if f.hybrid {
		// The step's directives, as a server takes them with its batch:
		// the copies from the manager, the state checkpoints from the step
		// (Schedule took them from the manager, which has none left).
		s.copies = s.m.TakeCopies(s.copies[:0])
		f.res.Checkpoints += len(st.Checkpoints)
	}
	if err := f.feed(s); err != nil {
		return err
	}
	s.step = st
	d := f.cfg.Step.Duration(st)
	s.busy, s.end = true, now+d
	f.res.PerServerBusy[si] += d
	f.res.Steps++
	f.res.Preemptions += st.Preempted
	for i := range st.Scheduled {
		sc := &st.Scheduled[i]
		q := s.reqs[sc.Request.ID()-1]
		if sc.Admitted && math.IsNaN(f.start[q]) {
			f.start[q] = now
			if k := f.scored[q]; k >= 0 {
				if over := k*f.cfg.BlockSize - sc.Request.Cached(); over > 0 {
					f.res.OverReports++
					f.res.OverReportTokens += int64(over)
				}
			}
			if k := f.claimed[q]; k >= 0 {
				if over := k*f.cfg.BlockSize - sc.Request.Cached(); over > 0 {
					f.res.ClaimOverReports++
					f.res.ClaimOverReportTokens += int64(over)
				}
			}
		}
		if sc.Outputs > 0 && math.IsNaN(f.first[q]) {
			f.first[q] = now + d
		}
	}
	return nil
}

// finish ends server si's step at now and starts its next one.
func (f *fleetRun) finish(si int, now float64) error {
	f.now = now
	s := &f.servers[si]
	out := s.step.Outputs
	s.tokens = slices.Grow(s.tokens[:0], out)[:out]
	if err := s.s.Update(s.tokens); err != nil {
		return fmt.Errorf("bench: server %s: %w", s.name, err)
	}
	if err := f.feed(s); err != nil {
		return err
	}
	if f.cfg.Check {
		if err := s.m.Check(); err != nil {
			return fmt.Errorf("bench: server %s: %w", s.name, err)
		}
	}
	f.res.Makespan = max(f.res.Makespan, now)
	return f.begin(si, now)
}

// RunFleet replays reqs through cfg.Servers schedulers behind router r and
// returns what it measured. The index in cfg is fed every event; it must
// be fresh (or Resync'ed) for the servers "s0".."sN-1". The replay is
// deterministic: the same trace, configuration and router give the same
// decisions and figures. A request with a negative length or a prompt
// above MaxTraceTokens, or a FleetRouter without a Router, is refused with
// an error wrapping ErrFleetInvalid, before any server registers with the
// index.
func RunFleet(reqs []Request, cfg FleetConfig, r FleetRouter) (FleetResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return FleetResult{}, err
	}
	if r.Router == nil {
		return FleetResult{}, fmt.Errorf("%w: router %q has no Router", ErrFleetInvalid, r.Name)
	}
	for i, q := range reqs {
		if q.InputTokens < 0 || q.InputTokens > MaxTraceTokens || q.OutputTokens < 0 {
			return FleetResult{}, fmt.Errorf("%w: request %d has %d prompt and %d output tokens, want a prompt in [0, MaxTraceTokens=%d] and no negative output",
				ErrFleetInvalid, i, q.InputTokens, q.OutputTokens, MaxTraceTokens)
		}
		if i > 0 && q.Arrival < reqs[i-1].Arrival {
			return FleetResult{}, fmt.Errorf("%w: request %d arrives at %v, before request %d (%v); requests must be in arrival order",
				ErrFleetInvalid, i, q.Arrival, i-1, reqs[i-1].Arrival)
		}
	}
	res := FleetResult{Router: r.Name, PerServer: make([]int, cfg.Servers), PerServerBusy: make([]float64, cfg.Servers), Decisions: make([]int, len(reqs)), Hits: make([]int, len(reqs))}
	f := &fleetRun{cfg: cfg, reqs: reqs, servers: make([]fleetServer, cfg.Servers), res: &res,
		handles: make([]*sched.Request, len(reqs)), start: make([]float64, len(reqs)), first: make([]float64, len(reqs)),
		scored: make([]int, len(reqs)), claimed: make([]int, len(reqs)), hybrid: cfg.groups() != nil, away: make([]bool, len(reqs)), families: make(map[int64]*family)}
	for i := range reqs {
		f.start[i], f.first[i], f.scored[i], f.claimed[i] = math.NaN(), math.NaN(), -1, -1
	}
	byName := make(map[string]int, cfg.Servers)
	for i := range f.servers {
		m, err := paged.New(paged.Config{BlockSize: cfg.BlockSize, NumBlocks: cfg.Blocks, Events: 1 << 16, Hasher: mooncakeHasher{}, Groups: cfg.groups()})
		if err != nil {
			return res, err
		}
		s, err := sched.New(m, sched.Config{MaxRunning: cfg.MaxRunning, MaxBatchTokens: cfg.MaxBatchTokens, ChunkedPrefill: true})
		if err != nil {
			return res, err
		}
		f.servers[i] = fleetServer{name: fmt.Sprint("s", i), m: m, s: s}
		byName[f.servers[i].name] = i
		if f.servers[i].id, err = cfg.Index.Register(f.servers[i].name); err != nil {
			return res, err
		}
		if len(cfg.Layout.Groups) > 0 && !cfg.BlindIndex {
			if err := cfg.Index.SetLayout(f.servers[i].name, cfg.Layout); err != nil {
				return res, err
			}
		}
	}
	if r.Pending {
		maxID := 0
		for i := range f.servers {
			maxID = max(maxID, int(f.servers[i].id))
		}
		// The record's clock is the simulation's; its TTL and capacity
		// are the defaults: claims end with the servers' events.
		f.pending, err = fleet.NewPending(fleet.PendingConfig{MaxServers: maxID + 1,
			Now: func() time.Time { return time.Unix(0, int64(f.now*1e9)) }})
		if err != nil {
			return res, err
		}
	}

	var (
		scores []fleet.Score
		hashes []paged.Hash
		prompt []int32
		cands  = make([]fleet.Candidate, cfg.Servers)
		next   = 0
	)
	for {
		// The next event: the earliest step end (lowest server on a tie),
		// unless an arrival comes first; a step ending at an arrival's
		// instant ends first, so the router sees its outcome.
		si, tc := -1, math.Inf(1)
		for k := range f.servers {
			if f.servers[k].busy && f.servers[k].end < tc {
				si, tc = k, f.servers[k].end
			}
		}
		ta := math.Inf(1)
		if next < len(reqs) {
			ta = reqs[next].Arrival.Seconds() / cfg.Speed
		}
		if len(f.inbox) > 0 && f.inbox[0].due <= min(tc, ta) {
			// Events due now reach the router before anything else
			// happens at that instant.
			d := f.inbox[0]
			f.inbox = f.inbox[1:]
			f.now = d.due
			if err := f.deliver(d.server, d.events); err != nil {
				return res, err
			}
			continue
		}
		if si < 0 && next == len(reqs) {
			break
		}
		if si >= 0 && tc <= ta {
			if err := f.finish(si, tc); err != nil {
				return res, err
			}
			continue
		}

		i, q := next, reqs[next]
		next++
		f.now = ta
		// The blocks a hit can cover (Index.Lookup): a server computes
		// the prompt's last token, so it hits at most (tokens-1)/B
		// blocks, one fewer than the full blocks of a whole-block prompt.
		n := min(len(q.HashIDs), max(q.InputTokens-1, 0)/cfg.BlockSize)
		hashes = hashes[:0]
		for k := range n {
			hashes = append(hashes, MooncakeHash(q.HashIDs[k]))
		}
		for k := range f.servers {
			cands[k] = fleetCandidate(&f.servers[k], k, q.InputTokens)
			cands[k].Routed = float64(res.PerServer[k])
			if cfg.probe != nil {
				cfg.probe(k, f.servers[k].s.Load(), f.servers[k].s.Stats())
			}
		}
		if r.Prefix {
			t0 := time.Now()
			scores, err = cfg.Index.Lookup(hashes, scores[:0])
			if err == nil && f.pending != nil {
				f.pending.Extend(hashes, scores)
			}
			res.LookupTime += time.Since(t0)
			res.Lookups++
			if err != nil {
				return res, err
			}
			// Scores come by the index's server IDs, which routers
			// sharing the index may have assigned in another order.
			for k := range scores {
				if sk, ok := byName[scores[k].Name]; ok {
					cands[sk].Score = scores[k]
				}
			}
		}
		si = r.Router.Route(cands)
		if si < 0 || si >= len(f.servers) {
			return res, fmt.Errorf("bench: router %s returned %d", r.Name, si)
		}
		res.Decisions[i] = si
		if r.Prefix {
			f.scored[i] = cands[si].Blocks - cands[si].Pending
			if f.pending != nil {
				f.claimed[i] = cands[si].Blocks
			}
			f.record(i, cands, si)
		}
		s := &f.servers[si]
		prompt = promptOf(prompt, q, cfg.BlockSize)
		h, err := s.s.Submit(prompt, sched.Options{MaxTokens: max(q.OutputTokens, 1)})
		if errors.Is(err, sched.ErrNever) {
			res.Rejected++
			continue
		}
		if err != nil {
			return res, fmt.Errorf("bench: request %d: %w", i, err)
		}
		if f.pending != nil {
			// The blocks after the server's indexed run are its to
			// compute; what they leave a hit depends on the layout, if
			// the router knows it.
			var l fleet.Layout
			if !cfg.BlindIndex {
				l = cfg.Layout
			}
			if err := f.pending.Claim(s.id, hashes, cands[si].Score, l); err != nil {
				return res, err
			}
		}
		f.handles[i] = h
		s.reqs = append(s.reqs, i)
		res.PerServer[si]++
		if !s.busy {
			if err := f.begin(si, ta); err != nil {
				return res, err
			}
		}
	}
	return res, f.settle()
}

// record notes where a router with Prefix sent request i among cands:
// off the servers holding most of its family or not, and to a server
// its family had been sent to or not.
func (f *fleetRun) record(i int, cands []fleet.Candidate, si int) {
	most, hit := 0, false
	for k := range cands {
		most = max(most, cands[k].Affinity)
		hit = hit || cands[k].Blocks > 0
	}
	if cands[si].Affinity < most {
		f.away[i] = true
		f.res.AwayRoutes++
		if !hit {
			f.res.AwayNoHit++
		}
	}
	if len(f.reqs[i].HashIDs) == 0 {
		return
	}
	fam := f.families[f.reqs[i].HashIDs[0]]
	if fam == nil {
		fam = &family{}
		f.families[f.reqs[i].HashIDs[0]] = fam
	}
	fam.requests++
	known := slices.Contains(fam.servers, si)
	if fam.requests > 1 {
		f.repeats++
		if !known {
			f.moves++
		}
	}
	if !known {
		fam.servers = append(fam.servers, si)
	}
}

// family is what the study records of a prefix family: its requests
// and the servers they went to.
type family struct {
	requests int
	servers  []int
}

// fleetCandidate is server k as a router sees it: its scheduler's load,
// no prefix score yet.
func fleetCandidate(s *fleetServer, k, prompt int) fleet.Candidate {
	l := s.s.Load()
	return fleet.Candidate{
		Score:  fleet.Score{Server: fleet.ServerID(k), Name: s.name},
		Load:   float64(l.Running + l.Waiting),
		Work:   float64(l.PrefillTokens),
		Prompt: prompt,
	}
}

// settle checks the servers after the replay and computes the figures.
func (f *fleetRun) settle() error {
	res := f.res
	res.Index = f.cfg.Index.Stats()
	st, err := f.cfg.Index.Servers(nil)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Partial {
			res.PartialServers++
		}
	}
	for i := range f.servers {
		s := &f.servers[i]
		if err := s.m.Check(); err != nil {
			return fmt.Errorf("bench: server %s: %w", s.name, err)
		}
		ms, ss := s.m.Stats(), s.s.Stats()
		if s.s.Busy() || ms.UsedBlocks != 0 || ms.Sequences != 0 || ss.Finished != int64(res.PerServer[i]) {
			return fmt.Errorf("bench: server %s ends with %d blocks in use, %d sequences, %d of %d requests finished",
				s.name, ms.UsedBlocks, ms.Sequences, ss.Finished, res.PerServer[i])
		}
	}
	var waits, ttfts []float64
	for i, h := range f.handles {
		if h == nil {
			continue
		}
		q := f.reqs[i]
		if h.State() != sched.Finished || h.Outputs(0) != max(q.OutputTokens, 1) || math.IsNaN(f.first[i]) {
			return fmt.Errorf("bench: request %d ends %v with %d of %d tokens", i, h.State(), h.Outputs(0), max(q.OutputTokens, 1))
		}
		arrival := q.Arrival.Seconds() / f.cfg.Speed
		res.Requests++
		res.InputTokens += int64(q.InputTokens)
		res.HitTokens += int64(h.Cached())
		res.Hits[i] = h.Cached()
		if f.away[i] {
			res.AwayHitTokens += int64(h.Cached())
		}
		waits = append(waits, f.start[i]-arrival)
		ttfts = append(ttfts, f.first[i]-arrival)
	}
	if res.InputTokens > 0 {
		res.HitRate = float64(res.HitTokens) / float64(res.InputTokens)
	}
	if f.repeats > 0 {
		n, servers := 0, 0
		for _, fam := range f.families {
			if fam.requests > 1 {
				n++
				servers += len(fam.servers)
			}
		}
		res.FamilyServers = float64(servers) / float64(n)
		res.FamilyMoves = float64(f.moves) / float64(f.repeats)
	}
	if res.Requests > 0 {
		res.Imbalance = float64(slices.Max(res.PerServer)) * float64(len(f.servers)) / float64(res.Requests)
		busy := 0.0
		for _, b := range res.PerServerBusy {
			busy += b
		}
		if busy > 0 {
			res.BusyImbalance = slices.Max(res.PerServerBusy) * float64(len(f.servers)) / busy
		}
		res.MeanWait, res.P90Wait = meanP90(waits)
		res.MeanTTFT, res.P90TTFT = meanP90(ttfts)
	}
	return nil
}

// meanP90 returns the mean and the 90th percentile (nearest rank) of xs,
// which it sorts.
func meanP90(xs []float64) (mean, p90 float64) {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	slices.Sort(xs)
	return sum / float64(len(xs)), xs[(len(xs)*9)/10]
}

// FleetHitBound is the hit rate of one server with an unbounded cache and
// no concurrency: each request hits the leading blocks of its prompt that
// any earlier request had, which no fleet or router can beat. A block
// size below 1 or a negative prompt is refused with an error wrapping
// ErrFleetInvalid.
func FleetHitBound(reqs []Request, blockSize int) (float64, error) {
	if blockSize < 1 {
		return 0, fmt.Errorf("%w: hit bound with blocks of %d tokens", ErrFleetInvalid, blockSize)
	}
	if i := slices.IndexFunc(reqs, func(q Request) bool { return q.InputTokens < 0 }); i >= 0 {
		return 0, fmt.Errorf("%w: request %d has %d prompt tokens", ErrFleetInvalid, i, reqs[i].InputTokens)
	}
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
		return 0, nil
	}
	return float64(hit) / float64(in), nil
}

// SharedPrefix returns a copy of reqs in which every request begins with
// the same n blocks of blockSize tokens (a common system prompt), its
// prompt n*blockSize tokens longer. The shared blocks get hash IDs -1 ..
// -n, which trace IDs (from 0) never use. A request without hash IDs (an
// Azure trace has only lengths) gets unique IDs for its own full blocks,
// so its prompt takes cache space without ever hitting. n = 0 only adds
// those IDs. Every prompt, prefix included, must fit MaxTraceTokens; a
// negative n or prompt length, or one beyond that, is refused with an
// error wrapping ErrFleetInvalid.
func SharedPrefix(reqs []Request, n, blockSize int) ([]Request, error) {
	if n < 0 || blockSize < 1 || blockSize > MaxTraceTokens || n > MaxTraceTokens/blockSize {
		return nil, fmt.Errorf("%w: shared prefix of %d blocks of %d tokens (want at most MaxTraceTokens=%d tokens)", ErrFleetInvalid, n, blockSize, MaxTraceTokens)
	}
	for i, q := range reqs {
		if q.InputTokens < 0 || q.InputTokens > MaxTraceTokens-n*blockSize {
			return nil, fmt.Errorf("%w: request %d has %d prompt tokens; with a shared prefix of %d tokens want [0, MaxTraceTokens=%d] in all", ErrFleetInvalid, i, q.InputTokens, n*blockSize, MaxTraceTokens)
		}
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
