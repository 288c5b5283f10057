package bench

import (
	"testing"

	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/internal/redistest"
	"github.com/pagedkv/pagedkv/sched"
)

// fleetTrace is the first part of the Mooncake trace: enough requests for
// prefixes to repeat, few enough for a fast test.
func fleetTrace() []Request { return MooncakeSynthetic()[:1000] }

func TestFleetReplayConservesRequests(t *testing.T) {
	reqs := fleetTrace()
	for _, r := range FleetRouters(1, 8) {
		res, err := RunFleet(reqs, FleetConfig{Speed: 2}, r)
		require.NoError(t, err, r.Name) // every manager checked, every request finished with its output
		assert.Equal(t, len(reqs), res.Requests+res.Rejected, r.Name)
		sum := 0
		for _, n := range res.PerServer {
			sum += n
		}
		assert.Equal(t, res.Requests, sum, r.Name)
		assert.GreaterOrEqual(t, res.Imbalance, 1.0, r.Name)
		assert.LessOrEqual(t, res.HitTokens, res.InputTokens, r.Name)
		assert.LessOrEqual(t, res.MeanWait, res.MeanTTFT, r.Name)
		assert.Positive(t, res.Steps, r.Name)
		if r.Prefix {
			assert.Equal(t, len(reqs), res.Lookups, r.Name)
		} else {
			assert.Zero(t, res.Lookups, r.Name)
		}
	}
}

// TestFleetChecksEveryStep replays a small pool that must preempt, with
// every manager checked after each of its steps.
func TestFleetChecksEveryStep(t *testing.T) {
	reqs := fleetTrace()[:150]
	preempted := 0
	for _, r := range FleetRouters(1, 8)[2:] {
		res, err := RunFleet(reqs, FleetConfig{Servers: 3, Blocks: 120, Speed: 8, Check: true}, r)
		require.NoError(t, err, r.Name)
		assert.Equal(t, len(reqs), res.Requests+res.Rejected, r.Name)
		t.Logf("%s: %d steps, %d preemptions, %d rejected", r.Name, res.Steps, res.Preemptions, res.Rejected)
		preempted += res.Preemptions
	}
	assert.Positive(t, preempted, "the pool is small enough to preempt")
}

func TestFleetIsDeterministic(t *testing.T) {
	reqs := fleetTrace()[:400]
	run := func() FleetResult {
		res, err := RunFleet(reqs, FleetConfig{Speed: 2}, FleetRouters(7, 8)[5])
		require.NoError(t, err)
		res.LookupTime, res.ApplyTime = 0, 0
		return res
	}
	assert.Equal(t, run(), run())
}

func TestStepModel(t *testing.T) {
	m := StepModel{Weights: 5 * time.Millisecond, Token: time.Millisecond, Pair: 1e3, KVRead: 1e4}
	st := &sched.Step{Scheduled: []sched.Scheduled{
		{Start: 0, NewTokens: 4, Prefill: true},  // 4 tokens, 8 pairs
		{Start: 10, NewTokens: 2, Prefill: true}, // 2 tokens, 22 pairs
		{Start: 99, NewTokens: 1},                // a decode reading 100 tokens
	}}
	// compute 7 ms + 30 us; memory 5 ms + 1 ms.
	assert.InDelta(t, 0.00703, m.Duration(st), 1e-12)
	st.Scheduled = st.Scheduled[2:]
	assert.InDelta(t, 0.006, m.Duration(st), 1e-12)
	m.Overhead = time.Millisecond
	assert.InDelta(t, 0.007, m.Duration(st), 1e-12)
	// 10 tokens in steps of 4: 4 + 4 + 2 tokens, pairs 8 + 24 + 18, each
	// step compute-bound at 3 ms a token.
	m.Token = 3 * time.Millisecond
	assert.InDelta(t, 3*0.001+0.030+50e-6, m.PrefillSeconds(0, 10, 4), 1e-12)
	require.NoError(t, DefaultStepModel.Validate())
	require.Error(t, StepModel{}.Validate())
	require.Error(t, StepModel{Token: 1, Pair: -1}.Validate())
}

func TestMooncakeHasherNamesTraceBlocks(t *testing.T) {
	for _, id := range []int64{0, 1, 1<<31 - 1, 1 << 31, 1<<62 + 5, -1, -1 << 40} {
		buf := promptOf(nil, Request{InputTokens: 9, HashIDs: []int64{id, 3}}, 4)
		var h mooncakeHasher
		assert.Equal(t, MooncakeHash(id), h.Sum(nil, buf[:4], nil), "id %d", id)
		assert.Equal(t, MooncakeHash(3), h.Sum(nil, buf[4:8], nil))
		for _, tok := range buf {
			assert.GreaterOrEqual(t, tok, int32(0))
		}
	}
	// A block without an ID is hashed with its parent.
	var h mooncakeHasher
	p := MooncakeHash(1)
	assert.NotEqual(t, h.Sum(&p, []int32{0, 0, 0, 0}, nil), h.Sum(nil, []int32{0, 0, 0, 0}, nil))
}

func TestFleetRejectsBadConfig(t *testing.T) {
	for _, c := range []FleetConfig{{Servers: -1}, {BlockSize: 3}, {Speed: -1}, {MaxBatchTokens: -2}, {Step: StepModel{Token: -1}}} {
		_, err := RunFleet(fleetTrace()[:2], c, FleetRouters(1, 8)[0])
		require.Error(t, err, "%+v", c)
	}
}

func TestFleetPrefixAwareBeatsRoundRobin(t *testing.T) {
	reqs := fleetTrace()
	routers := FleetRouters(1, 8)
	rr, err := RunFleet(reqs, FleetConfig{Speed: 2}, routers[1])
	require.NoError(t, err)
	pa, err := RunFleet(reqs, FleetConfig{Speed: 2}, routers[3])
	require.NoError(t, err)
	t.Logf("hit rate: round-robin %.3f, prefix-aware %.3f", rr.HitRate, pa.HitRate)
	assert.Greater(t, pa.HitRate, 2*rr.HitRate, "prefix-aware routing must at least double round-robin's hit rate")
	// Round-robin balances requests exactly.
	assert.InDelta(t, 1.0, rr.Imbalance, 0.01)
}

func TestFleetRedisRoutesLikeMemory(t *testing.T) {
	addr := redistest.Addr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	reqs := fleetTrace()[:400]
	for _, i := range []int{3, 4, 5, 6, 7} {
		mem, err := RunFleet(reqs, FleetConfig{Speed: 2}, FleetRouters(1, 8)[i])
		require.NoError(t, err)
		back, err := redisindex.New(c, redisindex.Config{Prefix: "pagedkv-bench-test"})
		require.NoError(t, err)
		require.NoError(t, back.Delete("fleet-test"))
		x, err := fleet.New(fleet.Config{Model: "fleet-test", MaxServers: 8, Backend: back})
		require.NoError(t, err)
		red, err := RunFleet(reqs, FleetConfig{Speed: 2, Index: x}, FleetRouters(1, 8)[i])
		require.NoError(t, err)
		assert.Equal(t, mem.Decisions, red.Decisions, "router %s", mem.Router)
		assert.Equal(t, mem.HitTokens, red.HitTokens)
	}
}

func TestFleetHitBound(t *testing.T) {
	reqs := []Request{
		{InputTokens: 1024, HashIDs: []int64{1, 2}},
		{InputTokens: 1536, HashIDs: []int64{1, 2, 3}},
		{InputTokens: 1600, HashIDs: []int64{1, 4, 2, 5}}, // stops at 4; the partial fourth block never counts
		{InputTokens: 512, HashIDs: []int64{9}},
	}
	// Hits: 0, 2 blocks, 1 block (2 was seen, but after a miss), 0.
	bound, err := FleetHitBound(reqs, 512)
	require.NoError(t, err)
	assert.InDelta(t, float64(3*512)/float64(1024+1536+1600+512), bound, 1e-12)
	res, err := RunFleet(fleetTrace(), FleetConfig{Speed: 2}, FleetRouters(1, 8)[3])
	require.NoError(t, err)
	bound, err = FleetHitBound(fleetTrace(), MooncakeBlockSize)
	require.NoError(t, err)
	assert.LessOrEqual(t, res.HitRate, bound)
}

func TestSharedPrefix(t *testing.T) {
	reqs := []Request{
		{InputTokens: 1024, HashIDs: []int64{1, 2}},
		{InputTokens: 1100}, // no IDs (Azure): unique ones for its 2 full blocks
		{InputTokens: 600},
	}
	out, err := SharedPrefix(reqs, 2, 512)
	require.NoError(t, err)
	assert.Equal(t, []int64{-1, -2, 1, 2}, out[0].HashIDs)
	assert.Equal(t, 1024+1024, out[0].InputTokens)
	assert.Equal(t, []int64{-1, -2, -3, -4}, out[1].HashIDs)
	assert.Equal(t, []int64{-1, -2, -5}, out[2].HashIDs)
	assert.Equal(t, []int64{1, 2}, reqs[0].HashIDs, "the input is not modified")
	_, err = SharedPrefix(reqs, -1, 512)
	require.Error(t, err)
}

// TestFleetCostAwareBalancesASharedPrefix: when every request shares its
// first block, prefix-aware routing sends everything to one server; the
// cost-aware router keeps the balance of least-loaded and the hits.
func TestFleetCostAwareBalancesASharedPrefix(t *testing.T) {
	reqs, err := SharedPrefix(fleetTrace(), 1, MooncakeBlockSize)
	require.NoError(t, err)
	run := func(name string) FleetResult {
		for _, r := range FleetRouters(1, 8) {
			if r.Name == name {
				res, err := RunFleet(reqs, FleetConfig{Speed: 2}, r)
				require.NoError(t, err)
				return res
			}
		}
		t.Fatalf("no router %q", name)
		return FleetResult{}
	}
	pa, ca, rr, ll := run("prefix-aware"), run("cost-aware"), run("round-robin"), run("least-loaded")
	t.Logf("imbalance: prefix-aware %.2f, cost-aware %.2f, least-loaded %.2f; hit rate: cost-aware %.3f, round-robin %.3f; p90 wait: cost-aware %.2f, least-loaded %.2f",
		pa.Imbalance, ca.Imbalance, ll.Imbalance, ca.HitRate, rr.HitRate, ca.P90Wait, ll.P90Wait)
	// Every request scores the shared block on the first server that
	// cached it, and prefix-aware routing follows the score alone.
	assert.InDelta(t, 8.0, pa.Imbalance, 1e-9, "prefix-aware sends everything to one server")
	// The cost router sees the queue that builds there: loose bounds, a
	// property and not the study's targets.
	assert.Less(t, ca.Imbalance, 1.25)
	assert.Greater(t, ca.HitRate, 2*rr.HitRate)
	assert.Less(t, ca.P90Wait, pa.P90Wait/10)
}

// BenchmarkFleet replays the first 1,000 requests of the Mooncake trace
// behind each router and reports the study's figures with the replay's
// speed.
func BenchmarkFleet(b *testing.B) {
	reqs := fleetTrace()
	for _, i := range []int{2, 3, 5} {
		name := FleetRouters(1, 8)[i].Name
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var res FleetResult
			for b.Loop() {
				var err error
				if res, err = RunFleet(reqs, FleetConfig{Speed: 2}, FleetRouters(1, 8)[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(100*res.HitRate, "hit%")
			b.ReportMetric(res.Imbalance, "imbalance")
			b.ReportMetric(res.P90Wait, "p90-wait-s")
			b.ReportMetric(float64(res.Steps), "steps")
		})
	}
}

// TestFleetPendingFollowsABurst: two servers are busy with a step when a
// request with a new prefix arrives, then a second with the same prefix.
// The index knows nothing of the prefix yet, so prefix-aware routing sends
// the second to the less loaded server, where it misses; with a Pending
// record it follows the first and finds the prefix cached when admitted.
func TestFleetPendingFollowsABurst(t *testing.T) {
	long := func(id int64) []int64 {
		ids := make([]int64, 32)
		for i := range ids {
			ids[i] = id*1000 + int64(i)
		}
		return ids
	}
	shared := []int64{900, 901, 902, 903}
	reqs := []Request{
		{Arrival: 0, InputTokens: 32 * 512, OutputTokens: 4, HashIDs: long(1)},
		{Arrival: time.Millisecond, InputTokens: 32 * 512, OutputTokens: 4, HashIDs: long(2)},
		{Arrival: 10 * time.Millisecond, InputTokens: 4*512 + 100, OutputTokens: 4, HashIDs: shared},
		{Arrival: 20 * time.Millisecond, InputTokens: 4*512 + 100, OutputTokens: 4, HashIDs: shared},
	}
	hits := map[bool]int64{}
	for _, pending := range []bool{false, true} {
		r := FleetRouter{Name: "prefix-aware", Router: fleet.PrefixAware{}, Prefix: true, Pending: pending}
		res, err := RunFleet(reqs, FleetConfig{Servers: 2, Speed: 1}, r)
		require.NoError(t, err)
		hits[pending] = res.HitTokens
		if pending {
			assert.Equal(t, res.Decisions[2], res.Decisions[3], "the second request follows the first")
		} else {
			assert.NotEqual(t, res.Decisions[2], res.Decisions[3], "without the record the index knows nothing yet")
		}
	}
	assert.Zero(t, hits[false])
	assert.Equal(t, int64(4*512), hits[true])
}

// TestFleetPendingBridgesTheEventDelay: idle servers, but the router sees
// their events 50 ms late; the second request of a burst arrives before
// the first one's blocks are reported.
func TestFleetPendingBridgesTheEventDelay(t *testing.T) {
	shared := []int64{900, 901, 902, 903}
	reqs := []Request{
		{Arrival: 0, InputTokens: 4*512 + 100, OutputTokens: 4, HashIDs: shared},
		{Arrival: 10 * time.Millisecond, InputTokens: 4*512 + 100, OutputTokens: 4, HashIDs: shared},
		{Arrival: time.Second, InputTokens: 4*512 + 100, OutputTokens: 4, HashIDs: shared},
	}
	for _, pending := range []bool{false, true} {
		r := FleetRouter{Name: "cost-aware", Router: fleet.CostAware{BlockSize: 512}, Prefix: true, Pending: pending}
		res, err := RunFleet(reqs, FleetConfig{Servers: 2, Speed: 1, EventDelay: 50 * time.Millisecond}, r)
		require.NoError(t, err)
		want := int64(4 * 512) // the third request, once the events are in
		if pending {
			want *= 2
		}
		assert.Equal(t, want, res.HitTokens, "pending %v: decisions %v", pending, res.Decisions)
	}
	_, err := RunFleet(reqs, FleetConfig{EventDelay: -1}, FleetRouters(1, 8)[0])
	assert.Error(t, err)
}
