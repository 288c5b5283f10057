package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/fleet"
)

// runFleet replays the Mooncake trace over a fleet of managers behind each
// router and prints hit rate, balance, waits and index speed, with the
// prefix-aware routers replayed again on Redis when an address is given.
func runFleet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fleet", stderr)
	var cfg bench.FleetConfig
	fs.IntVar(&cfg.Servers, "servers", 8, "number of servers")
	fs.IntVar(&cfg.Blocks, "blocks", 2048, "blocks per server (512 tokens each), null block included")
	fs.IntVar(&cfg.Slots, "slots", 8, "requests a server runs at once")
	fs.Float64Var(&cfg.PrefillRate, "prefill", 10000, "uncached prompt tokens per second per request")
	fs.DurationVar(&cfg.DecodeStep, "decode", 30*time.Millisecond, "time per output token")
	fs.Float64Var(&cfg.Speed, "speed", 2, "arrival speed-up of the trace (2: twice its rate, about 70% busy)")
	loadCap := fs.Float64("cap", 0, "load cap of the capped prefix-aware router (running+queued); 0 means -slots")
	seed := fs.Uint64("seed", 1, "seed of the random router")
	addr := fs.String("redis", os.Getenv("PAGEDKV_REDIS_ADDR"), "Redis address for the Redis-backed replays (default $PAGEDKV_REDIS_ADDR; empty skips them)")
	tracePath := fs.String("trace", "", "Mooncake trace file (default: the embedded synthetic trace)")
	limit := fs.Int("requests", 0, "replay only the first N requests (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reqs := bench.MooncakeSynthetic()
	if *tracePath != "" {
		var err error
		if reqs, err = bench.ReadTraceFile(*tracePath, "mooncake"); err != nil {
			return err
		}
	}
	if cfg.Servers < 1 || cfg.Blocks < 2 || cfg.Slots < 1 {
		return fmt.Errorf("-servers %d, -blocks %d and -slots %d must be positive (blocks at least 2)", cfg.Servers, cfg.Blocks, cfg.Slots)
	}
	if *limit < 0 {
		return fmt.Errorf("-requests %d must not be negative", *limit)
	}
	if *limit > 0 && *limit < len(reqs) {
		reqs = reqs[:*limit]
	}
	if *loadCap == 0 {
		*loadCap = float64(cfg.Slots)
	}
	var rdb *redis.Client
	if *addr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: *addr})
		defer rdb.Close()
	}

	fmt.Fprintf(stdout, "fleet study: %d requests of the Mooncake synthetic trace (%s)\n", len(reqs), bench.MooncakeAttribution)
	fmt.Fprintf(stdout, "%d servers x %d blocks of 512 tokens, %d slots each, prefill %g tok/s, decode %v/token, speed x%g\n\n",
		cfg.Servers, cfg.Blocks, cfg.Slots, cfg.PrefillRate, cfg.DecodeStep, cfg.Speed)
	fmt.Fprintln(stdout, "| router | hit rate | imbalance (max/mean requests) | mean wait s | p90 wait s | makespan s | lookups/s memory | lookups/s redis | redis decisions |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|")
	var mem, red []bench.FleetResult
	for _, r := range bench.FleetRouters(*seed, *loadCap) {
		c := cfg
		x, err := fleet.New(fleet.Config{Model: "kvbench-fleet", MaxServers: cfg.Servers})
		if err != nil {
			return err
		}
		c.Index = x
		res, err := bench.RunFleet(reqs, c, r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		mem = append(mem, res)
		redisCol, same := "-", "-"
		if r.Prefix && rdb != nil {
			back, err := fleet.NewRedis(rdb, fleet.RedisConfig{})
			if err != nil {
				return err
			}
			x, err := fleet.New(fleet.Config{Model: "kvbench-fleet", MaxServers: cfg.Servers, Backend: back})
			if err != nil {
				return err
			}
			c.Index = x
			// The router may keep state (round-robin, random): rebuild it.
			rr := r
			for _, fresh := range bench.FleetRouters(*seed, *loadCap) {
				if fresh.Name == r.Name {
					rr = fresh
				}
			}
			rres, err := bench.RunFleet(reqs, c, rr)
			if err != nil {
				return fmt.Errorf("%s on redis: %w", r.Name, err)
			}
			red = append(red, rres)
			redisCol = fmt.Sprintf("%.0f", rres.LookupsPerSecond())
			same = "differ"
			if slices.Equal(res.Decisions, rres.Decisions) && rres.HitTokens == res.HitTokens {
				same = "identical"
			}
		}
		lookups := "-"
		if r.Prefix {
			lookups = fmt.Sprintf("%.0f", res.LookupsPerSecond())
		}
		fmt.Fprintf(stdout, "| %s | %.1f%% | %.2f | %.2f | %.2f | %.0f | %s | %s | %s |\n",
			r.Name, 100*res.HitRate, res.Imbalance, res.MeanWait, res.P90Wait, res.Makespan, lookups, redisCol, same)
	}
	fmt.Fprintln(stdout)
	for _, res := range mem {
		if res.Rejected > 0 {
			fmt.Fprintf(stdout, "%s: %d requests could never fit a server\n", res.Router, res.Rejected)
		}
	}
	rrHit, paHit := mem[1].HitRate, mem[3].HitRate
	fmt.Fprintf(stdout, "prefix-aware hit rate %.1f%% vs round-robin %.1f%% (x%.2f); bound for one unbounded cache %.1f%%\n",
		100*paHit, 100*rrHit, paHit/rrHit, 100*bench.FleetHitBound(reqs, bench.MooncakeBlockSize))
	for _, res := range mem {
		if res.BlockEvents > 0 {
			fmt.Fprintf(stdout, "index event application (memory, %s replay): %.0f block events/s\n", res.Router, res.BlockEventsPerSecond())
			break
		}
	}
	for _, res := range red {
		fmt.Fprintf(stdout, "index event application (redis, %s replay): %.0f block events/s\n", res.Router, res.BlockEventsPerSecond())
		break
	}
	if rdb == nil {
		fmt.Fprintln(stdout, "redis replays skipped: no -redis address and PAGEDKV_REDIS_ADDR unset")
	}
	return nil
}
