package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// a99FleetJSON runs kvbench fleet with -json (and without Redis unless
// args name it) and returns its rows.
func a99FleetJSON(t *testing.T, args ...string) []fleetRow {
	t.Helper()
	var out, errb bytes.Buffer
	require.NoError(t, runFleet(append([]string{"-redis", "", "-json"}, args...), &out, &errb), errb.String())
	return a99Rows(t, &out)
}

func a99Rows(t *testing.T, out *bytes.Buffer) []fleetRow {
	t.Helper()
	var rows []fleetRow
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r fleetRow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		rows = append(rows, r)
	}
	return rows
}

// TestAudit99FleetFlagBounds: each of fleet's bounds refuses the value
// just outside it with a usage error naming the flag, before any replay.
func TestAudit99FleetFlagBounds(t *testing.T) {
	n := len(bench.MooncakeSynthetic())
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-blocks", "1"}, "-blocks 1"},
		{[]string{"-batch-tokens", "0"}, "-batch-tokens 0"},
		{[]string{"-max-running", "0"}, "-max-running 0"},
		{[]string{"-event-delay", "-1ms"}, "-event-delay -1ms"},
		{[]string{"-cap", "0"}, "-cap 0"},
		{[]string{"-skip", "-1"}, "-skip -1"},
		{[]string{"-skip", strconv.Itoa(n)}, fmt.Sprintf("-skip %d leaves none of the trace's %d requests", n, n)},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"fleet", "-requests", "10", "-redis", ""}, c.args...)
		assert.NotPanics(t, func() {
			assert.Equal(t, 2, run(args, &out, &errb), "%v", c.args)
		}, "%v", c.args)
		assert.Contains(t, errb.String(), c.msg, "%v", c.args)
		assert.Empty(t, out.String(), "%v", c.args)
	}
	// The bounds themselves are taken: the last request alone, and a
	// blank -layout, which is no layout (one full-attention group).
	rows := a99FleetJSON(t, "-skip", strconv.Itoa(n-1), "-requests", "1", "-cap", "0.5", "-blocks", "160", "-layout", "  ")
	require.Len(t, rows, len(fleetRouterRows))
	for _, r := range rows {
		assert.Equal(t, 1, r.Requests+r.Rejected, r.Router)
		assert.Empty(t, r.Layout, r.Router)
	}
}

// TestAudit99FleetSkipAndLimit: -skip drops the first requests and the
// rest arrive from time 0, as if the trace began there; -requests 1
// replays one request; the trace name gives the range, numbered from 1.
func TestAudit99FleetSkipAndLimit(t *testing.T) {
	reqs := bench.MooncakeSynthetic()
	skip := len(reqs) - 3
	t0 := reqs[skip].Arrival
	require.Greater(t, t0, 10*time.Minute, "the test needs a late request")
	rows := a99FleetJSON(t, "-skip", strconv.Itoa(skip), "-requests", "1")
	require.Len(t, rows, len(fleetRouterRows))
	for _, r := range rows {
		assert.Equal(t, 1, r.Requests+r.Rejected, r.Router)
		assert.Contains(t, r.Trace, fmt.Sprintf(", requests %d to %d of %d", skip+1, skip+1, len(reqs)), r.Router)
		// One request served alone: it is done within a minute of time 0,
		// not of its arrival in the whole trace (over ten minutes, halved
		// by -speed 2).
		assert.Less(t, r.Makespan, 60.0, r.Router)
	}
	rows = a99FleetJSON(t, "-skip", strconv.Itoa(skip))
	for _, r := range rows {
		assert.Equal(t, 3, r.Requests+r.Rejected, r.Router)
		assert.Contains(t, r.Trace, fmt.Sprintf(", requests %d to %d of %d", skip+1, skip+3, len(reqs)), r.Router)
	}
}

// TestAudit99FleetAzureGetsUniqueBlocks: the Azure trace has no hash IDs;
// without -shared-prefix each prompt still gets its own blocks (unique,
// so nothing hits) and the trace name says so.
func TestAudit99FleetAzureGetsUniqueBlocks(t *testing.T) {
	rows := a99FleetJSON(t, "-format", "azure", "-requests", "100")
	require.Len(t, rows, len(fleetRouterRows))
	for _, r := range rows {
		assert.Contains(t, r.Trace, "no hash IDs in the trace: each prompt's own blocks are unique", r.Router)
		assert.Equal(t, 100, r.Requests+r.Rejected, r.Router)
		assert.Zero(t, r.HitRate, r.Router)
		if r.Router == "prefix-aware" {
			assert.Positive(t, r.EventsPerSec, "the servers stored blocks")
		}
	}
}

// a99Replay is the study's replay of one row by bench.RunFleet itself:
// the oracle of the row's figures.
func a99Replay(t *testing.T, reqs []bench.Request, cfg bench.FleetConfig, r fleetRow) bench.FleetResult {
	t.Helper()
	x, err := fleet.New(fleet.Config{Model: "kvbench-fleet", MaxServers: cfg.Servers})
	require.NoError(t, err)
	cfg.Index = x
	cfg.BlindIndex = r.Scoring == "blind"
	router := freshFleetRouter(1, 8, r.Router)
	require.Equal(t, r.Router, router.Name)
	if r.Scoring == "exact" {
		router = router.IgnoringAffinity()
	}
	res, err := bench.RunFleet(reqs, cfg, router)
	require.NoError(t, err)
	return res
}

// TestAudit99FleetRowsAreTheReplays: every figure of a JSON row is the
// one bench.RunFleet gives for its router, in a fleet small enough that
// requests are rejected and preempted, and with a state group that takes
// checkpoints; each scoring's replay starts from a fresh router, so a row
// of -scoring all is the row of that scoring alone.
func TestAudit99FleetRowsAreTheReplays(t *testing.T) {
	reqs := bench.MooncakeSynthetic()[:100]
	layout, err := parseFleetLayout("full state")
	require.NoError(t, err)
	for _, c := range []struct {
		args []string
		cfg  bench.FleetConfig
	}{
		{[]string{"-servers", "4", "-blocks", "48"}, bench.FleetConfig{Servers: 4, Blocks: 48}},
		{[]string{"-servers", "4", "-blocks", "256", "-layout", "full state", "-scoring", "all"}, bench.FleetConfig{Servers: 4, Blocks: 256, Layout: layout}},
	} {
		c.cfg.MaxRunning, c.cfg.MaxBatchTokens, c.cfg.Speed, c.cfg.StatePages = 256, 8192, 2, 1
		rows := a99FleetJSON(t, append([]string{"-requests", "100"}, c.args...)...)
		rejected, preempted, checkpoints := false, false, false
		for _, row := range rows {
			res := a99Replay(t, reqs, c.cfg, row)
			what := fmt.Sprintf("%v: %s %s", c.args, row.Router, row.Scoring)
			assert.Equal(t, res.Requests, row.Requests, what)
			assert.Equal(t, res.Rejected, row.Rejected, what)
			assert.Equal(t, res.HitRate, row.HitRate, what)
			assert.Equal(t, res.Imbalance, row.Imbalance, what)
			assert.Equal(t, res.BusyImbalance, row.BusyImbalance, what)
			assert.Equal(t, res.MeanWait, row.MeanWait, what)
			assert.Equal(t, res.P90Wait, row.P90Wait, what)
			assert.Equal(t, res.MeanTTFT, row.MeanTTFT, what)
			assert.Equal(t, res.P90TTFT, row.P90TTFT, what)
			assert.Equal(t, res.Makespan, row.Makespan, what)
			assert.Equal(t, res.Steps, row.Steps, what)
			assert.Equal(t, res.Preemptions, row.Preemptions, what)
			assert.Equal(t, res.OverReports, row.OverReports, what)
			assert.Equal(t, res.OverReportTokens, row.OverTokens, what)
			assert.Equal(t, res.ClaimOverReports, row.ClaimOver, what)
			assert.Equal(t, res.ClaimOverReportTokens, row.ClaimOverTok, what)
			assert.Equal(t, res.AwayRoutes, row.AwayRoutes, what)
			assert.Equal(t, res.AwayNoHit, row.AwayNoHit, what)
			assert.Equal(t, res.AwayHitTokens, row.AwayHitTokens, what)
			assert.Equal(t, res.FamilyServers, row.FamilyServers, what)
			assert.Equal(t, res.FamilyMoves, row.FamilyMoves, what)
			assert.Equal(t, res.Checkpoints, row.Checkpoints, what)
			assert.Equal(t, res.PerServer, row.PerServer, what)
			assert.Equal(t, res.PerServerBusy, row.PerServerBusy, what)
			rejected = rejected || row.Rejected > 0
			preempted = preempted || row.Preemptions > 0
			checkpoints = checkpoints || row.Checkpoints > 0
		}
		if c.cfg.Layout.Groups == nil {
			assert.True(t, rejected && preempted, "%v: the small fleet rejects and preempts", c.args)
		} else {
			assert.True(t, checkpoints, "%v: the state group takes checkpoints", c.args)
		}
	}
}

// a99Redis stands in for Redis: each Fresh is an in-memory backend, or,
// lossy, one that drops every event it is given (an index that learns
// nothing, so the index routers route differently).
type a99Redis struct{ lossy bool }

type a99LossyBackend struct{ fleet.Backend }

func (b a99LossyBackend) Update(server fleet.ServerID, old, next fleet.StreamState, clear bool, events []paged.Event) (fleet.StreamState, error) {
	return b.Backend.Update(server, old, next, clear, events[:0])
}

func (r a99Redis) Fresh(string) (fleet.Backend, error) {
	m, err := fleet.NewMemory(fleet.MemoryConfig{})
	if err != nil || !r.lossy {
		return m, err
	}
	return a99LossyBackend{m}, nil
}

func (a99Redis) Close() error { return nil }

func a99WithRedis(t *testing.T, r a99Redis) {
	t.Helper()
	saved := openRedis
	openRedis = func(string) (redisIndex, error) { return r, nil }
	t.Cleanup(func() { openRedis = saved })
}

// TestAudit99FleetRedisReplays: the Redis replays of the index routers,
// on a backend that behaves as the in-memory one, are identical for every
// scoring (the exact one reading the exact hit alone on Redis too); on
// one that loses every event they count the decisions that differ, are
// marked in the table and fail the command.
func TestAudit99FleetRedisReplays(t *testing.T) {
	a99WithRedis(t, a99Redis{})
	var out, errb bytes.Buffer
	args := []string{"-requests", "150", "-redis", "fake", "-layout", "full state", "-scoring", "all", "-json"}
	require.NoError(t, runFleet(args, &out, &errb), errb.String())
	n := 0
	for _, r := range a99Rows(t, &out) {
		if r.Scoring == "" {
			assert.Nil(t, r.Redis, r.Router)
			continue
		}
		n++
		require.NotNil(t, r.Redis, r.Router)
		assert.True(t, r.Redis.Identical, "%s %s: %+v", r.Router, r.Scoring, *r.Redis)
		assert.Zero(t, r.Redis.Differing, r.Router)
		assert.Positive(t, r.Redis.LookupsPerSec, r.Router)
	}
	assert.Equal(t, 15, n, "5 index routers, 3 scorings")
	out.Reset()
	require.NoError(t, runFleet([]string{"-requests", "150", "-redis", "fake"}, &out, &errb), errb.String())
	assert.Equal(t, 5, strings.Count(out.String(), "| identical |"), out.String())
	assert.NotContains(t, out.String(), "redis replays skipped")

	a99WithRedis(t, a99Redis{lossy: true})
	out.Reset()
	err := runFleet([]string{"-requests", "150", "-redis", "fake", "-json"}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "5 redis replay(s) failed or routed differently")
	for _, r := range a99Rows(t, &out) {
		if r.Redis == nil {
			continue
		}
		assert.False(t, r.Redis.Identical, r.Router)
		assert.Positive(t, r.Redis.Differing, r.Router)
		assert.Contains(t, r.Redis.status(), fmt.Sprintf("**DIFFERENT**: %d decisions", r.Redis.Differing), r.Router)
	}
	out.Reset()
	require.Error(t, runFleet([]string{"-requests", "150", "-redis", "fake"}, &out, &errb))
	assert.Equal(t, 5, strings.Count(out.String(), "| **DIFFERENT**: "), out.String())
}

// TestAudit99FleetTable: the table and its notes from rows of known
// figures: the delay header, hit rates in percent, "-" for a router that
// made no lookups, the notes on rejections, preemptions and checkpoints,
// the summary from each router's first row (the aware one) and the event
// rate of the first replay that applied events.
func TestAudit99FleetTable(t *testing.T) {
	layout, err := parseFleetLayout("full state")
	require.NoError(t, err)
	cfg := bench.FleetConfig{Servers: 2, Blocks: 64, MaxRunning: 4, MaxBatchTokens: 1024, Speed: 1, EventDelay: 50 * time.Millisecond, Layout: layout, StatePages: 1}
	rows := []fleetRow{
		{Router: "round-robin", HitRate: 0.2, Makespan: 100, P90Wait: 1},
		{Router: "least-loaded", HitRate: 0.25, Makespan: 80, P90Wait: 2},
		{Router: "prefix-aware", Scoring: "aware", HitRate: 0.4, LookupsPerSec: 1000, EventsPerSec: 5000, Rejected: 3, Preemptions: 2, Checkpoints: 7},
		{Router: "prefix-aware", Scoring: "blind", HitRate: 0.3, LookupsPerSec: 900, EventsPerSec: 4000},
		{Router: "cost-aware", Scoring: "aware", HitRate: 0.5, Imbalance: 1.25, Makespan: 60, P90Wait: 1.5, LookupsPerSec: 800, EventsPerSec: 3000},
		{Router: "cost-aware", Scoring: "blind", HitRate: 0.1, Imbalance: 2, Makespan: 90, P90Wait: 3, LookupsPerSec: 700, EventsPerSec: 2000},
	}
	// Two requests of two blocks sharing the first: one unbounded cache
	// hits 1 of 4 blocks.
	reqs := []bench.Request{
		{InputTokens: 1024, OutputTokens: 1, HashIDs: []int64{1, 2}},
		{InputTokens: 1024, OutputTokens: 1, HashIDs: []int64{1, 3}},
	}
	var out bytes.Buffer
	writeFleetTable(&out, rows, cfg, "tiny", reqs, false)
	s := out.String()
	for _, want := range []string{
		"fleet study: 2 requests of tiny\n",
		"KV events reach the router 50ms after the step that made them\n",
		"| round-robin | - | - | - | - | - | 20.0% | 0.000 | 0.000 | 0.00 | 1.00 | 0.00 | 100 | - | - | - |\n",
		"| prefix-aware | aware | 0 | 0 | 0 (0) | 0.00 | 40.0% | 0.000 | 0.000 | 0.00 | 0.00 | 0.00 | 0 | 1000 | - | - |\n",
		"prefix-aware: 3 requests could never fit a server\n",
		"prefix-aware (aware): 2 preemptions\n",
		"prefix-aware (aware): 7 state checkpoints taken\n",
		"cost-aware: hit rate 50.0% (x1.250 prefix-aware's, x2.50 round-robin's), imbalance 1.250, makespan x0.750 and p90 wait -0.50 s vs least-loaded; bound for one unbounded cache 25.0%\n",
		"index event application (memory, prefix-aware replay): 5000 block events/s\n",
		"redis replays skipped",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "index event application (redis")
}

// a99Overhead runs kvbench overhead and returns its JSON line (the
// last line, after the summary unless -json) and the summary.
func a99Overhead(t *testing.T, args ...string) (map[string]float64, string) {
	t.Helper()
	var out, errb bytes.Buffer
	require.NoError(t, runOverhead(args, &out, &errb), errb.String())
	s := strings.TrimRight(out.String(), "\n")
	last := s[strings.LastIndex(s, "\n")+1:]
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(last), &raw), last)
	got := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			got[k] = f
		}
	}
	return got, s
}

// a99Float reads the number re's first group matches in s.
func a99Float(t *testing.T, s, re string) float64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	require.NotNil(t, m, "%s in %s", re, s)
	f, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return f
}

// TestAudit99OverheadFiguresAgree: the JSON line's ratios are its counts
// and times divided as their names say, rounded to three decimals, and
// the summary's figures (in ms, us and ns as labelled) are the same run's.
func TestAudit99OverheadFiguresAgree(t *testing.T) {
	got, s := a99Overhead(t, "-requests", "100", "-blocks", "1024")
	round3 := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	for _, c := range []struct {
		key      string
		num, den float64
	}{
		{"manager_us_per_step", got["manager_ns"] / 1e3, got["steps"]},
		{"wall_us_per_step", got["total_wall_ns"] / 1e3, got["steps"]},
		{"manager_ns_per_token", got["manager_ns"], got["tokens_processed"]},
		{"wall_ns_per_token", got["total_wall_ns"], got["tokens_processed"]},
		{"scheduler_ns_per_token", got["scheduler_ns"], got["tokens_processed"]},
		{"avg_ns_per_call.allocate_slots_decode", got["ns.allocate_slots_decode"], got["calls.allocate_slots_decode"]},
		{"avg_ns_per_call.allocate_slots_admit", got["ns.allocate_slots_admit"], got["calls.allocate_slots_admit"]},
		{"avg_ns_per_call.free", got["ns.free"], got["calls.free"]},
		{"avg_ns_per_call.request_init", got["ns.request_init_prompt_hash"], got["calls.request_init"]},
	} {
		require.Positive(t, c.den, c.key)
		assert.InDelta(t, round3(c.num/c.den), got[c.key], 1e-9, c.key)
	}
	exclTimer := (got["manager_ns"] - got["timer_overhead_ns_per_call"]*got["timed_calls"]) / got["tokens_processed"]
	assert.InDelta(t, exclTimer, got["manager_ns_per_token_excl_timer"], 0.01)
	floor := got["blocks_hashed"] * got["probe.sha256_96b_ns"] / got["tokens_processed"]
	assert.InDelta(t, floor, got["sha_floor_ns_per_token"], 0.01)
	assert.InEpsilon(t, got["manager_ns_per_token_excl_timer"]/got["sha_floor_ns_per_token"], got["manager_vs_sha_floor"], 0.01)

	assert.InDelta(t, got["manager_ns"]/1e6, a99Float(t, s, `manager time ([0-9.]+) ms`), 0.051)
	assert.InDelta(t, got["manager_us_per_step"], a99Float(t, s, `([0-9.]+) us per step`), 0.051)
	timerMs := got["timer_overhead_ns_per_call"] * got["timed_calls"] / 1e6
	assert.InDelta(t, timerMs, a99Float(t, s, `add about ([0-9.]+) ms`), 0.051)
	assert.InDelta(t, got["prefix_hit_tokens"]/got["prefix_query_tokens"], a99Float(t, s, `queried tokens \(([0-9.]+)\)`), 0.00006)
	assert.Contains(t, s, "compat library default (free list first")
}

// TestAudit99OverheadTraceFile: -trace replays the file's requests, here
// three short prompts with one output token each: no block fills, so
// nothing is hashed, and the ratios over that zero are 0 in valid JSON.
func TestAudit99OverheadTraceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.csv")
	require.NoError(t, os.WriteFile(path, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n0,5,1\n0.5,6,1\n1,7,1\n"), 0o644))
	got, s := a99Overhead(t, "-trace", path, "-requests", "3")
	assert.EqualValues(t, 3, got["finished"])
	assert.LessOrEqual(t, got["prefill_tokens"], 18.0, "the file's prompts, not the embedded trace's")
	assert.Zero(t, got["blocks_hashed"])
	assert.Zero(t, got["manager_vs_sha_floor"])
	assert.NotContains(t, s, "hashing floor")
}

// TestAudit99OverheadSummaryNames: the summary names the mode, every
// extra group and whether the digest is vLLM's, and -repeat 1000 (its
// bound) is taken: the error is the next flag's.
func TestAudit99OverheadSummaryNames(t *testing.T) {
	_, s := a99Overhead(t, "-requests", "50", "-blocks", "1024", "-compat", "vllm", "-chunk", "512")
	assert.Contains(t, s, "compat vllm (one LRU free queue, as vLLM v1)")
	assert.Contains(t, s, "W1-H (a full-attention group, a 512-token chunked local attention group)")
	_, s = a99Overhead(t, "-compat", "vllm", "-digest")
	assert.Contains(t, s, "allocation digest "+vllmDigest+" (equals vLLM's)")

	var out, errb bytes.Buffer
	err := runOverhead([]string{"-repeat", "1000", "-requests", "0"}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-requests 0 must be positive")
}
