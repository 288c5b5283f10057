package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"time"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/internal/probe"
	"github.com/pagedkv/pagedkv/paged"
)

// W1Config configures a replay of workload W1: the Azure conversation trace
// driven through a block manager by a vLLM-style scheduler (FCFS, whole
// prompts in one step, preemption of the newest running request by
// recompute). The workload is specified in the project's WORKLOADS.md; vLLM
// v1's own KVCacheManager produced its reference counters.
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
	Hasher paged.Hasher
	// Window, when positive, replays W1-H (WORKLOADS.md section 8): the
	// model gets a second KV cache group, a sliding window of Window
	// tokens, beside the full-attention group.
	Window int
	// Chunk, when positive, gives the model a chunked local attention
	// group of Chunk tokens instead (Llama 4's local layers).
	Chunk int
	// StatePages, when positive, gives the model a state group of that
	// many blocks per sequence instead (Mamba, Gated DeltaNet layers).
	StatePages int
	// Groups, when set, are the model's KV cache groups, group 0 full
	// attention; they replace Window, Chunk and StatePages.
	Groups []paged.Group
	// Digest computes the allocation digest (costs a little time).
	Digest bool
	// Trace events, when non-nil, receives every digest line as it happens.
	OnEvent func(line string)
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
	// NsAdmit, NsAllocDecode, NsFree and NsInit are the nanoseconds spent
	// in the admission phase of each step, its decode phase (appends, and
	// the preemptions they force), its output phase (frees of finished
	// requests) and in Add calls (prompt hashing included). Phases are
	// timed as a whole, not call by call, so the timer costs a few hundred
	// nanoseconds per step instead of tens of nanoseconds per call; a
	// phase includes the driver's own bookkeeping between calls (a few
	// nanoseconds per call) and, with Digest, the digest's. NsAppendOutput
	// is always 0: appending an output token costs the manager nothing
	// beyond the decode Append.
	NsAdmit, NsAllocDecode, NsFree, NsInit, NsAppendOutput int64
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

type w1Request struct {
	i         int
	id        paged.SeqID
	ctx, gen  int
	outputs   int
	pending   int32 // the last output token, not yet given a slot
	preempted int   // step of the last preemption
}

// RunW1 replays W1 once.
func RunW1(cfg W1Config) (W1Result, error) {
	cfg = cfg.withDefaults()
	trace := cfg.Trace
	if trace == nil {
		trace = AzureConv()
	}
	if cfg.Requests > len(trace) {
		return W1Result{}, fmt.Errorf("bench: W1 wants %d requests, the trace has %d", cfg.Requests, len(trace))
	}
	mcfg := paged.Config{
		BlockSize:        cfg.BlockSize,
		NumBlocks:        cfg.Blocks,
		MaxModelLen:      cfg.MaxModelLen,
		Policy:           cfg.Policy,
		UnifiedFreeQueue: cfg.Compat == "vllm",
		Hasher:           cfg.Hasher,
	}
	if cfg.Groups != nil {
		mcfg.Groups = cfg.Groups
	} else if g, ok := cfg.group(); ok {
		mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}, g}
	}
	groups := max(1, len(mcfg.Groups))
	switch cfg.Compat {
	case "", "vllm":
	default:
		return W1Result{}, fmt.Errorf("bench: unknown compat mode %q (want vllm or empty)", cfg.Compat)
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
	before := make([]int, groups) // each group's table length before a decode
	if cfg.Digest {
		dig = sha256.New()
	}
	L := cfg.MaxModelLen

	wallStart := time.Now()
	reqs := make([]*w1Request, cfg.Requests)
	prompt := make([]int32, 0, 1024)
	for i := range reqs {
		t := trace[i]
		gen := min(max(t.OutputTokens, 1), L-1)
		ctx := min(max(t.InputTokens, 1), L-gen)
		prompt = prompt[:0]
		for j := range ctx {
			if j < min(ctx, 256) {
				prompt = append(prompt, int32((i%8)*1000+j+1))
			} else {
				prompt = append(prompt, int32((i*7919+j*104729)%32000+1))
			}
		}
		// The hint sizes the request's buffers for its whole life, as a
		// server that knows max_tokens would.
		opts := paged.SeqOptions{MaxTokens: ctx + gen}
		t0 := time.Now()
		id, err := m.Add(prompt, &opts)
		res.NsInit += int64(time.Since(t0))
		res.CallsInit++
		if err != nil {
			return res, fmt.Errorf("bench: W1 request %d: %w", i, err)
		}
		reqs[i] = &w1Request{i: i, id: id, ctx: ctx, gen: gen, preempted: -1}
	}
	waiting := newDeque(reqs)
	running := make([]*w1Request, 0, cfg.MaxNumSeqs)
	type sched struct {
		r      *w1Request
		n      int
		decode bool
	}
	scheduled := make([]sched, 0, cfg.MaxNumSeqs)
	var copies []paged.Copy
	var ckpts []paged.Checkpoint

	for waiting.len() > 0 || len(running) > 0 {
		res.Steps++
		step := res.Steps
		scheduled = scheduled[:0]
		if tracking {
			line = append(strconv.AppendInt(append(line[:0], 'S'), int64(step), 10), '\n')
			emit()
		}
		// (1) Decode, in admission order.
		tDecode := time.Now()
		for idx := 0; idx < len(running); {
			r := running[idx]
			if tracking {
				for g := range groups {
					tb, _ := m.TableGroup(r.id, g)
					before[g] = len(tb)
				}
			}
			self := false
			for {
				err := m.Append(r.id, r.pending)
				res.CallsAllocDecode++
				if err == nil {
					break
				}
				if !errors.Is(err, paged.ErrNoSpace) {
					return res, fmt.Errorf("bench: W1 decode of request %d: %w", r.i, err)
				}
				v := running[len(running)-1]
				running = running[:len(running)-1]
				err = m.Preempt(v.id)
				if err == nil {
					// The preempted request keeps its newest token for recompute.
					err = m.Append(v.id, v.pending)
				}
				res.CallsFree++
				if err != nil {
					return res, fmt.Errorf("bench: W1 preemption of request %d: %w", v.i, err)
				}
				v.preempted = step
				res.Preemptions++
				waiting.pushFront(v)
				if tracking {
					line = append(strconv.AppendInt(append(line[:0], 'P'), int64(v.i), 10), '\n')
					emit()
				}
				if v == r {
					self = true
					break
				}
			}
			if self {
				break
			}
			if tracking {
				line = append(strconv.AppendInt(append(line[:0], 'D'), int64(r.i), 10), ':')
				for g := range groups {
					if g > 0 {
						line = append(line, ';')
					}
					tb, _ := m.TableGroup(r.id, g)
					line = appendIDs(line, tb[before[g]:])
				}
				line = append(line, '\n')
				emit()
			}
			scheduled = append(scheduled, sched{r, 1, true})
			idx++
		}
		tAdmit := time.Now()
		res.NsAllocDecode += int64(tAdmit.Sub(tDecode))
		// (2) Admit, FCFS, whole prompts.
		for waiting.len() > 0 && len(running) < cfg.MaxNumSeqs {
			r := waiting.front()
			n, _ := m.Len(r.id)
			cached, err := m.Admit(r.id)
			res.CallsGetComputed++
			res.CallsAllocAdmit++
			if errors.Is(err, paged.ErrNoSpace) {
				break
			}
			if err != nil {
				return res, fmt.Errorf("bench: W1 admission of request %d: %w", r.i, err)
			}
			waiting.popFront()
			running = append(running, r)
			res.Admissions++
			res.AdmittedQueryTokens += int64(n)
			res.AdmittedHitTokens += int64(cached)
			res.PrefillTokens += int64(n - cached)
			if r.outputs > 0 {
				res.ResumedPrefill += int64(n - cached)
			}
			if r.preempted == step {
				res.ReadmittedSameStep++
			}
			if tracking {
				// One id list per group, joined by ';' (WORKLOADS.md
				// section 8); with one group this is W1's line.
				hits := cached / cfg.BlockSize
				line = append(strconv.AppendInt(append(line[:0], 'A'), int64(r.i), 10), ':')
				for part := range 2 {
					if part == 1 {
						line = append(line, '|')
					}
					for g := range groups {
						if g > 0 {
							line = append(line, ';')
						}
						tb, _ := m.TableGroup(r.id, g)
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
				line = append(line, '\n')
				emit()
			}
			scheduled = append(scheduled, sched{r, n - cached, false})
		}
		// The step's directives, as a server takes them with its batch.
		copies = m.TakeCopies(copies[:0])
		ckpts = m.TakeCheckpoints(ckpts[:0])
		tOutput := time.Now()
		res.NsAdmit += int64(tOutput.Sub(tAdmit))
		res.PeakRunning = max(res.PeakRunning, len(running))
		// (3) Model output: one made-up token per scheduled request.
		finished := false
		for _, sc := range scheduled {
			r := sc.r
			if sc.decode {
				res.Decode++
			}
			r.pending = int32((r.i*31+r.outputs)%32000 + 1)
			r.outputs++
			res.CallsAppendOutput++
			if r.ctx+r.outputs >= L || r.outputs >= r.gen {
				err := m.Free(r.id)
				res.CallsFree++
				if err != nil {
					return res, fmt.Errorf("bench: W1 finish of request %d: %w", r.i, err)
				}
				r.id = 0
				res.Finished++
				finished = true
				if tracking {
					line = append(strconv.AppendInt(append(line[:0], 'F'), int64(r.i), 10), '\n')
					emit()
				}
			}
		}
		res.NsFree += int64(time.Since(tOutput))
		if finished {
			running = slices.DeleteFunc(running, func(r *w1Request) bool { return r.id == 0 })
		}
	}
	res.TotalWallNs = int64(time.Since(wallStart))
	st := m.Stats()
	res.PrefixQueryTokens, res.PrefixHitTokens, res.PrefixLookups = st.PrefixQueryTokens, st.PrefixHitTokens, st.PrefixQueries
	res.PeakBlocksInUse = st.PeakUsedBlocks
	res.TokensProcessed = res.PrefillTokens + res.Decode
	res.ManagerNsExclPromptHash = res.NsAdmit + res.NsAllocDecode + res.NsFree + res.NsAppendOutput
	res.ManagerNs = res.ManagerNsExclPromptHash + res.NsInit
	res.TimedCalls = res.CallsInit + 3*int64(res.Steps)
	res.TimerOverheadNsPerCall = timerOverhead()
	res.BlocksHashed = st.BlocksHashed
	res.SHA256Ns = probe.SHA256()
	if dig != nil {
		res.Digest = hex.EncodeToString(dig.Sum(nil))
	}
	return res, nil
}

// group returns the second KV cache group of a W1-H replay, if any.
func (cfg W1Config) group() (paged.Group, bool) {
	switch {
	case cfg.Window > 0:
		return paged.Group{Kind: paged.SlidingWindow, Window: cfg.Window}, true
	case cfg.Chunk > 0:
		return paged.Group{Kind: paged.ChunkedLocal, Chunk: cfg.Chunk}, true
	case cfg.StatePages > 0:
		return paged.Group{Kind: paged.State, Pages: cfg.StatePages}, true
	}
	return paged.Group{}, false
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

// deque is the waiting queue: FCFS, with preempted requests pushed back at
// the front.
type deque struct {
	buf  []*w1Request
	head int
}

func newDeque(init []*w1Request) *deque {
	// Leave room at the front for preempted requests.
	buf := make([]*w1Request, 256+len(init))
	copy(buf[256:], init)
	return &deque{buf: buf, head: 256}
}

func (d *deque) len() int          { return len(d.buf) - d.head }
func (d *deque) front() *w1Request { return d.buf[d.head] }
func (d *deque) popFront()         { d.buf[d.head] = nil; d.head++ }
func (d *deque) pushFront(r *w1Request) {
	if d.head == 0 {
		grown := make([]*w1Request, len(d.buf)+256)
		copy(grown[256:], d.buf)
		d.buf, d.head = grown, 256
	}
	d.head--
	d.buf[d.head] = r
}
