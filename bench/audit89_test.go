package bench

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// a89Model times every step at exactly 50 ms whatever it computes (the
// weights' read alone), so that a step ends at the instant of an arrival
// or of a delayed batch of events 50 ms after it began.
var a89Model = StepModel{Weights: 50 * time.Millisecond}

// TestAudit89StepModelRefusals: a model with an infinite cost cannot time
// a step, KVRead's as much as Pair's.
func TestAudit89StepModelRefusals(t *testing.T) {
	for _, m := range []StepModel{
		{Token: 1, KVRead: math.Inf(1)},
		{Token: 1, Pair: math.Inf(1)},
		{Token: 1, KVRead: math.NaN()},
		{Pair: 1, KVRead: 1}, // costs per pair and read, but no step has any floor
	} {
		require.ErrorIs(t, m.Validate(), ErrFleetInvalid, "%+v", m)
	}
	require.NoError(t, StepModel{Weights: 1}.Validate())
}

// TestAudit89PrefillWithoutBudget: a budget below 1 computes the whole
// prompt in one step, one overhead (the pairs of 10 tokens after 6
// cached: 10 x 22 / 2), not in ten steps of one token and ten overheads.
func TestAudit89PrefillWithoutBudget(t *testing.T) {
	m := StepModel{Overhead: time.Millisecond, Token: time.Millisecond, Pair: 1e3}
	want := 0.001 + 0.010 + 110*1e-6
	assert.InDelta(t, want, m.PrefillSeconds(6, 10, 0), 1e-12)
	assert.InDelta(t, want, m.PrefillSeconds(6, 10, -3), 1e-12)
	assert.InDelta(t, want, m.PrefillSeconds(6, 10, 10), 1e-12)
	assert.Zero(t, m.PrefillSeconds(6, 0, 0))
}

// a89Run replays reqs behind r with cfg, every manager checked after each
// step.
func a89Run(t *testing.T, reqs []Request, cfg FleetConfig, r FleetRouter) FleetResult {
	t.Helper()
	cfg.Check = true
	res, err := RunFleet(reqs, cfg, r)
	require.NoError(t, err)
	return res
}

// TestAudit89ConfigBounds: the configuration's bounds, each side of its
// edge where a replay is cheap: the state pages below the pool, at most
// 4,096 servers, blocks of 4 tokens, a finite speed, arrivals in order
// (the second request's too) and a prompt of MaxTraceTokens (accepted; it
// fits no pool of 8 blocks).
func TestAudit89ConfigBounds(t *testing.T) {
	one := []Request{{InputTokens: 9, OutputTokens: 1}}
	rr := FleetRouter{Name: "rr", Router: &RoundRobin{}}
	refused := map[string]FleetConfig{
		"state pages = blocks": {Blocks: 8, StatePages: 8},
		"4097 servers":         {Servers: 1<<12 + 1, Blocks: 4},
		"block size 3":         {BlockSize: 3},
		"infinite speed":       {Speed: math.Inf(1)},
	}
	for name, cfg := range refused {
		_, err := RunFleet(one, cfg, rr)
		require.ErrorIs(t, err, ErrFleetInvalid, name)
	}
	accepted := map[string]FleetConfig{
		"state pages = blocks-1": {Blocks: 8, StatePages: 7},
		"block size 4":           {BlockSize: 4, Blocks: 8},
	}
	for name, cfg := range accepted {
		res, err := RunFleet(one, cfg, rr)
		require.NoError(t, err, name)
		assert.Equal(t, 1, res.Requests, name)
	}

	// 4,096 servers: the configuration alone, as a replay would build
	// 4,096 managers (seconds).
	_, err := FleetConfig{Servers: 1 << 12}.withDefaults()
	require.NoError(t, err, "4096 servers")

	_, err = RunFleet([]Request{{Arrival: time.Second, InputTokens: 9}, {InputTokens: 9}}, FleetConfig{}, rr)
	require.ErrorIs(t, err, ErrFleetInvalid, "the second request arrives before the first")

	res, err := RunFleet([]Request{{InputTokens: MaxTraceTokens, OutputTokens: 1}}, FleetConfig{Servers: 1, Blocks: 8}, rr)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Rejected)
	_, err = RunFleet([]Request{{InputTokens: MaxTraceTokens + 1}}, FleetConfig{Servers: 1, Blocks: 8}, rr)
	require.ErrorIs(t, err, ErrFleetInvalid)
}

// TestAudit89CostAwareRoutersDrawAlike: the two cost-aware routers of
// FleetRouters draw the same numbers, each from its own generator, however
// the other's draws advance.
func TestAudit89CostAwareRoutersDrawAlike(t *testing.T) {
	rs := FleetRouters(3, 8)
	a, b := rs[5].Router.(fleet.CostAware), rs[7].Router.(fleet.CostAware)
	var da []float64
	for range 5 {
		da = append(da, a.Rand())
	}
	for i := range 5 {
		assert.Equal(t, da[i], b.Rand(), "draw %d", i)
	}
}

// TestAudit89IgnoringAffinity: both prefix routers read the exact hit
// alone, and other routers are returned as they are.
func TestAudit89IgnoringAffinity(t *testing.T) {
	for _, r := range FleetRouters(1, 8) {
		got := r.IgnoringAffinity()
		assert.Equal(t, r.Name, got.Name)
		switch rt := got.Router.(type) {
		case fleet.PrefixAware:
			assert.True(t, rt.IgnoreAffinity, r.Name)
		case fleet.CostAware:
			assert.True(t, rt.IgnoreAffinity, r.Name)
			assert.Equal(t, MooncakeBlockSize, rt.BlockSize, r.Name)
		default:
			assert.Equal(t, r.Router, got.Router, r.Name)
		}
	}
}

// TestAudit89RatesWithoutTime: a result without timed work has no rate.
func TestAudit89RatesWithoutTime(t *testing.T) {
	r := FleetResult{Lookups: 3, BlockEvents: 5}
	assert.Zero(t, r.LookupsPerSecond())
	assert.Zero(t, r.BlockEventsPerSecond())
	r.LookupTime, r.ApplyTime = time.Second/2, 2*time.Second
	assert.InDelta(t, 6.0, r.LookupsPerSecond(), 1e-12)
	assert.InDelta(t, 2.5, r.BlockEventsPerSecond(), 1e-12)
}

// TestAudit89HasherWithExtraBytes: a block with extra hash input (an
// adapter's or a media item's) is not the trace's block of the same ID.
func TestAudit89HasherWithExtraBytes(t *testing.T) {
	buf := promptOf(nil, Request{InputTokens: 8, HashIDs: []int64{42, 43}}, 4)
	var h mooncakeHasher
	assert.Equal(t, MooncakeHash(42), h.Sum(nil, buf[:4], nil))
	assert.NotEqual(t, MooncakeHash(42), h.Sum(nil, buf[:4], []byte("lora")))
}

// TestAudit89TimesOfOneRequest: one request on an idle fleet waits for
// nothing, has its first token at the end of its prefill step and ends the
// replay at the end of its last step: 3 output tokens, 3 steps of 50 ms.
func TestAudit89TimesOfOneRequest(t *testing.T) {
	reqs := []Request{{Arrival: time.Second, InputTokens: 100, OutputTokens: 3}}
	res := a89Run(t, reqs, FleetConfig{Servers: 2, Blocks: 16, Step: a89Model}, FleetRouter{Name: "ll", Router: fleet.LeastLoaded{}})
	assert.Equal(t, 3, res.Steps)
	assert.Zero(t, res.MeanWait)
	assert.InDelta(t, 0.05, res.MeanTTFT, 1e-9)
	assert.InDelta(t, 0.05, res.P90TTFT, 1e-9)
	assert.InDelta(t, 1.15, res.Makespan, 1e-9)
}

// TestAudit89MeanP90: the 90th percentile by nearest rank, of ten values
// the largest.
func TestAudit89MeanP90(t *testing.T) {
	mean, p90 := meanP90([]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1})
	assert.InDelta(t, 5.5, mean, 1e-12)
	assert.Equal(t, 10.0, p90)
	mean, p90 = meanP90([]float64{3})
	assert.Equal(t, 3.0, mean)
	assert.Equal(t, 3.0, p90)
}

// TestAudit89StepEndsBeforeAnArrivalAtItsInstant: a request whose only
// step ends at the instant the next request arrives has finished when the
// router sees the fleet, so least-loaded finds both servers idle and takes
// the first; with the step not yet ended it would take the second.
func TestAudit89StepEndsBeforeAnArrivalAtItsInstant(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, InputTokens: 100, OutputTokens: 1},
		{Arrival: 50 * time.Millisecond, InputTokens: 100, OutputTokens: 1},
	}
	res := a89Run(t, reqs, FleetConfig{Servers: 2, Blocks: 16, Step: a89Model}, FleetRouter{Name: "ll", Router: fleet.LeastLoaded{}})
	assert.Equal(t, []int{0, 0}, res.Decisions)
}

// TestAudit89DelayedEventsDueAtAnArrival: the events of the first
// request's step reach the router 50 ms after it began, the instant the
// step ends and the second request, of the same prefix, arrives: the
// router sees them first and sends it to the server holding the prefix
// (busy with the first request's decodes), where it hits; the other
// server, idle, would miss.
func TestAudit89DelayedEventsDueAtAnArrival(t *testing.T) {
	ids := []int64{11, 12, 13, 14}
	reqs := []Request{
		{Arrival: 0, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: ids},
		{Arrival: 50 * time.Millisecond, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: ids},
	}
	r := FleetRouter{Name: "prefix-aware", Router: fleet.PrefixAware{}, Prefix: true}
	res := a89Run(t, reqs, FleetConfig{Servers: 2, Blocks: 64, Step: a89Model, EventDelay: 50 * time.Millisecond}, r)
	assert.Equal(t, []int{0, 0}, res.Decisions)
	assert.Equal(t, []int{0, 4 * MooncakeBlockSize}, res.Hits)
}

// TestAudit89CostAwareTiesGoToTheLessRouted: requests that hit nowhere,
// each on an idle fleet, cost the same everywhere; cost-aware without
// Rand sends each to the server routed the fewest so far, in turn.
func TestAudit89CostAwareTiesGoToTheLessRouted(t *testing.T) {
	var reqs []Request
	for i := range 6 {
		reqs = append(reqs, Request{Arrival: time.Duration(i) * 10 * time.Second, InputTokens: 100, OutputTokens: 1})
	}
	r := FleetRouter{Name: "cost-aware", Router: fleet.CostAware{BlockSize: MooncakeBlockSize}, Prefix: true}
	res := a89Run(t, reqs, FleetConfig{Servers: 3, Blocks: 16}, r)
	assert.Equal(t, []int{0, 1, 2, 0, 1, 2}, res.Decisions)
}

// TestAudit89LoadCountsWaitingRequests: a server's load is its running
// and its waiting requests. Long prefills keep both servers busy: the
// first request runs on server 0, the second on server 1, the third waits
// on server 0 (a tie of one each), and the fourth goes to server 1, with
// one request against server 0's two.
func TestAudit89LoadCountsWaitingRequests(t *testing.T) {
	var reqs []Request
	for i := range 4 {
		reqs = append(reqs, Request{Arrival: time.Duration(i) * time.Millisecond, InputTokens: 4096, OutputTokens: 1})
	}
	var loads []sched.Load
	cfg := FleetConfig{Servers: 2, Blocks: 64}
	cfg.probe = func(k int, l sched.Load, _ sched.Stats) {
		if k == 0 {
			loads = append(loads, l)
		}
	}
	res := a89Run(t, reqs, cfg, FleetRouter{Name: "ll", Router: fleet.LeastLoaded{}})
	assert.Equal(t, []int{0, 1, 0, 1}, res.Decisions)
	require.Len(t, loads, 4)
	assert.Equal(t, sched.Load{Running: 1, Waiting: 1}, sched.Load{Running: loads[3].Running, Waiting: loads[3].Waiting})
}

// a89StateLayout is a model of one full-attention group and one State
// group, blocks of bs tokens.
func a89StateLayout(t *testing.T, bs int) fleet.Layout {
	t.Helper()
	l, err := fleet.ParseLayout(fmt.Sprintf("b%d full state", bs))
	require.NoError(t, err)
	return l
}

// TestAudit89StatePagesTakeThePool: each State group's pages are
// StatePages blocks a sequence: a prompt of 9 tokens in blocks of 4 (3
// blocks) and a state of 2 pages do not fit a pool of 5 blocks (the null
// block included), with one page they do.
func TestAudit89StatePagesTakeThePool(t *testing.T) {
	one := []Request{{InputTokens: 9, OutputTokens: 1}}
	rr := FleetRouter{Name: "rr", Router: &RoundRobin{}}
	for pages, served := range map[int]int{1: 1, 2: 0} {
		res := a89Run(t, one, FleetConfig{Servers: 1, Blocks: 5, BlockSize: 4, Layout: a89StateLayout(t, 4), StatePages: pages}, rr)
		assert.Equal(t, served, res.Requests, "%d pages", pages)
		assert.Equal(t, 1-served, res.Rejected, "%d pages", pages)
	}
}

// TestAudit89StateCheckpointsCounted: the second request's lookup stops
// at a miss after the first's 4 blocks, its branch point, where its step
// writes a checkpoint; the third, of the same 4 blocks, hits them. The
// replay counts that checkpoint (sched's Schedule takes them from the
// manager into Step.Checkpoints, where the count must read them: the
// manager has none left).
func TestAudit89StateCheckpointsCounted(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, InputTokens: 6*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: []int64{11, 12, 13, 14, 15, 16}},
		{Arrival: time.Second, InputTokens: 5*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: []int64{11, 12, 13, 14, 21}},
		{Arrival: 2 * time.Second, InputTokens: 5*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: []int64{11, 12, 13, 14, 22}},
	}
	r := FleetRouter{Name: "prefix-aware", Router: fleet.PrefixAware{}, Prefix: true}
	res := a89Run(t, reqs, FleetConfig{Servers: 2, Blocks: 64, Step: a89Model, Layout: a89StateLayout(t, MooncakeBlockSize)}, r)
	assert.Equal(t, []int{0, 0, 0}, res.Decisions)
	assert.Equal(t, []int{0, 0, 4 * MooncakeBlockSize}, res.Hits)
	assert.Equal(t, 1, res.Checkpoints)
}

// TestAudit89ClaimOverReportsApart: a state fleet, the index blind to the
// layout and told of the first request's blocks 50 ms late. The second
// request, the first's first 4 blocks, arrives before then: server 0's
// score is its Pending claim alone, 4 blocks, and it hits none (no
// checkpoint there). The claim over-reports by 4 blocks; the index's own
// score, 0, does not.
func TestAudit89ClaimOverReportsApart(t *testing.T) {
	ids := []int64{11, 12, 13, 14, 15, 16}
	reqs := []Request{
		{Arrival: 0, InputTokens: 6*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: ids},
		{Arrival: 10 * time.Millisecond, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: ids[:4]},
	}
	r := FleetRouter{Name: "prefix-aware, pending", Router: fleet.PrefixAware{}, Prefix: true, Pending: true}
	cfg := FleetConfig{Servers: 2, Blocks: 64, Step: a89Model, Layout: a89StateLayout(t, MooncakeBlockSize), BlindIndex: true, EventDelay: 50 * time.Millisecond}
	res := a89Run(t, reqs, cfg, r)
	assert.Equal(t, []int{0, 0}, res.Decisions)
	assert.Equal(t, []int{0, 0}, res.Hits)
	assert.Zero(t, res.OverReports)
	assert.Zero(t, res.OverReportTokens)
	assert.Equal(t, 1, res.ClaimOverReports)
	assert.EqualValues(t, 4*MooncakeBlockSize, res.ClaimOverReportTokens)
}

// TestAudit89DelayedEventsKeepTheirBatches: with events 100 ms late, the
// second request's blocks are drained (into the same buffer) before the
// first request's batch reaches the index; each batch must arrive as it
// was, so that the index ends holding both prefixes on the one server,
// none partial.
func TestAudit89DelayedEventsKeepTheirBatches(t *testing.T) {
	a, b := []int64{11, 12, 13, 14}, []int64{21, 22, 23, 24}
	reqs := []Request{
		{Arrival: 0, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: a},
		{Arrival: 10 * time.Millisecond, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 4, HashIDs: b},
	}
	x, err := fleet.New(fleet.Config{MaxServers: 1})
	require.NoError(t, err)
	cfg := FleetConfig{Servers: 1, Blocks: 64, Step: a89Model, EventDelay: 100 * time.Millisecond, Index: x}
	res := a89Run(t, reqs, cfg, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	assert.Zero(t, res.PartialServers)
	assert.EqualValues(t, 8, res.BlockEvents)
	for _, ids := range [][]int64{a, b} {
		var hs []paged.Hash
		for _, id := range ids {
			hs = append(hs, MooncakeHash(id))
		}
		sc, err := x.Lookup(hs, nil)
		require.NoError(t, err)
		require.Len(t, sc, 1)
		assert.Equal(t, 4, sc[0].Blocks, "blocks %v", ids)
	}
}

// TestAudit89ClaimsEndWithTheEvents: the Pending record is told the
// events the index is. The third request's prefix was routed to the one
// server by the first, and half of it evicted by the second (a pool of
// 11 usable blocks): its claims ended when the blocks were reported, so
// the score, claims included, is the 2 blocks it hits, not the 4 a
// claim still standing would promise.
func TestAudit89ClaimsEndWithTheEvents(t *testing.T) {
	p := []int64{11, 12, 13, 14}
	reqs := []Request{
		{Arrival: 0, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: p},
		{Arrival: time.Second, InputTokens: 8*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: []int64{21, 22, 23, 24, 25, 26, 27, 28}},
		{Arrival: 2 * time.Second, InputTokens: 4*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: p},
	}
	r := FleetRouter{Name: "prefix-aware, pending", Router: fleet.PrefixAware{}, Prefix: true, Pending: true}
	res := a89Run(t, reqs, FleetConfig{Servers: 1, Blocks: 12, Step: a89Model}, r)
	assert.Equal(t, []int{0, 0, 2 * MooncakeBlockSize}, res.Hits)
	assert.Zero(t, res.ClaimOverReports)
	assert.Zero(t, res.ClaimOverReportTokens)
}
