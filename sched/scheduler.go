package sched

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
)

// Scheduler is a continuous-batching scheduler over one paged.Manager. See
// the package documentation for the step it runs.
type Scheduler struct {
	cfg Config
	m   *paged.Manager

	waiting queue
	// running holds the sequences with device blocks in admission order,
	// which keeps the rows of a persistent batch in place.
	running []*entry
	// reserved counts the samples that running prompts will fork.
	reserved int
	// forkKids is fork's scratch: the children made so far.
	forkKids []paged.SeqID
	nextID   uint64

	maxLen int // the manager's MaxModelLen
	// period is a length after which every KV cache group's
	// PrefillFloor is at least what it was (lengthFloor): the block size,
	// and every chunked-local group's chunk, divide it; 0 when it exceeds
	// MaxModelLen.
	period int
	// forkPages are the blocks a Fork takes at once: a sequence's pages of
	// every State group.
	forkPages int
	// growGroups counts the full attention groups, whose blocks grow with
	// every token (forkRoom).
	growGroups int
	// wm is the blocks the manager's watermark keeps from admissions
	// (paged's watermark: ceil(Watermark x usable blocks)).
	wm int
	// locals are the sliding-window and chunked-local groups, whose blocks
	// grow with a prompt's chunks until they release what no query reads
	// (forkRoom).
	locals []localGroup

	step   Step
	batch  []paged.Scheduled
	inStep bool
	// scheduling: Schedule is running (a hook called from it is on the
	// stack), when Cancel and Update are refused.
	scheduling bool
	dirty      bool // some running entry finished or was cancelled

	// beams counts the beam searches not done: while it is 0 the decode
	// loop never looks for beam groups.
	beams int
	// Scratch of the beam-group operations, indexed by beam.
	beamOld  [MaxSamples]paged.SeqID
	beamNew  [MaxSamples]paged.SeqID
	beamUsed [MaxSamples]bool
	beamFork [MaxSamples]bool
	beamBuf  []*entry
	beamIDs  []paged.SeqID
	// grouped counts the swapped-out beams queued through another beam.
	grouped int
	// proposed are the entries Propose gave drafts since the last
	// Schedule, which uses or drops them all.
	proposed []*entry

	st Stats
}

// Stats are the scheduler's counters since New.
type Stats struct {
	// Steps counts Schedule calls that had work.
	Steps int64
	// Submitted, Finished and Cancelled count requests.
	Submitted, Finished, Cancelled int64
	// Admissions counts sequences admitted (or swapped in), resumptions
	// included; Resumed counts those that had run before.
	Admissions, Resumed int64
	// AdmitCalls counts Admit calls, refused ones included (vLLM's
	// get_computed_blocks calls when CheckBeforeAdmit is off).
	AdmitCalls int64
	// AppendCalls counts the appends that gave running sequences their
	// step's tokens, the refused ones that forced a preemption included.
	AppendCalls int64
	// Preemptions counts sequences preempted, SwappedOut those of them
	// that went to the host tier.
	Preemptions, SwappedOut int64
	// Forks counts the sample sequences forked from prompts, and the
	// beams forked from the parents UpdateBeams chose.
	Forks int64
	// Restarts counts beam searches preempted by recompute, which start
	// again from their prompt (each of their beams also counts in
	// Preemptions); Aborted the requests ended because they can never
	// proceed in this pool (Hooks.Aborted). A sequence aborted because it
	// cannot grow even alone also counts in Preemptions, as every beam of
	// an aborted beam search does.
	Restarts, Aborted int64
	// PrefillTokens are the prompt (or resumed) tokens computed, prefix
	// hits excluded; ResumedTokens the part of them recomputed after a
	// recompute preemption by samples that had produced output (their
	// prompt, outputs and pending token; a prompt preempted before its
	// first output, between chunks, sent back at its fork or restarted
	// as a beam search, counts its recompute in PrefillTokens only);
	// DecodeTokens one per decoding sequence per step, plus the drafts it
	// verifies;
	// CachedTokens the prefix hits of admissions; Outputs the tokens
	// sampled.
	PrefillTokens, ResumedTokens, DecodeTokens, CachedTokens, Outputs int64
	// PeakRunning is the most sequences running after a step's schedule.
	PeakRunning int
	// DraftsProposed counts the draft tokens Propose took (see
	// "Speculative decoding" in docs/sched.md). Each ends in one of the
	// other three once the step that would verify it is updated:
	// DraftsAccepted became outputs; DraftsRejected were verified and
	// are not outputs (rejected by the verdict, or accepted after the
	// sample's stop token or last output); DraftsDropped were never
	// verified (no budget, pool or MaxModelLen room, withdrawn when the
	// pool ran out, the sample not scheduled or preempted, the request
	// ended first, a newer proposal, or refused by the manager).
	DraftsProposed, DraftsAccepted, DraftsRejected, DraftsDropped int64
}

// New returns a scheduler over m. The scheduler owns the sequences it
// creates; other sequences of m are left alone but share its pool.
func New(m *paged.Manager, cfg Config) (*Scheduler, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil manager", ErrInvalid)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Preemption == Swap && m.Config().HostBlocks == 0 {
		return nil, fmt.Errorf("%w: swap preemption needs a manager with a host tier (paged.Config.HostBlocks)", ErrInvalid)
	}
	mcfg := m.Config()
	s := &Scheduler{cfg: cfg, m: m, maxLen: mcfg.MaxModelLen, period: m.BlockSize()}
	s.growGroups = 1 // no Groups: one full attention group
	if len(mcfg.Groups) > 0 {
		s.growGroups = 0
	}
	for i, g := range mcfg.Groups {
		switch g.Kind {
		case paged.State:
			s.forkPages += g.Pages
		case paged.FullAttention:
			s.growGroups++
		case paged.SlidingWindow, paged.ChunkedLocal:
			s.locals = append(s.locals, localGroup{g: i, kind: g.Kind, span: max(g.Window, g.Chunk), keep: !mcfg.DisablePrefixCaching})
			if g.Kind == paged.ChunkedLocal && s.period > 0 {
				s.period = lcm(s.period, g.Chunk, s.maxLen)
			}
		}
	}
	s.waiting.prio = cfg.Policy == Priority
	s.wm = int(math.Ceil(mcfg.Watermark * float64(m.Stats().UsableBlocks)))
	return s, nil
}

// Manager returns the scheduler's manager, to read (BuildBatch, Stats,
// DrainEvents). Changing its sequences behind the scheduler's back breaks
// the scheduler.
func (s *Scheduler) Manager() *paged.Manager { return s.m }

// Config returns the configuration with defaults filled in.
func (s *Scheduler) Config() Config { return s.cfg }

// Stats returns the counters. It allocates nothing.
func (s *Scheduler) Stats() Stats { return s.st }

// Busy reports whether any request is waiting or running.
func (s *Scheduler) Busy() bool { return len(s.running) > 0 || s.waiting.len() > 0 }

// Running returns the number of running sequences.
//
// A request cancelled between Schedule and Update stops counting at once,
// though its entries leave the list only at the Update.
func (s *Scheduler) Running() int {
	n := len(s.running)
	if s.dirty {
		for _, e := range s.running {
			if e.where == inDone {
				n--
			}
		}
	}
	return n
}

// Waiting returns the number of waiting sequences (preempted ones
// included).
func (s *Scheduler) Waiting() int { return s.waiting.len() + s.grouped }

// Next returns the sequence at the head of the waiting queue, the next to
// be admitted: its request and sample index; ok is false when nothing
// waits.
func (s *Scheduler) Next() (r *Request, sample int, ok bool) {
	if s.waiting.len() == 0 {
		return nil, 0, false
	}
	e := s.waiting.peek()
	return e.req, e.idx, true
}

// RunningSeqs calls f for every running sequence in admission order with
// its request, sample index, manager handle and length in tokens (as the
// manager holds it: after Schedule, the step's new tokens included). f must
// not call the scheduler or change the manager. A nil f does nothing.
func (s *Scheduler) RunningSeqs(f func(r *Request, sample int, seq paged.SeqID, tokens int)) {
	if f == nil {
		return
	}
	for _, e := range s.running {
		if e.where == inRunning {
			f(e.req, e.idx, e.seq, e.length)
		}
	}
}

// Submit validates a request and queues it. The prompt is copied, and its
// full blocks are hashed now (paged.Manager.Add), off the step. A refused
// request changes nothing: ErrInvalid, ErrNever, or, when the manager's
// paged.Config.MaxWaiting sequences wait already, an error wrapping
// paged.ErrNoSpace (back-pressure: refuse the client or retry later).
//
// ErrNever is a request that can never run here, on every layout of KV
// cache groups: longer than MaxModelLen; one whose sample, at some length
// it may have to be admitted at (its prompt, whole or with chunked
// prefill in chunks, or after a preemption any length up to the prompt
// and every output but the last, recomputed or swapped in), holds more
// blocks than an admission may take beside the watermark, in every cache
// state (paged.Manager.PrefillFloor: every block of a full-attention
// group, a State group's pages, none for a Shared group, the blocks a
// window or chunked-local group reads in that step); one whose samples
// could never fork beside their prompt (State groups); one whose
// recompute exceeds MaxBatchTokens without chunked prefill. The bound is
// exact for layouts of full-attention, State and Shared groups, and for
// window and chunked-local groups without prefix caching (but under Swap
// without chunked prefill): what it accepts runs, unless blocks held
// beside the scheduler, beams or a State group's forks say otherwise.
// Otherwise, with window or chunked-local groups, it leans towards
// accepting, never refusing what can run: it counts on the best cache
// (the prefix hit after which a sequence holds only a window's blocks of
// its prefix), on a preempted sample coming back swapped in under Swap (a
// recompute without chunked prefill is admitted whole), and, for a
// chunked-local group with prefix caching, on a readmission where a
// decode keeps one block more; where the run then finds no room,
// Schedule aborts the request (see the package documentation). The check
// asks PrefillFloor at a few lengths: the prompt, every one of a block
// before the longest, and those around each chunk boundary of a
// chunked-local group in the last period (O(BlockSize x (1 + chunk
// boundaries) x groups)).
func (s *Scheduler) Submit(prompt []int32, opts Options) (*Request, error) {
	n := opts.N
	if n == 0 {
		n = 1
	}
	beam := opts.BeamWidth != 0
	if beam {
		if opts.N > 1 {
			return nil, fmt.Errorf("%w: BeamWidth %d with N %d: a request is a beam search or has parallel samples", ErrInvalid, opts.BeamWidth, opts.N)
		}
		if opts.BeamWidth < 0 || opts.BeamWidth > MaxSamples || opts.BeamWidth > s.cfg.MaxRunning {
			return nil, fmt.Errorf("%w: BeamWidth %d must be in [1, %d] and at most MaxRunning %d", ErrInvalid, opts.BeamWidth, MaxSamples, s.cfg.MaxRunning)
		}
		n = opts.BeamWidth
	}
	switch {
	case opts.MaxTokens < 1:
		return nil, fmt.Errorf("%w: MaxTokens %d must be at least 1", ErrInvalid, opts.MaxTokens)
	case n < 1 || n > MaxSamples || n > s.cfg.MaxRunning:
		return nil, fmt.Errorf("%w: N %d must be in [1, %d] and at most MaxRunning %d", ErrInvalid, opts.N, MaxSamples, s.cfg.MaxRunning)
	case len(prompt) == 0:
		return nil, fmt.Errorf("%w: empty prompt", ErrInvalid)
	}
	// The longest a sample's KV gets is the prompt plus every output but
	// the last (a sampled token gets its slot only when it is next run).
	// It must fit alone, or a preempted sample could never come back.
	kv := len(prompt) + opts.MaxTokens - 1
	if len(prompt) > s.maxLen || opts.MaxTokens > s.maxLen-len(prompt) {
		return nil, fmt.Errorf("%w: %d prompt + %d new tokens exceed MaxModelLen %d", ErrNever, len(prompt), opts.MaxTokens, s.maxLen)
	}
	var so paged.SeqOptions
	if opts.Seq != nil {
		so = *opts.Seq
	}
	// Admitted at any length from its prompt to that longest (its first
	// admission, or readmitted after a preemption), it holds at least
	// paged's PrefillFloor, which an admission must fit beside the
	// watermark: more, and it can never come back (lengthFloor).
	floor, at, err := s.lengthFloor(len(prompt), kv, &so)
	switch {
	case errors.Is(err, paged.ErrNever):
		return nil, pass(ErrNever, err, "submit")
	case err != nil:
		return nil, pass(ErrInvalid, err, "submit")
	case floor > s.m.Stats().UsableBlocks-s.wm:
		return nil, fmt.Errorf("%w: %d tokens of KV need more than the pool's %d blocks of %d (a sequence admitted at %d tokens holds at least %d blocks, an admission may take %d)",
			ErrNever, kv, s.m.Stats().UsableBlocks, s.m.BlockSize(), at, floor, s.m.Stats().UsableBlocks-s.wm)
	}
	if n > 1 && s.forkPages > 0 {
		// Its samples fork in the step that computes its last prompt
		// token, each taking state pages of its own at once beside what
		// the prompt holds then, at least paged's PrefillFloor: every
		// block of a full attention group, its own state pages, and of a
		// window or chunked-local group only what that step reads (the
		// forks share those). More than the pool holds can never fork;
		// less may still be refused at the fork (forkRoom, fork).
		floor, err := s.m.PrefillFloor(len(prompt), &so, s.cfg.ChunkedPrefill)
		if err != nil {
			return nil, pass(ErrInvalid, err, "submit")
		}
		need := int64(floor) + int64(n-1)*int64(s.forkPages)
		if usable := s.m.Stats().UsableBlocks; need > int64(usable) {
			return nil, fmt.Errorf("%w: a %d-token prompt holds at least %d blocks when it forks and its %d samples' state pages (%d each) take %d more, more than the pool's %d", ErrNever, len(prompt), floor, n, s.forkPages, int64(n-1)*int64(s.forkPages), usable)
		}
	}
	if !s.cfg.ChunkedPrefill && kv > s.cfg.MaxBatchTokens && !beam {
		return nil, fmt.Errorf("%w: a recompute of %d tokens exceeds MaxBatchTokens %d without chunked prefill", ErrNever, kv, s.cfg.MaxBatchTokens)
	}
	if beam {
		// A beam search recomputes only its prompt (it restarts), and
		// decodes all its beams in one step.
		if !s.cfg.ChunkedPrefill && len(prompt) > s.cfg.MaxBatchTokens {
			return nil, fmt.Errorf("%w: a prompt of %d tokens exceeds MaxBatchTokens %d without chunked prefill", ErrNever, len(prompt), s.cfg.MaxBatchTokens)
		}
		if n > s.cfg.MaxBatchTokens {
			return nil, fmt.Errorf("%w: %d beams decode in one step, more than MaxBatchTokens %d", ErrNever, n, s.cfg.MaxBatchTokens)
		}
	}
	if so.AllowFullHit {
		// A step samples from the logits of its last computed token; a
		// prompt found whole in the cache would compute none.
		return nil, fmt.Errorf("%w: Seq.AllowFullHit: a request samples from its last prompt token, which must be computed", ErrInvalid)
	}
	if so.MaxTokens == 0 {
		so.MaxTokens = len(prompt) + opts.MaxTokens
	}
	seq, err := s.m.Add(prompt, &so)
	if err != nil {
		if errors.Is(err, paged.ErrNever) {
			return nil, pass(ErrNever, err, "submit")
		}
		return nil, pass(ErrInvalid, err, "submit")
	}
	s.nextID++
	r := &Request{s: s, id: s.nextID, prio: opts.Priority, promptLen: len(prompt), maxTokens: opts.MaxTokens, n: n, beam: beam}
	if beam {
		s.beams++
	}
	if len(opts.StopTokens) > 0 {
		r.stop = slices.Clone(opts.StopTokens)
	}
	// A sample ends at MaxTokens outputs, or when prompt and outputs reach
	// MaxModelLen (vLLM's stop rule).
	e := &entry{req: r, seq: seq, length: len(prompt), heap: -1, stops: len(r.stop) > 0,
		limit: min(opts.MaxTokens, s.maxLen-len(prompt))}
	r.samples = append(make([]*entry, 0, n), e)
	s.waiting.pushBack(e)
	s.st.Submitted++
	return r, nil
}

// lengthFloor returns the most blocks that paged's PrefillFloor says a
// sample of a request with a prompt of p tokens and kv tokens of KV at its
// longest holds in a step it may have to be admitted for, and that step's
// length. Those are its prompt's (admitted whole, or with chunked prefill
// in chunks), then, after a preemption at any later length up to kv, the
// step that computes that length's last token again, recomputed (in
// chunks with chunked prefill) or swapped in (what a decode step holds:
// PrefillFloor in chunks; paged's SwapOut swaps of a window or chunk
// only what the next step reads, also right after a step of several
// tokens). With chunked prefill and no prefix caching a
// prompt (or a recompute) computes every chunk from its first token, so
// the step at every length from 1 counts: the manager's verdict on a
// chunked admission is the peak over its steps (paged.Manager.AdmitChunk).
// With prefix caching the floor is the best cache's, whose longest hit
// computes only the last tokens.
//
// With sliding-window and chunked-local groups (or a SeqOptions.Window)
// the floor is not monotone in the length (a window's or chunk's blocks
// are released as it moves on), so lengths are tried, but only in the
// last period of them: the floor at n+period is at least the floor at n
// in the same mode (the full attention groups hold more, a local group
// holds as many blocks period tokens on). Within it, only the lengths
// where the most may be: a block's before kv, and those around each
// chunk boundary of a chunked-local group (TestLengthFloorMatchesScan
// compares the answer with every length's). O(block size x (1 + chunks
// in the period) x groups).
func (s *Scheduler) lengthFloor(p, kv int, so *paged.SeqOptions) (floor, at int, err error) {
	chunked := s.cfg.ChunkedPrefill
	later := chunked || s.cfg.Preemption == Swap
	lo := p
	if chunked && s.m.Config().DisablePrefixCaching {
		lo = 1
	}
	at = -1
	try := func(n int) error {
		f, err := s.m.PrefillFloor(n, so, chunked || n > p && later)
		if err == nil && (f > floor || at < 0) {
			floor, at = f, n
		}
		return err
	}
	// The longest first: a windowed sequence past what it may hold is
	// ErrNever.
	if err := try(kv); err != nil {
		return 0, 0, err
	}
	from := kv
	if len(s.locals) > 0 || so.Window > 0 {
		from = lo
		if s.period > 0 {
			from = max(lo, kv-s.period+1)
		}
	}
	// The most is at the last block's lengths before kv or before a
	// chunked-local group's drop (a chunk boundary, where it releases
	// the chunk before): between drops every group's floor grows with
	// the length or repeats a block's lengths on.
	bs := s.m.BlockSize()
	for n := kv - 1; n >= max(from, kv-bs); n-- {
		if err := try(n); err != nil {
			return 0, 0, err
		}
	}
	for _, lg := range s.locals {
		if lg.kind != paged.ChunkedLocal {
			continue
		}
		for b := (from - bs) / lg.span * lg.span; b <= kv+bs; b += lg.span {
			for n := max(from, b-bs); n <= min(kv-bs-1, b+bs+1); n++ {
				if err := try(n); err != nil {
					return 0, 0, err
				}
			}
		}
	}
	// The prompt, in its own mode.
	if err := try(p); err != nil {
		return 0, 0, err
	}
	return floor, at, nil
}

// lcm returns the least common multiple of a and b, or 0 when it exceeds
// limit.
func lcm(a, b, limit int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	if a/x > limit/b {
		return 0
	}
	if l := a / x * b; l <= limit {
		return l
	}
	return 0
}

// Cancel ends a request and frees every block its samples hold, wherever
// they are. Called between Schedule and Update, it drops the request's
// tokens from the step (Update skips them); a batch built for the step
// still names its freed sequences, so cancel after the model ran. A hook
// called by Update (Finished) may cancel; one called inside Schedule may
// not (ErrInvalid, nothing changed).
func (s *Scheduler) Cancel(r *Request) error {
	if r == nil {
		return fmt.Errorf("%w: nil request", ErrInvalid)
	}
	if r.s != s {
		return fmt.Errorf("%w: request %d", ErrForeign, r.id)
	}
	if r.state.Done() {
		return fmt.Errorf("%w: request %d is %v", ErrDone, r.id, r.state)
	}
	if s.scheduling {
		// The step loop holds indices into the running list and the step:
		// a request ended under it would be appended to or preempted
		// after its sequences were freed.
		return fmt.Errorf("%w: Cancel of request %d from a hook inside Schedule: cancel after Schedule returns", ErrInvalid, r.id)
	}
	s.end(r, Cancelled)
	s.st.Cancelled++
	return nil
}

// end frees every live sample of r, takes it out of the queues and marks
// it with the final state.
func (s *Scheduler) end(r *Request, state State) {
	for _, e := range r.samples {
		switch e.where {
		case inDone:
			continue
		case inRunning:
			s.dirty = true
			if !r.forked {
				s.reserved -= r.n - 1
			}
		case inGroup:
			s.grouped--
		default:
			s.waiting.remove(e)
		}
		if e.where == inRunning && e.computed < e.length {
			// Its tokens of this step may never be computed.
			if err := s.m.Uncompute(e.seq, e.computed); err != nil {
				panic(fmt.Sprintf("sched: request %d: uncompute %v: %v", r.id, e.seq, err))
			}
		}
		if err := s.m.Free(e.seq); err != nil {
			panic(fmt.Sprintf("sched: request %d: free %v: %v", r.id, e.seq, err))
		}
		e.where, e.spec = inDone, nil
	}
	r.state = state
	if r.beam {
		s.beams--
	}
	if s.dirty && !s.inStep {
		s.sweep()
	}
}

// sweep drops done entries from the running list, keeping the order. It
// runs after most steps, so it is written out rather than a
// slices.DeleteFunc, whose predicate is an indirect call per entry.
func (s *Scheduler) sweep() {
	k := 0
	for k < len(s.running) && s.running[k].where != inDone {
		k++
	}
	for _, e := range s.running[k:] {
		if e.where != inDone {
			s.running[k] = e
			k++
		}
	}
	clear(s.running[k:])
	s.running = s.running[:k]
	s.dirty = false
}
