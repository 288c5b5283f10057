package bench

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/internal/redistest"
	"github.com/pagedkv/pagedkv/paged"
)

// fleetRouter returns the study's router called name.
func fleetRouter(t *testing.T, name string) FleetRouter {
	t.Helper()
	for _, r := range FleetRouters(1, 8) {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no router %q", name)
	return FleetRouter{}
}

// A prompt of whole blocks is hit for all its blocks but the last (the
// server computes its last token), and the lookup asks for no more: the
// index scores the server that served it 3 blocks of the same 4-block
// prompt, what its manager then gives. Passing every full block (the
// study before) scored 4 and counted an over-report.
func TestFleetLookupCoversTheBlocksAHitCan(t *testing.T) {
	ids := []int64{7, 8, 9, 10}
	reqs := []Request{
		{Arrival: 0, InputTokens: 4 * MooncakeBlockSize, OutputTokens: 2, HashIDs: ids},
		{Arrival: 100 * time.Second, InputTokens: 4 * MooncakeBlockSize, OutputTokens: 2, HashIDs: ids},
	}
	for _, name := range []string{"prefix-aware", "cost-aware"} {
		res, err := RunFleet(reqs, FleetConfig{Servers: 2, Blocks: 64, Check: true}, fleetRouter(t, name))
		require.NoError(t, err, name)
		assert.Equal(t, res.Decisions[0], res.Decisions[1], name)
		assert.EqualValues(t, 3*MooncakeBlockSize, res.HitTokens, name)
		assert.Zero(t, res.OverReports, name)
		assert.Zero(t, res.OverReportTokens, name)
	}
}

// With the layout in the index, a hybrid server is never scored above
// the hit its manager gives at the request's first admission; scored by
// group 0's run (the index blind to the layout), the same replay is, on
// the same trace and seed. The pool is large enough that nothing is
// evicted between routing and admission, the other way a score can
// exceed the hit (even for one full-attention group): 8 x 8,192 blocks,
// the pool with which one full-attention group reaches the hit rate of
// one unbounded cache on this trace (docs/fleet.md).
func TestFleetLayoutAwareScoringNeverOverReports(t *testing.T) {
	for text, n := range map[string]int{"b512 full window:128": 3993, "b512 full state": 1200} {
		// The window's blocks are freed as sequences pass them, and only
		// the whole trace fills the pool enough to evict some.
		reqs := MooncakeSynthetic()[:n]
		l, err := fleet.ParseLayout(text)
		require.NoError(t, err)
		for _, name := range []string{"prefix-aware", "cost-aware"} {
			cfg := FleetConfig{Blocks: 8192, Speed: 2, Layout: l}
			aware, err := RunFleet(reqs, cfg, fleetRouter(t, name))
			require.NoError(t, err, "%s %s", text, name)
			assert.Zero(t, aware.OverReports, "%s %s: layout-aware scores above the hit", text, name)
			assert.Zero(t, aware.OverReportTokens, "%s %s", text, name)

			cfg.BlindIndex = true
			blind, err := RunFleet(reqs, cfg, fleetRouter(t, name))
			require.NoError(t, err, "%s %s", text, name)
			assert.Positive(t, blind.OverReports, "%s %s: group 0's run never over-reported", text, name)
			assert.GreaterOrEqual(t, blind.OverReportTokens, int64(blind.OverReports), "%s %s", text, name)
			t.Logf("%s %s: hit rate %.3f aware, %.3f blind; over-reports 0 aware, %d blind (%d tokens); checkpoints %d, %d",
				text, name, aware.HitRate, blind.HitRate, blind.OverReports, blind.OverReportTokens, aware.Checkpoints, blind.Checkpoints)
		}
	}
}

// A layout of one full-attention group is the plain study: the same
// decisions and hits as no layout at all, the index told or not.
func TestFleetFullLayoutIsThePlainStudy(t *testing.T) {
	reqs := MooncakeSynthetic()[:300]
	l, err := fleet.ParseLayout("b512 full")
	require.NoError(t, err)
	r := fleetRouter(t, "cost-aware")
	plain, err := RunFleet(reqs, FleetConfig{Speed: 2}, r)
	require.NoError(t, err)
	for _, blind := range []bool{false, true} {
		r := fleetRouter(t, "cost-aware")
		res, err := RunFleet(reqs, FleetConfig{Speed: 2, Layout: l, BlindIndex: blind}, r)
		require.NoError(t, err)
		assert.Equal(t, plain.Decisions, res.Decisions, "blind %v", blind)
		assert.Equal(t, plain.HitTokens, res.HitTokens, "blind %v", blind)
		assert.Equal(t, plain.OverReports, res.OverReports, "blind %v", blind)
		assert.Zero(t, res.Checkpoints)
	}
}

// A layout the fleet cannot use is refused before any server registers.
func TestFleetRefusesBadLayouts(t *testing.T) {
	reqs := MooncakeSynthetic()[:10]
	cases := map[string]FleetConfig{
		"other block size": {Layout: fleet.Layout{BlockSize: 16, Groups: []paged.Group{{Kind: paged.FullAttention}}}},
		"invalid window":   {Layout: fleet.Layout{BlockSize: MooncakeBlockSize, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow}}}},
		"state pages":      {Blocks: 64, StatePages: 64},
		"negative pages":   {StatePages: -1},
	}
	for name, cfg := range cases {
		x, err := fleet.New(fleet.Config{MaxServers: 8})
		require.NoError(t, err)
		cfg.Index = x
		_, err = RunFleet(reqs, cfg, fleetRouter(t, "prefix-aware"))
		require.ErrorIs(t, err, ErrFleetInvalid, name)
		if name == "invalid window" {
			assert.True(t, errors.Is(err, fleet.ErrInvalid), "%s: %v", name, err)
		}
		st, err := x.Servers(nil)
		require.NoError(t, err)
		assert.Empty(t, st, "%s: servers registered", name)
	}
}

// On Redis the layouts are kept in the backend: hybrid servers are scored
// and routed exactly as by the in-memory index, told their layout or not.
func TestFleetHybridRedisRoutesLikeMemory(t *testing.T) {
	addr := redistest.Addr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	reqs := MooncakeSynthetic()[:400]
	for _, text := range []string{"b512 full window:128", "b512 full state"} {
		l, err := fleet.ParseLayout(text)
		require.NoError(t, err)
		for _, blind := range []bool{false, true} {
			for _, name := range []string{"prefix-aware", "cost-aware, pending"} {
				cfg := FleetConfig{Speed: 2, Layout: l, BlindIndex: blind}
				mem, err := RunFleet(reqs, cfg, fleetRouter(t, name))
				require.NoError(t, err)
				back, err := redisindex.New(c, redisindex.Config{Prefix: "pagedkv-bench-test"})
				require.NoError(t, err)
				require.NoError(t, back.Delete("fleet-hybrid-test"))
				cfg.Index, err = fleet.New(fleet.Config{Model: "fleet-hybrid-test", MaxServers: 8, Backend: back})
				require.NoError(t, err)
				red, err := RunFleet(reqs, cfg, fleetRouter(t, name))
				require.NoError(t, err)
				assert.Equal(t, mem.Decisions, red.Decisions, "%s blind %v %s", text, blind, name)
				assert.Equal(t, mem.HitTokens, red.HitTokens, "%s blind %v %s", text, blind, name)
				assert.Equal(t, mem.OverReports, red.OverReports, "%s blind %v %s", text, blind, name)
			}
		}
	}
}

// The study's diagnostics: a family (requests sharing their first
// block) sent to two servers, one of its requests away from the server
// holding its blocks; a family of one request is not counted.
func TestFleetRecordsFamilySpread(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, InputTokens: 3*MooncakeBlockSize + 1, OutputTokens: 1, HashIDs: []int64{1, 2, 3}},
		{Arrival: 10 * time.Second, InputTokens: 3*MooncakeBlockSize + 1, OutputTokens: 1, HashIDs: []int64{1, 2, 4}},
		{Arrival: 20 * time.Second, InputTokens: 3*MooncakeBlockSize + 1, OutputTokens: 1, HashIDs: []int64{1, 2, 5}},
		{Arrival: 30 * time.Second, InputTokens: 3*MooncakeBlockSize + 1, OutputTokens: 1, HashIDs: []int64{9, 8, 7}},
	}
	res, err := RunFleet(reqs, FleetConfig{Servers: 2, Blocks: 64}, FleetRouter{Name: "rr", Router: &RoundRobin{}, Prefix: true})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 0, 1}, res.Decisions)
	assert.Equal(t, 1, res.AwayRoutes, "the second request left the server holding 2 of its blocks")
	assert.Zero(t, res.AwayNoHit, "server 0 could hit them")
	assert.Zero(t, res.AwayHitTokens)
	assert.Equal(t, 2*MooncakeBlockSize, res.Hits[2], "the third found them on server 0")
	assert.InDelta(t, 2.0, res.FamilyServers, 1e-9)
	assert.InDelta(t, 0.5, res.FamilyMoves, 1e-9)
}

// Routers reading the exact hit alone send a state fleet's requests away
// from the servers holding their family when no server can hit them
// (the cause of their low hit rate, docs/fleet.md); with the affinity
// gain prefix-aware sends none, cost-aware fewer (it weighs the gain
// against load), and the hit rate is higher. The blind index's is
// logged beside them.
func TestFleetAffinityKeepsFamiliesWhereExactScoresScatterThem(t *testing.T) {
	reqs := MooncakeSynthetic()[:1200]
	l, err := fleet.ParseLayout("b512 full state")
	require.NoError(t, err)
	for _, name := range []string{"prefix-aware", "cost-aware"} {
		cfg := FleetConfig{Speed: 2, Layout: l}
		aware, err := RunFleet(reqs, cfg, fleetRouter(t, name))
		require.NoError(t, err)
		exact, err := RunFleet(reqs, cfg, fleetRouter(t, name).IgnoringAffinity())
		require.NoError(t, err)
		cfg.BlindIndex = true
		blind, err := RunFleet(reqs, cfg, fleetRouter(t, name))
		require.NoError(t, err)
		assert.Positive(t, exact.AwayNoHit, name)
		if name == "prefix-aware" {
			assert.Zero(t, aware.AwayNoHit, "%s: a request no server can hit goes where its family is", name)
		}
		assert.Less(t, aware.AwayNoHit, exact.AwayNoHit, name)
		assert.Greater(t, aware.HitRate, exact.HitRate, name)
		assert.Less(t, aware.FamilyServers, exact.FamilyServers, name)
		t.Logf("%s: hit rate %.4f aware, %.4f exact, %.4f blind; away (no hit) %d (%d), %d (%d), %d; servers per family %.2f, %.2f, %.2f",
			name, aware.HitRate, exact.HitRate, blind.HitRate, aware.AwayRoutes, aware.AwayNoHit, exact.AwayRoutes, exact.AwayNoHit, blind.AwayRoutes,
			aware.FamilyServers, exact.FamilyServers, blind.FamilyServers)
	}
}
