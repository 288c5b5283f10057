package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// vllmDigest is the allocation digest of vLLM v1's own replay of W1 with the
// default settings (docs/workloads.md, section 7).
const vllmDigest = "38a4b81b4e06ea94875657a5d3c9567875cd1f3e8c8ed2d2c4135beb0586dd97"

// vllmHybridDigest is vLLM's digest of W1-H with a 1,024-token window at the
// default settings (docs/workloads.md, section 8).
const vllmHybridDigest = "e6f08fd0401c0f3b70727540c4800b9f9f77dfc6f4be1f8d54a0ac98f4a8caee"

// maxRepeat bounds -repeat: the replays' results are kept to take their
// median, and a thousand replays of W1 already take hours.
const maxRepeat = 1000

func runOverhead(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("overhead", stderr)
	var cfg bench.W1Config
	fs.IntVar(&cfg.Requests, "requests", 2000, "number of leading trace requests to replay")
	fs.IntVar(&cfg.Blocks, "blocks", 8192, "KV blocks in the pool, block 0 (the null block) included")
	fs.IntVar(&cfg.BlockSize, "block-size", 16, "tokens per block")
	fs.IntVar(&cfg.MaxNumSeqs, "max-num-seqs", 256, "most running requests")
	fs.IntVar(&cfg.MaxModelLen, "max-model-len", 16384, "most tokens of one request")
	fs.StringVar(&cfg.Compat, "compat", "", `"vllm": one LRU queue over all free blocks, as vLLM v1; empty: the library's default`)
	fs.BoolVar(&cfg.Digest, "digest", false, "compute the allocation digest")
	repeat := fs.Int("repeat", 1, "replay R times (at most 1000) and report the run with the median manager time")
	asJSON := fs.Bool("json", false, "print the JSON line only, without the summary")
	trace := fs.String("trace", "", "Azure CSV trace (default: the embedded Azure conversation trace)")
	policy := fs.String("policy", "lru", "eviction policy of cached blocks (eviction.Names); -compat vllm needs lru")
	fs.IntVar(&cfg.Window, "window", 0, "W1-H: add a KV cache group with a sliding window of this many tokens (0: none; with no -window, -chunk or -state: W1, one full-attention group)")
	fs.IntVar(&cfg.Chunk, "chunk", 0, "add a chunked local attention group of this many tokens (0: none)")
	fs.IntVar(&cfg.StatePages, "state", 0, "add a state group (Mamba, Gated DeltaNet) of this many blocks per sequence (0: none); -window, -chunk and -state combine in the default mode, -compat vllm takes one")
	hasher := fs.String("hasher", "sha256", `block hasher: "sha256" (as vLLM) or "fast" (to measure the manager without hashing)`)
	reserve := fs.Bool("reserve", true, "make each manager with a reserve (paged.Config.Reserve) of records for the requests and hash and table buffers for that many requests of -max-model-len tokens, faulted in before the timed calls; -reserve=false takes them from the heap as the requests come")
	if err := fs.Parse(args); err != nil {
		return err
	}
	extra := 0
	for _, v := range []struct {
		name string
		val  int
	}{{"window", cfg.Window}, {"chunk", cfg.Chunk}, {"state", cfg.StatePages}} {
		if v.val < 0 {
			return usageErrorf("-%s %d must not be negative", v.name, v.val)
		}
		if v.val > 0 {
			extra++
		}
	}
	if extra > 1 && cfg.Compat == "vllm" {
		return usageErrorf("-compat vllm replays vLLM v1's hybrid coordinator, which takes one kind besides full attention (f20c3b0): give one of -window, -chunk and -state, or drop -compat to combine them")
	}
	if *repeat < 1 || *repeat > maxRepeat {
		return usageErrorf("-repeat %d must be in [1, %d]", *repeat, maxRepeat)
	}
	for _, v := range []struct {
		name string
		val  int
	}{{"requests", cfg.Requests}, {"blocks", cfg.Blocks}, {"block-size", cfg.BlockSize}, {"max-num-seqs", cfg.MaxNumSeqs}, {"max-model-len", cfg.MaxModelLen}} {
		if v.val <= 0 {
			return usageErrorf("-%s %d must be positive", v.name, v.val)
		}
	}
	if cfg.Blocks < 2 {
		return usageErrorf("-blocks %d must be at least 2 (block 0 is the null block)", cfg.Blocks)
	}
	if cfg.StatePages >= cfg.Blocks {
		return usageErrorf("-state %d must be below -blocks %d (block 0 is the null block)", cfg.StatePages, cfg.Blocks)
	}
	f, err := eviction.ByName(*policy)
	if err != nil {
		return &usageError{err: err}
	}
	if cfg.Compat == "vllm" && *policy != "lru" {
		return usageErrorf("-compat vllm reproduces vLLM's one LRU queue; -policy %s does not apply", *policy)
	}
	cfg.Policy = f
	cfg.NoReserve = !*reserve
	switch *hasher {
	case "sha256":
	case "fast":
		cfg.Hasher = paged.FastHasher{}
	default:
		return usageErrorf("-hasher %q: want sha256 or fast", *hasher)
	}
	if *trace != "" {
		reqs, err := bench.ReadTraceFile(*trace, "azure")
		if err != nil {
			return err
		}
		cfg.Trace = reqs
	}
	runs := make([]bench.W1Result, 0, *repeat)
	prog := startProgress(stderr, *asJSON, "overhead", "replays", int64(*repeat))
	for range *repeat {
		r, err := bench.RunW1(cfg)
		prog.Add(1)
		if err != nil {
			prog.Stop()
			return err
		}
		runs = append(runs, r)
	}
	prog.Stop()
	slices.SortFunc(runs, func(a, b bench.W1Result) int { return int(a.ManagerNs - b.ManagerNs) })
	r := runs[len(runs)/2]
	line := overheadJSON(r)
	if *asJSON {
		_, err := fmt.Fprintln(stdout, string(line))
		return err
	}
	mode := "library default (free list first, then LRU over cached blocks)"
	if cfg.Compat == "vllm" {
		mode = "vllm (one LRU free queue, as vLLM v1)"
	}
	tok := float64(r.TokensProcessed)
	workload := "W1"
	if extra > 0 {
		var groups []string
		if cfg.Window > 0 {
			groups = append(groups, fmt.Sprintf("a %d-token sliding-window group", cfg.Window))
		}
		if cfg.Chunk > 0 {
			groups = append(groups, fmt.Sprintf("a %d-token chunked local attention group", cfg.Chunk))
		}
		if cfg.StatePages > 0 {
			groups = append(groups, fmt.Sprintf("a state group of %d blocks per sequence", cfg.StatePages))
		}
		workload = fmt.Sprintf("W1-H (a full-attention group, %s)", strings.Join(groups, ", "))
	}
	fmt.Fprintf(stdout, "workload %s: %d requests of %s, %d blocks of %d tokens, compat %s, policy %s\n",
		workload, cfg.Requests, traceName(*trace), cfg.Blocks, cfg.BlockSize, mode, *policy)
	fmt.Fprintf(stdout, "  steps %d, preemptions %d, admissions %d, finished %d, peak running %d, peak blocks %d\n",
		r.Steps, r.Preemptions, r.Admissions, r.Finished, r.PeakRunning, r.PeakBlocksInUse)
	fmt.Fprintf(stdout, "  tokens processed %d (prefill %d, of which resumed %d; decode %d)\n",
		r.TokensProcessed, r.PrefillTokens, r.ResumedPrefill, r.Decode)
	fmt.Fprintf(stdout, "  prefix hits %d of %d queried tokens (%.4f) over %d lookups\n",
		r.PrefixHitTokens, r.PrefixQueryTokens, float64(r.PrefixHitTokens)/float64(r.PrefixQueryTokens), r.PrefixLookups)
	if r.Digest != "" {
		same := "differs from vLLM's at the default settings"
		if (extra == 0 && r.Digest == vllmDigest) || (extra == 1 && cfg.Window == 1024 && r.Digest == vllmHybridDigest) {
			same = "equals vLLM's"
		}
		fmt.Fprintf(stdout, "  allocation digest %s (%s)\n", r.Digest, same)
	}
	timer := r.TimerOverheadNsPerCall * float64(r.TimedCalls)
	excl := r.ManagerNsPerTokenExclTimer()
	fmt.Fprintf(stdout, "  manager time %.1f ms: %.1f ns per token, %.1f us per step (timers, %d intervals, add about %.1f ms: %s)\n",
		float64(r.ManagerNs)/1e6, float64(r.ManagerNs)/tok, float64(r.ManagerNs)/float64(r.Steps)/1e3,
		r.TimedCalls, timer/1e6, withoutTimers(excl))
	fmt.Fprintf(stdout, "  (the manager alone, given the calls the scheduler made; timed through the scheduler, its bookkeeping included: %.1f ns per token)\n",
		float64(r.SchedulerNs)/tok)
	if floor := r.SHAFloorNsPerToken(); floor > 0 && excl > 0 {
		fmt.Fprintf(stdout, "  hashing floor: %d blocks hashed x %.1f ns per 96-byte SHA-256 (probe, this run) = %.1f ns per token; manager %.2fx the floor\n",
			r.BlocksHashed, r.SHA256Ns, floor, excl/floor)
	}
	fmt.Fprintf(stdout, "  vLLM v1's reference replay: about 1,400 to 2,600 ns per token, 800 to 1,500 us per step\n")
	fmt.Fprintf(stdout, "  wall %.1f ms for the whole replay, driver included\n", float64(r.TotalWallNs)/1e6)
	_, err = fmt.Fprintln(stdout, string(line))
	return err
}

// withoutTimers words the manager's time per token less the timers'
// estimated cost. On a replay so short that the timers cost as much as
// all the time measured, that figure is noise at zero or below: it says
// so instead of printing it (and the summary leaves out its ratio to the
// hashing floor; the JSON line keeps the arithmetic).
func withoutTimers(excl float64) string {
	if excl <= 0 {
		return "as much as the time measured: too short a replay to subtract them"
	}
	return fmt.Sprintf("%.1f ns per token without them", excl)
}

// overheadJSON renders a result with the reference replay's keys, in order.
func overheadJSON(r bench.W1Result) []byte {
	var b bytes.Buffer
	first := true
	kv := func(k string, v any) {
		if !first {
			b.WriteString(", ")
		}
		first = false
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		b.Write(kb)
		b.WriteString(": ")
		b.Write(vb)
	}
	div := func(a, c float64) float64 {
		if c == 0 {
			return 0
		}
		v, _ := strconv.ParseFloat(strconv.FormatFloat(a/c, 'f', 3, 64), 64)
		return v
	}
	tok, steps := float64(r.TokensProcessed), float64(r.Steps)
	b.WriteByte('{')
	kv("steps", r.Steps)
	kv("preemptions", r.Preemptions)
	kv("finished", r.Finished)
	kv("admissions", r.Admissions)
	kv("tokens_processed", r.TokensProcessed)
	kv("prefill_tokens", r.PrefillTokens)
	kv("resumed_prefill_tokens", r.ResumedPrefill)
	kv("decode_tokens", r.Decode)
	kv("prefix_query_tokens", r.PrefixQueryTokens)
	kv("prefix_hit_tokens", r.PrefixHitTokens)
	kv("prefix_lookups", r.PrefixLookups)
	kv("admitted_query_tokens", r.AdmittedQueryTokens)
	kv("admitted_hit_tokens", r.AdmittedHitTokens)
	kv("peak_blocks_in_use", r.PeakBlocksInUse)
	kv("peak_running", r.PeakRunning)
	kv("readmitted_same_step", r.ReadmittedSameStep)
	kv("calls.get_computed_blocks", r.CallsGetComputed)
	kv("calls.allocate_slots_decode", r.CallsAllocDecode)
	kv("calls.allocate_slots_admit", r.CallsAllocAdmit)
	kv("calls.free", r.CallsFree)
	kv("calls.append_output_token_ids", r.CallsAppendOutput)
	kv("calls.request_init", r.CallsInit)
	if r.Digest != "" {
		kv("alloc_digest_sha256", r.Digest)
	}
	// Admit does vLLM's get_computed_blocks and allocate_slots in one call;
	// its whole time is reported under allocate_slots_admit. Hashing a newly
	// full block happens inside the decode Append, so append_output_token_ids
	// costs the manager nothing.
	kv("ns.get_computed_blocks", 0)
	kv("ns.allocate_slots_decode", r.NsAllocDecode)
	kv("ns.allocate_slots_admit", r.NsAdmit)
	kv("ns.free", r.NsFree)
	kv("ns.append_output_token_ids", r.NsAppendOutput)
	kv("ns.request_init_prompt_hash", r.NsInit)
	kv("manager_ns", r.ManagerNs)
	kv("manager_ns_excl_prompt_hash", r.ManagerNsExclPromptHash)
	kv("scheduler_ns", r.SchedulerNs)
	kv("total_wall_ns", r.TotalWallNs)
	kv("manager_us_per_step", div(float64(r.ManagerNs)/1e3, steps))
	kv("wall_us_per_step", div(float64(r.TotalWallNs)/1e3, steps))
	kv("manager_ns_per_token", div(float64(r.ManagerNs), tok))
	kv("wall_ns_per_token", div(float64(r.TotalWallNs), tok))
	kv("scheduler_ns_per_token", div(float64(r.SchedulerNs), tok))
	kv("avg_ns_per_call.allocate_slots_decode", div(float64(r.NsAllocDecode), float64(r.CallsAllocDecode)))
	kv("avg_ns_per_call.allocate_slots_admit", div(float64(r.NsAdmit), float64(r.CallsAllocAdmit)))
	kv("avg_ns_per_call.free", div(float64(r.NsFree), float64(r.CallsFree)))
	kv("avg_ns_per_call.request_init", div(float64(r.NsInit), float64(r.CallsInit)))
	kv("timer_overhead_ns_per_call", div(r.TimerOverheadNsPerCall, 1))
	kv("timed_calls", r.TimedCalls)
	kv("manager_ns_per_token_excl_timer", div(r.ManagerNsPerTokenExclTimer(), 1))
	kv("blocks_hashed", r.BlocksHashed)
	kv("probe.sha256_96b_ns", div(r.SHA256Ns, 1))
	kv("sha_floor_ns_per_token", div(r.SHAFloorNsPerToken(), 1))
	kv("manager_vs_sha_floor", div(r.ManagerNsPerTokenExclTimer(), r.SHAFloorNsPerToken()))
	b.WriteByte('}')
	return b.Bytes()
}
