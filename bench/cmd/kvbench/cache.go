package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pagedkv/pagedkv/bench"
)

// runCache runs the prefix-cache study: a trace replayed through the paged
// manager under each eviction policy and cache capacity.
func runCache(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cache", stderr)
	tracePath := fs.String("trace", "", "trace `file` (default: the embedded trace of -format, Mooncake synthetic unless -format azure)")
	format := fs.String("format", "", "trace format, mooncake or azure (default: by the file's extension)")
	blockSize := fs.Int("block-size", 0, "block size in tokens (default 512 for Mooncake traces, whose hash IDs name 512-token blocks; 16 for Azure)")
	capacities := fs.String("capacity-tokens", "512000,3000000,5120000,25600000", "comma-separated cache capacities in tokens")
	policies := fs.String("policies", "all", "comma-separated eviction policies (lru, fifo, ..., belady for the oracle, all)")
	asJSON := fs.Bool("json", false, "print one JSON object per policy and capacity instead of the table")
	hostTokens := fs.String("host-tokens", "", "host tier offloading evicted device blocks: `N` tokens, or Kx for K times each device capacity (default: none)")
	queueLoad := fs.Float64("queue-load", 0, "model the prefill queue at this `load` (utilization if nothing were cached) and pin queued requests' cached prefixes (0: no queue)")
	pinShare := fs.Float64("pin-share", 0.5, "share of the pool the queue's pins may hold (with -queue-load)")
	skip := fs.Int("skip", 0, "leave out the trace's first `N` requests (a replay that starts mid-trace with an empty cache)")
	limit := fs.Int("limit", 0, "replay at most `N` requests, after -skip (0: all)")
	convPart := fs.String("conversations", "", "replay only the conversations numbered K modulo N, `K/N` (Mooncake traces; before -skip and -limit; default all)")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "replays run in parallel")
	if err := fs.Parse(args); err != nil {
		return err
	}
	caps, err := parseTokenList(*capacities)
	if err != nil {
		return err
	}
	hostFixed, hostFactor, err := parseHost(*hostTokens)
	if err != nil {
		return err
	}
	pols, err := bench.CachePolicies(strings.Split(*policies, ","))
	if err != nil {
		return &usageError{err: fmt.Errorf("-policies: %w", err)}
	}

	if *skip < 0 || *limit < 0 {
		return usageErrorf("bad -skip %d or -limit %d: want counts of requests, 0 or more", *skip, *limit)
	}
	if *blockSize < 0 {
		return usageErrorf("bad -block-size %d: want a positive number of tokens, or 0 for the trace's default", *blockSize)
	}
	if *workers < 1 {
		return usageErrorf("bad -workers %d: want at least 1", *workers)
	}
	if *queueLoad != 0 && !(*queueLoad > 0 && *queueLoad < 1e6) {
		return usageErrorf("bad -queue-load %g: want a load above 0 (and below 1e6), or 0 for no queue", *queueLoad)
	}
	if !(*pinShare > 0 && *pinShare <= 1) {
		return usageErrorf("bad -pin-share %g: want a share of the pool in (0, 1]", *pinShare)
	}
	part, parts, err := parsePart(*convPart)
	if err != nil {
		return err
	}
	reqs, name, _, err := loadCacheTrace(*tracePath, format)
	if err != nil {
		return err
	}
	if parts > 0 {
		if *format != "mooncake" {
			return usageErrorf("-conversations needs a Mooncake trace: conversations are linked by their hash IDs")
		}
		if reqs, err = bench.SplitConversations(reqs, part, parts); err != nil {
			return err
		}
		if len(reqs) == 0 {
			return usageErrorf("-conversations %s leaves no request", *convPart)
		}
		name = fmt.Sprintf("%s, conversations %d mod %d", name, part, parts)
	}
	if *skip > 0 || *limit > 0 {
		if *skip >= len(reqs) {
			return usageErrorf("-skip %d leaves nothing of the trace's %d requests", *skip, len(reqs))
		}
		reqs = reqs[*skip:]
		if *limit > 0 && *limit < len(reqs) {
			reqs = reqs[:*limit]
		}
		name = fmt.Sprintf("%s, requests %d-%d", name, *skip+1, *skip+len(reqs))
	}
	// Mooncake traces name blocks by hash IDs; Azure traces have only
	// lengths, so prompts come from the W1 token model.
	var trace *bench.CacheTrace
	switch *format {
	case "mooncake":
		if *blockSize == 0 {
			*blockSize = bench.MooncakeBlockSize
		}
		trace, err = bench.CacheTraceFromHashes(reqs, *blockSize)
	case "azure":
		if *blockSize == 0 {
			*blockSize = 16
		}
		trace, err = bench.CacheTraceFromTokens(reqs, *blockSize)
	}
	if err != nil {
		return err
	}

	var qm *bench.QueueModel
	if *queueLoad != 0 {
		if hostFixed > 0 || hostFactor > 0 {
			return usageErrorf("-queue-load and -host-tokens cannot be combined")
		}
		qm = &bench.QueueModel{Load: *queueLoad, PinShare: *pinShare}
	}

	// Wall time of the whole grid, to report next to the per-replay times
	// (they overlap when workers > 1).
	start := time.Now()
	prog := startProgress(stderr, *asJSON, "cache", "replays", int64(len(pols)*len(caps)))
	results, err := bench.RunCacheStudy(bench.CacheStudyConfig{
		Progress:       func() { prog.Add(1) },
		Trace:          trace,
		Policies:       pols,
		CapacityTokens: caps,
		HostTokens:     hostFixed,
		HostFactor:     hostFactor,
		Queue:          qm,
		Workers:        *workers,
	})
	prog.Stop()
	if err != nil {
		return err
	}
	wall := time.Since(start)

	// JSON lines for scripts: one object per (policy, capacity).
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}

	fmt.Fprintf(stdout, "trace: %s\n", name)
	fmt.Fprintf(stdout, "%d requests, %d block references of %d tokens, %d distinct blocks; hits stop at a request's first miss\n",
		trace.Requests(), trace.References(), trace.BlockSize, trace.Distinct())
	if trace.Source == "tokens" {
		fmt.Fprintln(stdout, "prompts: synthetic token model of W1 (8 shared 256-token system prompts, the rest unshared), hashed by the manager")
	}
	if hostFixed > 0 || hostFactor > 0 {
		fmt.Fprintln(stdout, "host tier: evicted device blocks are offloaded to host memory (LRU there) and onboarded on a hit; cells: combined (device + host)")
	}
	if qm != nil && len(results) > 0 && results[0].Queue != nil {
		fmt.Fprintf(stdout, "queue: one prefill server at %.0f tokens/s (load %g with no hits), FIFO; queued requests' cached prefixes pinned (up to %.0f%% of the pool) until they hold them\n",
			results[0].Queue.PrefillRate, qm.Load, 100*qm.PinShare)
		for _, r := range results {
			if r.Policy == "lru" {
				fmt.Fprintf(stdout, "  lru at %s tokens: mean wait %.1f s, mean queue %.1f, max %d requests\n",
					bench.Thousands(r.CapacityTokens), r.Queue.MeanWait.Seconds(), r.Queue.MeanQueue, r.Queue.MaxQueue)
			}
		}
	}
	fmt.Fprintln(stdout)
	if err := bench.WriteCacheTable(stdout, results); err != nil {
		return err
	}
	// Oversize requests are the same at one capacity for every policy; the
	// largest count (smallest cache) tells whether any capacity had them.
	oversize := 0
	var slowest, total time.Duration
	for _, r := range results {
		oversize = max(oversize, r.Oversize)
		slowest = max(slowest, r.Elapsed)
		total += r.Elapsed
	}
	if oversize > 0 {
		fmt.Fprintf(stdout, "\nup to %d requests were longer than the cache: all their references count as misses\n", oversize)
	}
	fmt.Fprintf(stdout, "\n%d replays in %.2f s with %d workers: %.0f ms per replay on average, slowest %.0f ms\n",
		len(results), wall.Seconds(), *workers, float64(total.Milliseconds())/float64(len(results)), float64(slowest.Milliseconds()))
	return nil
}

// loadCacheTrace reads the trace file, or the embedded trace of *format
// when path is empty, and settles *format. It returns the requests, a
// description with the attribution of an embedded trace, and a short name.
func loadCacheTrace(path string, format *string) (reqs []bench.Request, name, short string, err error) {
	if path == "" {
		switch *format {
		case "", "mooncake":
			*format = "mooncake"
			return bench.MooncakeSynthetic(), "mooncake_synthetic (embedded; " + bench.MooncakeAttribution + ")", "mooncake_synthetic", nil
		case "azure":
			return bench.AzureConv(), "azure_conv_2023 (embedded; " + bench.AzureAttribution + ")", "azure_conv_2023", nil
		}
		return nil, "", "", usageErrorf("unknown trace format %q (want mooncake or azure)", *format)
	}
	if *format == "" {
		switch {
		case strings.HasSuffix(strings.ToLower(path), ".csv"):
			*format = "azure"
		case strings.HasSuffix(strings.ToLower(path), ".jsonl"), strings.HasSuffix(strings.ToLower(path), ".json"):
			*format = "mooncake"
		}
	}
	reqs, err = bench.ReadTraceFile(path, *format)
	if err != nil {
		return nil, "", "", err
	}
	return reqs, path, filepath.Base(path), nil
}

// parseHost parses -host-tokens: "" for none, N tokens, or Kx.
func parseHost(s string) (tokens int64, factor float64, err error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, 0, nil
	case strings.HasSuffix(s, "x"):
		factor, err = strconv.ParseFloat(strings.TrimSuffix(s, "x"), 64)
		if err != nil || !(factor > 0 && factor < 1e6) {
			return 0, 0, usageErrorf("bad -host-tokens %q: want N tokens or Kx with K > 0", s)
		}
		return 0, factor, nil
	}
	tokens, err = strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || tokens <= 0 {
		return 0, 0, usageErrorf("bad -host-tokens %q: want N tokens or Kx with K > 0", s)
	}
	return tokens, 0, nil
}

// parseTokenList parses a comma-separated list of positive token counts.
func parseTokenList(s string) ([]int64, error) {
	var out []int64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(f, "_", ""), 10, 64)
		if err != nil || v <= 0 {
			return nil, usageErrorf("bad capacity %q: want a positive number of tokens", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, usageErrorf("no capacity given")
	}
	return out, nil
}

// parsePart parses -conversations K/N; parts is 0 when s is empty.
func parsePart(s string) (part, parts int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	ks, ns, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(ks)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 0 || k >= n {
		return 0, 0, usageErrorf("bad -conversations %q: want K/N with 0 <= K < N, such as 0/2", s)
	}
	return k, n, nil
}
