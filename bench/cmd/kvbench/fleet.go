package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// redisIndex opens fleet backends on one Redis. It lives behind the
// redis build tag (fleet_redis.go), so that go-redis stays out of the
// kvbench most people build: the fragmentation study starts in half the
// time on a fresh machine without it.
type redisIndex interface {
	// Fresh returns a backend for model, whose index it deletes first.
	Fresh(model string) (fleet.Backend, error)
	Close() error
}

// openRedis connects to Redis at addr; nil in a kvbench built without
// -tags redis.
var openRedis func(addr string) (redisIndex, error)

// fleetRow is one router's line of the fleet study (and its JSON object).
type fleetRow struct {
	Trace         string      `json:"trace"`
	Router        string      `json:"router"`
	Layout        string      `json:"layout,omitempty"`
	Scoring       string      `json:"scoring,omitempty"`
	Requests      int         `json:"requests"`
	Rejected      int         `json:"rejected"`
	HitRate       float64     `json:"hit_rate"`
	Imbalance     float64     `json:"imbalance"`
	BusyImbalance float64     `json:"busy_imbalance"`
	MeanWait      float64     `json:"mean_wait_s"`
	P90Wait       float64     `json:"p90_wait_s"`
	MeanTTFT      float64     `json:"mean_ttft_s"`
	P90TTFT       float64     `json:"p90_ttft_s"`
	Steps         int         `json:"steps"`
	Preemptions   int         `json:"preemptions"`
	OverReports   int         `json:"over_reports"`
	OverTokens    int64       `json:"over_reported_tokens"`
	ClaimOver     int         `json:"claim_over_reports,omitempty"`
	ClaimOverTok  int64       `json:"claim_over_reported_tokens,omitempty"`
	AwayRoutes    int         `json:"away_routes,omitempty"`
	AwayNoHit     int         `json:"away_no_hit,omitempty"`
	AwayHitTokens int64       `json:"away_hit_tokens,omitempty"`
	FamilyServers float64     `json:"family_servers,omitempty"`
	FamilyMoves   float64     `json:"family_moves,omitempty"`
	Checkpoints   int         `json:"checkpoints,omitempty"`
	Makespan      float64     `json:"makespan_s"`
	PerServer     []int       `json:"per_server"`
	PerServerBusy []float64   `json:"per_server_busy_s"`
	LookupsPerSec float64     `json:"lookups_per_s,omitempty"`
	EventsPerSec  float64     `json:"block_events_per_s,omitempty"`
	Redis         *redisCheck `json:"redis,omitempty"`
}

// redisCheck is the same replay on the Redis backend: its speed, whether
// it routed exactly like the in-memory index, and what the index saw go
// wrong.
type redisCheck struct {
	LookupsPerSec  float64 `json:"lookups_per_s"`
	EventsPerSec   float64 `json:"block_events_per_s"`
	Identical      bool    `json:"identical"`
	Differing      int     `json:"differing_decisions"`
	Losses         uint64  `json:"index_losses"`
	Gaps           uint64  `json:"gaps"`
	PartialServers int     `json:"partial_servers"`
	Error          string  `json:"error,omitempty"`
}

// status is the table cell for a Redis replay.
func (c *redisCheck) status() string {
	switch {
	case c == nil:
		return "-"
	case c.Error != "":
		return "**FAILED**: " + c.Error
	case c.Identical:
		return "identical"
	}
	return fmt.Sprintf("**DIFFERENT**: %d decisions; index losses %d, gaps %d, partial servers %d", c.Differing, c.Losses, c.Gaps, c.PartialServers)
}

// runFleet replays a trace over a fleet of managers behind each router
// and prints hit rate, balance, waits and index speed, with the routers
// that use the index replayed again on Redis when an address is given.
func runFleet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fleet", stderr)
	var cfg bench.FleetConfig
	fs.IntVar(&cfg.Servers, "servers", 8, "number of servers")
	fs.IntVar(&cfg.Blocks, "blocks", 2048, "blocks per server (512 tokens each), null block included")
	fs.IntVar(&cfg.MaxRunning, "max-running", sched.DefaultMaxRunning, "sequences a server runs at once (vLLM's max_num_seqs)")
	fs.IntVar(&cfg.MaxBatchTokens, "batch-tokens", 8192, "tokens per engine step (vLLM's max_num_batched_tokens), prompts in chunks")
	fs.Float64Var(&cfg.Speed, "speed", 2, "arrival speed-up of the trace (2: twice its rate)")
	fs.DurationVar(&cfg.EventDelay, "event-delay", 0, "delay from a server's step to the router seeing its KV events (0: at once)")
	loadCap := fs.Float64("cap", 8, "load cap of the capped prefix-aware router (running + waiting requests)")
	seed := fs.Uint64("seed", 1, "seed of the random router and of the cost-aware routers' exact ties")
	defaultAddr := ""
	if openRedis != nil {
		defaultAddr = os.Getenv("PAGEDKV_REDIS_ADDR")
	}
	addr := fs.String("redis", defaultAddr, "Redis address for the Redis-backed replays (default $PAGEDKV_REDIS_ADDR; empty skips them; needs a kvbench built with -tags redis)")
	tracePath := fs.String("trace", "", "trace `file`: Mooncake JSONL or Azure CSV (default: the embedded trace of -format, Mooncake synthetic unless -format azure)")
	format := fs.String("format", "", "trace format, mooncake or azure (default: by the file's extension)")
	shared := fs.Int("shared-prefix", 0, "prefix every request with `N` blocks common to all (a shared system prompt); a trace without hash IDs (Azure) gets unique blocks for the rest of each prompt")
	limit := fs.Int("requests", 0, "replay only the first N requests (0: all), after -skip")
	skip := fs.Int("skip", 0, "skip the first N requests of the trace; the rest arrive as the trace says, from time 0 (-skip 1996 is the second half of the Mooncake synthetic trace)")
	asJSON := fs.Bool("json", false, "print one JSON object per router instead of the table")
	layoutText := fs.String("layout", "", "KV cache groups of a hybrid model for every server, as fleet.ParseLayout reads them, the block size optional: \"full window:128\" (gpt-oss-like), \"full state\" (Qwen3-Next-like); groups full, window:W, chunked:C, state, shared:G; blocks of 512 tokens (default: one full-attention group)")
	fs.IntVar(&cfg.StatePages, "state-pages", 1, "blocks a sequence's state takes in each state group of -layout")
	scoring := fs.String("scoring", "aware", "with -layout: aware (the index knows each server's layout, Index.SetLayout; routers weigh the exact hit and the affinity gain), exact (the same index, routers reading the exact hit alone: IgnoreAffinity), blind (the index does not know the layouts: servers scored by group 0's run, as before layouts), both (the index routers replayed aware and blind) or all (aware, exact and blind)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Servers < 1 || cfg.Blocks < 2 || cfg.MaxRunning < 1 || cfg.MaxBatchTokens < 1 {
		return usageErrorf("-servers %d, -blocks %d, -max-running %d and -batch-tokens %d must be positive (blocks at least 2)", cfg.Servers, cfg.Blocks, cfg.MaxRunning, cfg.MaxBatchTokens)
	}
	if !(cfg.Speed > 0) || math.IsInf(cfg.Speed, 0) {
		return usageErrorf("-speed %g must be positive and finite", cfg.Speed)
	}
	if cfg.EventDelay < 0 {
		return usageErrorf("-event-delay %v must not be negative", cfg.EventDelay)
	}
	if !(*loadCap > 0) {
		return usageErrorf("-cap %g must be positive", *loadCap)
	}
	layout, err := parseFleetLayout(*layoutText)
	if err != nil {
		return err
	}
	cfg.Layout = layout
	if !slices.Contains([]string{"aware", "exact", "blind", "both", "all"}, *scoring) {
		return usageErrorf("-scoring %q: want aware, exact, blind, both or all", *scoring)
	}
	if *scoring != "aware" && *layoutText == "" {
		return usageErrorf("-scoring %s compares layout-aware scoring with group 0's: it needs -layout", *scoring)
	}
	if cfg.StatePages < 1 || cfg.StatePages >= cfg.Blocks {
		return usageErrorf("-state-pages %d must be in [1, -blocks - 1 = %d]", cfg.StatePages, cfg.Blocks-1)
	}
	if *limit < 0 || *skip < 0 {
		return usageErrorf("-requests %d and -skip %d must not be negative", *limit, *skip)
	}
	// Every prompt keeps at least one token of its own, so the prefix
	// leaves room for one: a prefix of MaxTraceTokens tokens was taken
	// here and refused for every request later.
	if maxShared := (bench.MaxTraceTokens - 1) / bench.MooncakeBlockSize; *shared < 0 || *shared > maxShared {
		return usageErrorf("-shared-prefix %d must be in [0, %d] (blocks of %d tokens; a prompt, its own tokens included, at most %d tokens)",
			*shared, maxShared, bench.MooncakeBlockSize, bench.MaxTraceTokens)
	}
	reqs, name, _, err := loadCacheTrace(*tracePath, format)
	if err != nil {
		return err
	}
	total := len(reqs)
	if *skip >= len(reqs) {
		return usageErrorf("-skip %d leaves none of the trace's %d requests", *skip, len(reqs))
	}
	if *skip > 0 {
		reqs = slices.Clone(reqs[*skip:])
		t0 := reqs[0].Arrival
		for i := range reqs {
			reqs[i].Arrival -= t0
		}
	}
	if *limit > 0 && *limit < len(reqs) {
		reqs = reqs[:*limit]
	}
	hasIDs := false
	for _, q := range reqs {
		hasIDs = hasIDs || len(q.HashIDs) > 0
	}
	if *shared > 0 || !hasIDs {
		if reqs, err = bench.SharedPrefix(reqs, *shared, bench.MooncakeBlockSize); err != nil {
			return err
		}
	}
	traceName := name
	if len(reqs) < total {
		traceName += fmt.Sprintf(", requests %d to %d of %d", *skip+1, *skip+len(reqs), total)
	}
	if *shared > 0 {
		traceName += fmt.Sprintf(", every request prefixed with %d shared block(s)", *shared)
	}
	if !hasIDs {
		traceName += "; no hash IDs in the trace: each prompt's own blocks are unique"
	}
	var rdb redisIndex
	if *addr != "" {
		if openRedis == nil {
			return usageErrorf("-redis: this kvbench is built without Redis, which keeps go-redis out of the other studies; run: go run -tags redis ./bench/cmd/kvbench fleet -redis %s", *addr)
		}
		var err error
		if rdb, err = openRedis(*addr); err != nil {
			return err
		}
		defer rdb.Close()
	}

	var rows []fleetRow
	failed := 0
	// The replays: every router, the index routers once per scoring.
	type replay struct {
		r     bench.FleetRouter
		blind bool
		label string
	}
	var plan []replay
	for _, r := range bench.FleetRouters(*seed, *loadCap) {
		if layout.Groups == nil || !r.Prefix {
			plan = append(plan, replay{r: r})
			continue
		}
		for i, label := range fleetScorings(*scoring) {
			if i > 0 {
				r = freshFleetRouter(*seed, *loadCap, r.Name)
			}
			if label == "exact" {
				r = r.IgnoringAffinity()
			}
			plan = append(plan, replay{r: r, blind: label == "blind", label: label})
		}
	}
	replays := int64(len(plan))
	if rdb != nil {
		for _, p := range plan {
			if p.r.Prefix {
				replays++
			}
		}
	}
	prog := startProgress(stderr, *asJSON, "fleet", "replays", replays)
	for _, p := range plan {
		r := p.r
		c := cfg
		c.BlindIndex = p.blind
		x, err := fleet.New(fleet.Config{Model: "kvbench-fleet", MaxServers: cfg.Servers})
		if err != nil {
			return err
		}
		c.Index = x
		res, err := bench.RunFleet(reqs, c, r)
		if err != nil {
			prog.Stop()
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		row := fleetRow{
			Trace: traceName, Router: r.Name, Scoring: p.label, Requests: res.Requests, Rejected: res.Rejected,
			OverReports: res.OverReports, OverTokens: res.OverReportTokens, Checkpoints: res.Checkpoints,
			ClaimOver: res.ClaimOverReports, ClaimOverTok: res.ClaimOverReportTokens,
			AwayRoutes: res.AwayRoutes, AwayNoHit: res.AwayNoHit, AwayHitTokens: res.AwayHitTokens,
			FamilyServers: res.FamilyServers, FamilyMoves: res.FamilyMoves,
			HitRate: res.HitRate, Imbalance: res.Imbalance, BusyImbalance: res.BusyImbalance, MeanWait: res.MeanWait, P90Wait: res.P90Wait, Makespan: res.Makespan,
			MeanTTFT: res.MeanTTFT, P90TTFT: res.P90TTFT, Steps: res.Steps, Preemptions: res.Preemptions,
			PerServer: res.PerServer, PerServerBusy: res.PerServerBusy,
			LookupsPerSec: res.LookupsPerSecond(), EventsPerSec: res.BlockEventsPerSecond(),
		}
		prog.Add(1)
		if r.Prefix && rdb != nil {
			row.Redis = redisReplay(reqs, c, r.Name, p.label == "exact", rdb, *seed, *loadCap, res)
			if !row.Redis.Identical {
				failed++
			}
			prog.Add(1)
		}
		if layout.Groups != nil {
			row.Layout = layout.String()
		}
		rows = append(rows, row)
	}
	prog.Stop()

	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, row := range rows {
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
	} else {
		writeFleetTable(stdout, rows, cfg, traceName, reqs, rdb != nil)
	}
	if failed > 0 {
		return fmt.Errorf("%d redis replay(s) failed or routed differently from the in-memory index (see the marked rows)", failed)
	}
	return nil
}

// redisReplay runs one router again with the index on Redis and compares
// its decisions with the in-memory replay mem.
func redisReplay(reqs []bench.Request, c bench.FleetConfig, router string, exact bool, rdb redisIndex, seed uint64, loadCap float64, mem bench.FleetResult) *redisCheck {
	out := &redisCheck{}
	fail := func(err error) *redisCheck {
		out.Error = err.Error()
		return out
	}
	back, err := rdb.Fresh("kvbench-fleet")
	if err != nil {
		return fail(err)
	}
	x, err := fleet.New(fleet.Config{Model: "kvbench-fleet", MaxServers: c.Servers, Backend: back})
	if err != nil {
		return fail(err)
	}
	c.Index = x
	r := freshFleetRouter(seed, loadCap, router)
	if exact {
		r = r.IgnoringAffinity()
	}
	res, err := bench.RunFleet(reqs, c, r)
	out.Losses, out.Gaps, out.PartialServers = res.Index.Losses, res.Index.Gaps, res.PartialServers
	if err != nil {
		st := x.Stats()
		out.Losses, out.Gaps = st.Losses, st.Gaps
		if errors.Is(err, fleet.ErrIndexLost) {
			return fail(fmt.Errorf("index lost: %w", err))
		}
		return fail(err)
	}
	out.LookupsPerSec, out.EventsPerSec = res.LookupsPerSecond(), res.BlockEventsPerSecond()
	for i := range mem.Decisions {
		if mem.Decisions[i] != res.Decisions[i] {
			out.Differing++
		}
	}
	out.Identical = out.Differing == 0 && res.HitTokens == mem.HitTokens && out.Losses == 0 && out.PartialServers == 0
	return out
}

// fleetScorings lists the replays of an index router for -scoring.
func fleetScorings(scoring string) []string {
	switch scoring {
	case "both":
		return []string{"aware", "blind"}
	case "all":
		return []string{"aware", "exact", "blind"}
	}
	return []string{scoring}
}

// scoringNote labels a row's scoring in the notes under the table.
func scoringNote(scoring string) string {
	if scoring == "" {
		return ""
	}
	return " (" + scoring + ")"
}

// freshFleetRouter returns a new copy of the study's router called name:
// a router may keep state (and its seed's draws), so each replay takes its
// own.
func freshFleetRouter(seed uint64, loadCap float64, name string) bench.FleetRouter {
	for _, r := range bench.FleetRouters(seed, loadCap) {
		if r.Name == name {
			return r
		}
	}
	return bench.FleetRouter{Name: name}
}

// parseFleetLayout reads -layout: fleet.ParseLayout's text, its "b512"
// block size optional; "" is one full-attention group (the zero Layout).
func parseFleetLayout(text string) (fleet.Layout, error) {
	if strings.TrimSpace(text) == "" {
		return fleet.Layout{}, nil
	}
	full := text
	if f := strings.Fields(text); !strings.HasPrefix(f[0], "b") {
		full = fmt.Sprintf("b%d %s", bench.MooncakeBlockSize, text)
	}
	l, err := fleet.ParseLayout(full)
	if err != nil {
		return fleet.Layout{}, usageErrorf("-layout %q: %v (want groups among full, window:W, chunked:C, state, shared:G, the first full, e.g. \"full window:128\" or \"full state\")", text, err)
	}
	if l.BlockSize != bench.MooncakeBlockSize {
		return fleet.Layout{}, usageErrorf("-layout %q: blocks of %d tokens; the fleet's are %d (the traces' hash-ID blocks)", text, l.BlockSize, bench.MooncakeBlockSize)
	}
	if l.Groups[0].Kind != paged.FullAttention {
		return fleet.Layout{}, usageErrorf("-layout %q: group 0 is %v; a paged manager's group 0 must be full attention", text, l.Groups[0].Kind)
	}
	return l, nil
}

// writeFleetTable prints the study as a Markdown table with a header
// naming the trace and the fleet, and a summary.
func writeFleetTable(w io.Writer, rows []fleetRow, cfg bench.FleetConfig, traceName string, reqs []bench.Request, withRedis bool) {
	fmt.Fprintf(w, "fleet study: %d requests of %s\n", len(reqs), traceName)
	fmt.Fprintf(w, "%d servers x %d blocks of %d tokens, each a scheduler (FCFS, chunked prefill, %d tokens and %d sequences a step), speed x%g\n",
		cfg.Servers, cfg.Blocks, bench.MooncakeBlockSize, cfg.MaxBatchTokens, cfg.MaxRunning, cfg.Speed)
	if cfg.EventDelay > 0 {
		fmt.Fprintf(w, "KV events reach the router %v after the step that made them\n", cfg.EventDelay)
	}
	hybrid := cfg.Layout.Groups != nil
	if hybrid {
		fmt.Fprintf(w, "KV cache groups of every server: %s (state groups %d block(s) a sequence); scoring: aware = the index knows the layout (Index.SetLayout) and routers weigh the exact hit and the affinity gain, exact = the same index read for the exact hit alone, blind = scored by group 0's run\n", cfg.Layout, cfg.StatePages)
		fmt.Fprintf(w, "away = requests sent to a server holding fewer of their group-0 blocks than another (when no server could hit any); servers per family = mean servers a family (requests sharing their first block) went to\n")
	}
	m := bench.DefaultStepModel
	fmt.Fprintf(w, "step time: max(tokens x %v + attention pairs x %gns, %v + KV tokens read x %gns), a 70B model on 8 H100 (docs/fleet.md)\n\n",
		m.Token, m.Pair, m.Weights, m.KVRead)
	head, rule := "| router ", "|---"
	if hybrid {
		head, rule = "| router | scoring | over-reports (requests) | over-reported tokens | away (no hit anywhere) | servers per family ", "|---|---|---|---|---|---"
	}
	fmt.Fprintln(w, head+"| hit rate | imbalance (max/mean requests) | busy imbalance (max/mean step time) | mean wait s | p90 wait s | p90 TTFT s | makespan s | lookups/s memory | lookups/s redis | redis |")
	fmt.Fprintln(w, rule+"|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		if hybrid {
			sc, o, ot, away, fam := "-", "-", "-", "-", "-"
			if r.Scoring != "" {
				sc, o, ot = r.Scoring, fmt.Sprint(r.OverReports), fmt.Sprint(r.OverTokens)
				away, fam = fmt.Sprintf("%d (%d)", r.AwayRoutes, r.AwayNoHit), fmt.Sprintf("%.2f", r.FamilyServers)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s ", r.Router, sc, o, ot, away, fam)
		}
		lookups, redisCol := "-", "-"
		if r.LookupsPerSec > 0 {
			lookups = fmt.Sprintf("%.0f", r.LookupsPerSec)
		}
		if r.Redis != nil && r.Redis.Error == "" {
			redisCol = fmt.Sprintf("%.0f", r.Redis.LookupsPerSec)
		}
		name := "| " + r.Router + " "
		if hybrid {
			name = ""
		}
		fmt.Fprintf(w, "%s| %.1f%% | %.3f | %.3f | %.2f | %.2f | %.2f | %.0f | %s | %s | %s |\n",
			name, 100*r.HitRate, r.Imbalance, r.BusyImbalance, r.MeanWait, r.P90Wait, r.P90TTFT, r.Makespan, lookups, redisCol, r.Redis.status())
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.Rejected > 0 {
			fmt.Fprintf(w, "%s: %d requests could never fit a server\n", r.Router, r.Rejected)
		}
		if r.Preemptions > 0 {
			fmt.Fprintf(w, "%s%s: %d preemptions\n", r.Router, scoringNote(r.Scoring), r.Preemptions)
		}
		if r.Checkpoints > 0 {
			fmt.Fprintf(w, "%s%s: %d state checkpoints taken\n", r.Router, scoringNote(r.Scoring), r.Checkpoints)
		}
	}
	byName := map[string]fleetRow{}
	for _, r := range rows {
		// The first row of each router: with -scoring both, the aware one.
		if _, ok := byName[r.Router]; !ok {
			byName[r.Router] = r
		}
	}
	rr, ll, pa, ca := byName["round-robin"], byName["least-loaded"], byName["prefix-aware"], byName["cost-aware"]
	// The replays took reqs, so the bound does too; "?" should it not.
	bound := "?"
	if b, err := bench.FleetHitBound(reqs, bench.MooncakeBlockSize); err == nil {
		bound = fmt.Sprintf("%.1f%%", 100*b)
	}
	fmt.Fprintf(w, "cost-aware: hit rate %.1f%% (%s prefix-aware's, %s round-robin's), imbalance %.3f, makespan %s and p90 wait %+.2f s vs least-loaded; bound for one unbounded cache %s\n",
		100*ca.HitRate, times(ca.HitRate, pa.HitRate, 3), times(ca.HitRate, rr.HitRate, 2), ca.Imbalance, times(ca.Makespan, ll.Makespan, 3), ca.P90Wait-ll.P90Wait, bound)
	for _, r := range rows {
		if r.EventsPerSec > 0 {
			fmt.Fprintf(w, "index event application (memory, %s replay): %.0f block events/s\n", r.Router, r.EventsPerSec)
			break
		}
	}
	for _, r := range rows {
		if r.Redis != nil && r.Redis.Error == "" {
			fmt.Fprintf(w, "index event application (redis, %s replay): %.0f block events/s\n", r.Router, r.Redis.EventsPerSec)
			break
		}
	}
	if !withRedis {
		fmt.Fprintln(w, "redis replays skipped: no -redis address and PAGEDKV_REDIS_ADDR unset")
	}
}

// times formats a/b as "x1.250" with digits decimals, or "x-" when b is 0
// (a replay in which neither router hit anything): never "xNaN" or "x+Inf".
func times(a, b float64, digits int) string {
	if b == 0 {
		return "x-"
	}
	return fmt.Sprintf("x%.*f", digits, a/b)
}
