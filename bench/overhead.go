package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/internal/probe"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// ErrW1Invalid is wrapped by RunW1's refusals of a W1Config (the manager's
// and the scheduler's refusals wrap their own packages' sentinels).
var ErrW1Invalid = errors.New("bench: w1: invalid configuration")

// W1Config configures a replay of workload W1: the Azure conversation trace
// driven through a block manager by a vLLM-style scheduler (FCFS, whole
// prompts in one step, preemption of the newest running request by
// recompute). The workload is specified in docs/workloads.md; vLLM v1's
// own KVCacheManager produced its reference counters.
type W1Config struct {
	// Trace is the request list; nil means the embedded Azure trace.
	Trace []Request
	// Requests is how many leading requests to replay. Default 2000.
	Requests int
	// Blocks counts the pool's blocks, the null block included. Default 8192.
	Blocks int
	// BlockSize in tokens. Default 16.
	BlockSize int
	// MaxNumSeqs bounds the running requests. Default 256.
	MaxNumSeqs int
	// MaxModelLen caps a request's tokens. Default 16384.
	MaxModelLen int
	// Compat selects the manager configuration: "vllm" for one LRU queue
	// over every unreferenced block (vLLM v1's free queue), "" for the
	// library's default (free list first, then the eviction policy).
	Compat string
	// Policy overrides the eviction policy (default LRU).
	Policy eviction.Factory
	// Hasher overrides the block hasher (default SHA-256, as vLLM). The
	// hashes do not change any decision as long as they do not collide.
	// A Hasher may keep scratch state: runs at once need their own.
	Hasher paged.Hasher
	// Window, when positive, replays W1-H (docs/workloads.md section 8): the
	// model gets a second KV cache group, a sliding window of Window
	// tokens, beside the full-attention group.
	Window int
	// Chunk, when positive, gives the model a chunked local attention
	// group of Chunk tokens (Llama 4's local layers).
	Chunk int
	// StatePages, when positive, gives the model a state group of that
	// many blocks per sequence (Mamba, Gated DeltaNet layers).
	//
	// Window, Chunk and StatePages combine: each positive one adds its
	// group after the full-attention group, in this order. The default
	// mode takes any combination; the vLLM-compatible mode (Compat
	// "vllm") one of them, as vLLM v1 at f20c3b0, and RunW1 returns
	// paged.ErrInvalid for more.
	StatePages int
	// Groups, when set, are the model's KV cache groups, group 0 full
	// attention; they replace Window, Chunk and StatePages.
	Groups []paged.Group
	// Digest computes the allocation digest (costs a little time).
	Digest bool
	// Trace events, when non-nil, receives every digest line as it happens.
	OnEvent func(line string)
	// CountersOnly skips the manager-alone replay: the counters and the
	// digest are unchanged, the manager's timings (NsAdmit to ManagerNs)
	// are 0. For studies that read only the decisions.
	CountersOnly bool
	// NoReserve makes the managers without a reserve (paged.Reserve). By
	// default each is made with records for Requests sequences and hash
	// and table buffers for Requests sequences of MaxModelLen tokens (the
	// configuration's bounds, not the trace's lengths), as a server
	// reserves for the requests it may hold: the memory is mapped in
	// paged.New, outside the timed calls, instead of page by page in the first Add and Admit
	// calls of a fresh process. It changes no decision.
	NoReserve bool
}

// W1Result holds the counters and timings of one replay. JSON keys follow
// the reference replay's.
type W1Result struct {
	// Steps is the number of engine steps run, Preemptions the number of
	// requests preempted, Finished the requests completed and Admissions
	// the successful admissions, resumptions after preemption included.
	Steps, Preemptions, Finished, Admissions int
	// TokensProcessed is PrefillTokens + Decode: PrefillTokens are the
	// prompt tokens computed at admission (prefix hits excluded),
	// ResumedPrefill the part of them recomputed by preempted requests, and
	// Decode the tokens decoded, one per running request per step.
	TokensProcessed, PrefillTokens, ResumedPrefill, Decode int64
	// PrefixQueryTokens and PrefixHitTokens are the tokens queried and found
	// cached over PrefixLookups prefix lookups: every admission attempt,
	// failed ones included (paged.Stats).
	PrefixQueryTokens, PrefixHitTokens, PrefixLookups uint64
	// AdmittedQueryTokens and AdmittedHitTokens are the same token counts
	// over successful admissions only.
	AdmittedQueryTokens, AdmittedHitTokens int64
	// PeakBlocksInUse is the most blocks referenced at once, PeakRunning the
	// most requests running at once, and ReadmittedSameStep the admissions
	// of a request preempted earlier in the same step.
	PeakBlocksInUse, PeakRunning, ReadmittedSameStep int
	// CallsGetComputed and CallsAllocAdmit count admission attempts (one
	// Admit call does vLLM's get_computed_blocks and allocate_slots);
	// CallsAllocDecode counts decode Append calls, retries included.
	CallsGetComputed, CallsAllocDecode, CallsAllocAdmit int64
	// CallsFree counts Free and Preempt calls, CallsAppendOutput the output
	// tokens produced and CallsInit the requests added.
	CallsFree, CallsAppendOutput, CallsInit int64
	// Digest is the hex SHA-256 of the allocation event lines, "" unless
	// W1Config.Digest.
	Digest string
	// NsAdmit, NsAllocDecode, NsFree and NsInit are the nanoseconds the
	// manager spends in the admission phase of each step, its decode phase
	// (appends, and the preemptions they force), its output phase (frees
	// of finished requests) and in the Submit calls' Add (prompt hashing
	// included). They are measured on the manager alone: the calls the
	// scheduler made are recorded and given, in order, to a second manager
	// by a loop that does nothing else (see replayW1), as the reference
	// replay times vLLM's manager calls and not its driver. Phases are
	// timed as a whole, not call by call, so the timer costs a few hundred
	// nanoseconds per step instead of tens of nanoseconds per call.
	// NsAppendOutput is always 0: appending an output token costs the
	// manager nothing beyond the decode Append.
	NsAdmit, NsAllocDecode, NsFree, NsInit, NsAppendOutput int64
	// SchedNsAdmit, SchedNsAllocDecode, SchedNsFree and SchedNsInit are
	// the same phases timed in the replay through sched.Scheduler (Submit
	// for Add): the manager's calls and the scheduler's bookkeeping
	// between them (and, with Digest, the digest's), without the driver's
	// work between phases. SchedulerNs is their sum.
	SchedNsAdmit, SchedNsAllocDecode, SchedNsFree, SchedNsInit, SchedulerNs int64
	// ManagerNs is the nanoseconds spent in all timed manager calls,
	// ManagerNsExclPromptHash the same without NsInit, and TotalWallNs the
	// wall time of the whole replay in nanoseconds.
	ManagerNs, ManagerNsExclPromptHash, TotalWallNs int64
	// TimerOverheadNsPerCall is the estimated cost in nanoseconds of timing
	// one call (a time.Now/time.Since pair).
	TimerOverheadNsPerCall float64
	// TimedCalls is the number of timed intervals: one per Add call and
	// three per step.
	TimedCalls int64
	// BlocksHashed counts the block hashes the manager computed
	// (paged.Stats.BlocksHashed).
	BlocksHashed uint64
	// SHA256Ns is a machine probe measured in the same run: nanoseconds
	// for one SHA-256 of 96 bytes, the input of one block hash (a 32-byte
	// parent and 16 four-byte tokens). BlocksHashed x SHA256Ns is the
	// least time any manager that hashes like vLLM can spend.
	SHA256Ns float64
}

// SHAFloorNsPerToken is the hashing floor per processed token:
// BlocksHashed x SHA256Ns / TokensProcessed.
func (r W1Result) SHAFloorNsPerToken() float64 {
	if r.TokensProcessed == 0 {
		return 0
	}
	return float64(r.BlocksHashed) * r.SHA256Ns / float64(r.TokensProcessed)
}

// ManagerNsPerTokenExclTimer is the manager time per processed token with
// the estimated cost of the timer calls taken out.
func (r W1Result) ManagerNsPerTokenExclTimer() float64 {
	if r.TokensProcessed == 0 {
		return 0
	}
	return (float64(r.ManagerNs) - r.TimerOverheadNsPerCall*float64(r.TimedCalls)) / float64(r.TokensProcessed)
}

// w1Request is what W1's driver keeps beside the scheduler's request: the
// trace index that makes its tokens and the step it was last preempted.
type w1Request struct {
	i         int
	preempted int64
}

// RunW1 replays W1 once, through a sched.Scheduler configured as W1's loop
// (docs/workloads.md section 4): FCFS, no token budget, whole prompts, recompute
// preemption of the newest running request, admission even in a step that
// preempted, and Admit called directly so that refused lookups count.
// A negative Requests, Window, Chunk or StatePages is ErrW1Invalid.
func RunW1(cfg W1Config) (W1Result, error) {
	cfg = cfg.withDefaults()
	trace := cfg.Trace
	if trace == nil {
		trace = AzureConv()
	}
	for _, v := range []struct {
		name string
		val  int
	}{{"Requests", cfg.Requests}, {"Window", cfg.Window}, {"Chunk", cfg.Chunk}, {"StatePages", cfg.StatePages}} {
		if v.val < 0 {
			return W1Result{}, fmt.Errorf("%w: W1Config.%s %d is negative", ErrW1Invalid, v.name, v.val)
		}
	}
	if cfg.Requests > w1MaxRequests {
		return W1Result{}, fmt.Errorf("%w: W1Config.Requests: %d requests, want 0 (2000) to %d", ErrW1Invalid, cfg.Requests, w1MaxRequests)
	}
	if cfg.Requests > len(trace) {
		return W1Result{}, fmt.Errorf("%w: W1Config.Requests: %d requests, but the trace has %d", ErrW1Invalid, cfg.Requests, len(trace))
	}
	mcfg := paged.Config{
		BlockSize:        cfg.BlockSize,
		NumBlocks:        cfg.Blocks,
		MaxModelLen:      cfg.MaxModelLen,
		Policy:           cfg.Policy,
		UnifiedFreeQueue: cfg.Compat == "vllm",
		Hasher:           cfg.Hasher,
	}
	if !cfg.NoReserve {
		// Sized from the configuration alone, as a server can size it:
		// records for every request the replay holds, buffers for each at
		// the longest a request may grow (its hint is at most that), not
		// the trace's own lengths.
		mcfg.Reserve.Sequences = cfg.Requests
		mcfg.Reserve.Tokens = min(cfg.Requests*cfg.MaxModelLen, paged.MaxReserveTokens)
	}
	if cfg.Groups != nil {
		mcfg.Groups = cfg.Groups
	} else if gs := cfg.groups(); len(gs) > 1 {
		mcfg.Groups = gs
	}
	groups := max(1, len(mcfg.Groups))
	switch cfg.Compat {
	case "", "vllm":
	default:
		return W1Result{}, fmt.Errorf("%w: W1Config.Compat: unknown compat mode %q (want vllm or empty)", ErrW1Invalid, cfg.Compat)
	}
	m, err := paged.New(mcfg)
	if err != nil {
		return W1Result{}, err
	}
	var res W1Result
	var dig hash.Hash
	var line []byte
	emit := func() {
		if dig != nil {
			dig.Write(line)
		}
		if cfg.OnEvent != nil {
			cfg.OnEvent(string(line))
		}
	}
	tracking := cfg.Digest || cfg.OnEvent != nil
	if cfg.Digest {
		dig = sha256.New()
	}
	L := cfg.MaxModelLen
	reqs := make([]w1Request, cfg.Requests)

	// The phases are timed as wholes from the scheduler's phase hook: the
	// decode phase (appends and the preemptions they force), admission
	// (with the step's directives taken), and the output phase (Update:
	// the frees of finished requests). The driver's own work between them
	// (the model's made-up tokens, the digest's lines when asked for) is
	// left out, as the reference replay leaves out its driver. These
	// times include the scheduler's bookkeeping; the manager's own come
	// from replaying the calls recorded here (replayW1).
	var tDecode, tAdmit, tOutput time.Time
	var step int64
	var s *sched.Scheduler
	var rec *w1Recorder
	if !cfg.CountersOnly {
		rec = &w1Recorder{reqs: make([]*sched.Request, cfg.Requests)}
		ops := 16 * cfg.Requests
		for _, t := range trace[:cfg.Requests] {
			ops += 2 * max(t.OutputTokens, 1)
		}
		rec.ops = make([]w1Op, 0, ops)
	}
	hooks := sched.Hooks{Phase: func(p sched.Phase) {
		rec.phase(p)
		switch p {
		case sched.PhaseDecode:
			tDecode = time.Now()
		case sched.PhaseAdmit:
			tAdmit = time.Now()
			res.SchedNsAllocDecode += int64(tAdmit.Sub(tDecode))
		case sched.PhaseScheduled:
			// The admission phase ends once the step's directives are
			// taken, below.
			rec.scheduledEnd(s, cfg.MaxNumSeqs)
		case sched.PhaseOutput:
			tOutput = time.Now()
		case sched.PhaseDone:
			res.SchedNsFree += int64(time.Since(tOutput))
		}
	}}
	hooks.Scheduled = rec.scheduled
	hooks.Preempted = func(r *sched.Request, _ int, _ bool) {
		reqs[r.ID()-1].preempted = step
		rec.preempted(int32(r.ID() - 1))
	}
	hooks.Finished = func(r *sched.Request, _ int) { rec.finished(int32(r.ID() - 1)) }
	if tracking {
		// had holds, per request and KV cache group, the blocks its table
		// had after its last allocation: a decode's line lists the new ones.
		had := make([]int, len(reqs)*groups)
		hooks.Scheduled = func(sc *sched.Scheduled) {
			rec.scheduled(sc)
			w := &reqs[sc.Request.ID()-1]
			// One id list per KV cache group, joined by ';' (docs/workloads.md
			// section 8); with one group this is W1's line.
			if sc.Admitted {
				hits := sc.Cached / cfg.BlockSize
				line = append(strconv.AppendInt(append(line[:0], 'A'), int64(w.i), 10), ':')
				for part := range 2 {
					if part == 1 {
						line = append(line, '|')
					}
					for g := range groups {
						if g > 0 {
							line = append(line, ';')
						}
						tb, _ := m.TableGroup(sc.Seq, g)
						h := hits
						if g < len(mcfg.Groups) && mcfg.Groups[g].Kind == paged.State {
							h = 0 // a state hit is copied into new pages
						}
						if part == 0 {
							line = appendIDs(line, tb[:h])
						} else {
							line = appendIDs(line, tb[h:])
						}
					}
				}
			} else {
				line = append(strconv.AppendInt(append(line[:0], 'D'), int64(w.i), 10), ':')
				for g := range groups {
					if g > 0 {
						line = append(line, ';')
					}
					tb, _ := m.TableGroup(sc.Seq, g)
					line = appendIDs(line, tb[had[w.i*groups+g]:])
				}
			}
			line = append(line, '\n')
			emit()
			for g := range groups {
				tb, _ := m.TableGroup(sc.Seq, g)
				had[w.i*groups+g] = len(tb)
			}
		}
		hooks.Preempted = func(r *sched.Request, _ int, _ bool) {
			w := &reqs[r.ID()-1]
			w.preempted = step
			rec.preempted(int32(r.ID() - 1))
			line = append(strconv.AppendInt(append(line[:0], 'P'), int64(w.i), 10), '\n')
			emit()
		}
		hooks.Finished = func(r *sched.Request, _ int) {
			rec.finished(int32(r.ID() - 1))
			line = append(strconv.AppendInt(append(line[:0], 'F'), int64(r.ID()-1), 10), '\n')
			emit()
		}
	}
	// W1 cannot go on without a request: one that can never run here
	// ends the replay, as it did before the scheduler aborted such
	// requests and went on.
	var aborted error
	hooks.Aborted = func(_ *sched.Request, err error) { aborted = err }
	s, err = sched.New(m, sched.Config{
		MaxRunning:           cfg.MaxNumSeqs,
		AdmitAfterPreemption: true,
		Hooks:                hooks,
	})
	if err != nil {
		return W1Result{}, err
	}

	wallStart := time.Now()
	prompt := make([]int32, 0, 1024)
	for i := range reqs {
		var gen int
		prompt, gen = w1Prompt(prompt[:0], trace, i, L)
		// The scheduler's MaxTokens hint sizes the request's buffers for
		// its whole life (prompt plus outputs), as a server that knows
		// max_tokens would.
		t0 := time.Now()
		r, err := s.Submit(prompt, sched.Options{MaxTokens: gen})
		res.SchedNsInit += int64(time.Since(t0))
		res.CallsInit++
		if err != nil {
			return res, fmt.Errorf("bench: W1 request %d: %w", i, err)
		}
		reqs[i] = w1Request{i: i, preempted: -1}
		if rec != nil {
			rec.reqs[i] = r
		}
	}
	var copies []paged.Copy
	var ckpts []paged.Checkpoint

	var tokens []int32
	for s.Busy() {
		step++
		if tracking {
			line = append(strconv.AppendInt(append(line[:0], 'S'), step, 10), '\n')
			emit()
		}
		st, err := s.Schedule()
		if err != nil {
			return res, fmt.Errorf("bench: W1 step %d: %w", step, err)
		}
		// The step's directives, as a server takes them with its batch.
		copies = m.TakeCopies(copies[:0])
		ckpts = m.TakeCheckpoints(ckpts[:0])
		res.SchedNsAdmit += int64(time.Since(tAdmit))
		rec.add(opTake, 0, 0)
		if aborted != nil {
			return res, fmt.Errorf("bench: W1 step %d: %w", step, aborted)
		}
		// The model: one made-up token per scheduled request.
		tokens = tokens[:0]
		for _, sc := range st.Scheduled {
			i := int(sc.Request.ID() - 1)
			if sc.Admitted && reqs[i].preempted == step {
				res.ReadmittedSameStep++
			}
			tokens = append(tokens, int32((i*31+sc.Generated)%32000+1))
		}
		if err := s.Update(tokens); err != nil {
			return res, fmt.Errorf("bench: W1 step %d: %w", step, err)
		}
	}
	res.TotalWallNs = int64(time.Since(wallStart))
	res.SchedulerNs = res.SchedNsAdmit + res.SchedNsAllocDecode + res.SchedNsFree + res.SchedNsInit
	ss := s.Stats()
	res.Steps = int(ss.Steps)
	res.Preemptions = int(ss.Preemptions)
	res.Finished = int(ss.Finished)
	res.Admissions = int(ss.Admissions)
	res.PrefillTokens, res.ResumedPrefill, res.Decode = ss.PrefillTokens, ss.ResumedTokens, ss.DecodeTokens
	res.AdmittedQueryTokens = ss.PrefillTokens + ss.CachedTokens
	res.AdmittedHitTokens = ss.CachedTokens
	res.PeakRunning = ss.PeakRunning
	res.CallsGetComputed, res.CallsAllocAdmit = ss.AdmitCalls, ss.AdmitCalls
	res.CallsAllocDecode = ss.AppendCalls
	res.CallsFree = ss.Preemptions + ss.Finished
	res.CallsAppendOutput = ss.Outputs
	st := m.Stats()
	res.PrefixQueryTokens, res.PrefixHitTokens, res.PrefixLookups = st.PrefixQueryTokens, st.PrefixHitTokens, st.PrefixQueries
	res.PeakBlocksInUse = st.PeakUsedBlocks
	res.TokensProcessed = res.PrefillTokens + res.Decode
	res.TimedCalls = res.CallsInit + 3*int64(res.Steps)
	res.TimerOverheadNsPerCall = timerOverhead()
	res.BlocksHashed = st.BlocksHashed
	if !cfg.CountersOnly {
		if w1Replays != nil {
			// A benchmark of the manager alone: it replays the recording
			// as often as it likes, each time into a fresh result.
			w1Replays(func() (W1Result, error) {
				r := res
				err := replayW1(mcfg, cfg, trace, rec, st, ss, &r)
				return r, err
			})
		}
		if err := replayW1(mcfg, cfg, trace, rec, st, ss, &res); err != nil {
			return res, err
		}
	}
	res.ManagerNsExclPromptHash = res.NsAdmit + res.NsAllocDecode + res.NsFree + res.NsAppendOutput
	res.ManagerNs = res.ManagerNsExclPromptHash + res.NsInit
	res.SHA256Ns = probe.SHA256()
	if dig != nil {
		res.Digest = hex.EncodeToString(dig.Sum(nil))
	}
	return res, nil
}

// w1Prompt appends request i's prompt to dst (docs/workloads.md section 3: the
// first 256 tokens shared by every eighth request, the rest its own) and
// returns it with the request's output tokens, both capped by L.
func w1Prompt(dst []int32, trace []Request, i, L int) ([]int32, int) {
	ctx, gen := w1Lens(trace, i, L)
	for j := range ctx {
		if j < min(ctx, 256) {
			dst = append(dst, int32((i%8)*1000+j+1))
		} else {
			dst = append(dst, int32((i*7919+j*104729)%32000+1))
		}
	}
	return dst, gen
}

// w1Lens returns the lengths of request i's prompt and output, capped by L.
func w1Lens(trace []Request, i, L int) (ctx, gen int) {
	t := trace[i]
	gen = min(max(t.OutputTokens, 1), L-1)
	return min(max(t.InputTokens, 1), L-gen), gen
}

// groups returns the KV cache groups Window, Chunk and StatePages make:
// the full-attention group and one group per positive field. With none it
// is the full-attention group alone (W1).
func (cfg W1Config) groups() []paged.Group {
	gs := []paged.Group{{Kind: paged.FullAttention}}
	if cfg.Window > 0 {
		gs = append(gs, paged.Group{Kind: paged.SlidingWindow, Window: cfg.Window})
	}
	if cfg.Chunk > 0 {
		gs = append(gs, paged.Group{Kind: paged.ChunkedLocal, Chunk: cfg.Chunk})
	}
	if cfg.StatePages > 0 {
		gs = append(gs, paged.Group{Kind: paged.State, Pages: cfg.StatePages})
	}
	return gs
}

func (cfg W1Config) withDefaults() W1Config {
	if cfg.Requests == 0 {
		cfg.Requests = 2000
	}
	if cfg.Blocks == 0 {
		cfg.Blocks = 8192
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 16
	}
	if cfg.MaxNumSeqs == 0 {
		cfg.MaxNumSeqs = 256
	}
	if cfg.MaxModelLen == 0 {
		cfg.MaxModelLen = 16384
	}
	return cfg
}

func appendIDs[T ~int32](dst []byte, ids []T) []byte {
	for k, id := range ids {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, int64(id), 10)
	}
	return dst
}

// timerOverhead estimates the cost of one time.Now/time.Since pair.
func timerOverhead() float64 {
	const n = 20000
	var sink int64
	t := time.Now()
	for range n {
		t0 := time.Now()
		sink += int64(time.Since(t0))
	}
	_ = sink
	return float64(time.Since(t)) / n
}
