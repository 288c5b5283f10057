package main

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// Errors of the scheduler; every error it returns wraps one of them.
var (
	// ErrInvalid: the submitted request is malformed (empty prompt, bad n,
	// no max tokens, negative token IDs).
	ErrInvalid = errors.New("server: invalid request")
	// ErrTooLong: the request can never run here (longer than the maximum
	// model length, or more blocks than the pool has).
	ErrTooLong = errors.New("server: request too long")
	// ErrQueueFull: the admission queue holds SchedulerConfig.MaxQueued
	// requests already; retry later.
	ErrQueueFull = errors.New("server: admission queue full")
	// ErrUnknownRequest: no request has this ID.
	ErrUnknownRequest = errors.New("server: unknown request")
	// ErrBadToken: the cancel token does not match the request's.
	ErrBadToken = errors.New("server: wrong cancel token")
	// ErrFinished: the request has already finished or been cancelled.
	ErrFinished = errors.New("server: request already finished")
	// ErrClosed: the server's step loop has stopped.
	ErrClosed = errors.New("server: closed")
)

// MaxN bounds the parallel samples of one request.
const MaxN = 16

// ReqID names a submitted request: 26 characters of base32 drawn from
// crypto/rand (130 bits), so knowing one request's ID tells nothing about
// another's.
type ReqID string

// Ticket is what a submitter gets back: the request's ID, which lets
// anyone holding it read the request's status, and the cancel token,
// which alone lets its holder cancel the request.
type Ticket struct {
	ID          ReqID
	CancelToken string
}

// Spec is a request as a client submits it: a prompt (tokens, or a length
// for a made-up prompt), how many tokens to generate, and how many samples.
type Spec struct {
	// Prompt are the prompt's token IDs.
	Prompt []int32 `json:"prompt,omitempty"`
	// PromptLen asks for a made-up prompt of this many tokens instead.
	PromptLen int `json:"prompt_len,omitempty"`
	// MaxTokens is the number of tokens to generate per sample.
	MaxTokens int `json:"max_tokens"`
	// N is the number of parallel samples (0 means 1): the prompt is
	// computed once and forked N ways after its first step.
	N int `json:"n,omitempty"`
}

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Manager configures the block manager.
	Manager paged.Config
	// MaxNumSeqs bounds the running sequences (vLLM's max_num_seqs).
	// Default 256.
	MaxNumSeqs int
	// KeepFinished is how many finished or cancelled requests stay
	// queryable by Status. Default 1024.
	KeepFinished int
	// MaxQueued bounds the requests waiting for their first admission;
	// Submit refuses more with ErrQueueFull. Preempted requests go back
	// to the queue regardless: they were admitted once. The bound also
	// bounds memory: a queued request holds its prompt. Default 512.
	MaxQueued int
	// OnBatch, if set, is called with each step's batch after BuildBatch,
	// where a real server runs the model's forward pass. It runs on the
	// goroutine that owns the scheduler and may read m, not change it.
	OnBatch func(m *paged.Manager, b *paged.Batch)
	// OnEvent, if set, receives every KV event drained after a step. The
	// event's slices are only valid during the call.
	OnEvent func(e paged.Event)
}

type reqState uint8

const (
	reqLive reqState = iota
	reqFinished
	reqCancelled
)

// request is a submitted request: one sample before the fork, n after.
type request struct {
	id        ReqID
	seq       uint64 // submission order from 1, seeds the fake model
	token     string
	promptLen int
	maxTokens int
	n         int
	state     reqState
	samples   []*sample
	forked    bool
	done      int // samples finished
	nrunning  int // samples holding blocks
	cached    int // prompt tokens found in the prefix cache at first admission
	admitted  bool
}

// stateName is what Status reports: waiting (never admitted), running
// (some sample holds blocks), preempted (admitted once, none holds blocks
// now), finished or cancelled.
func (r *request) stateName() string {
	switch {
	case r.state == reqFinished:
		return "finished"
	case r.state == reqCancelled:
		return "cancelled"
	case r.nrunning > 0:
		return "running"
	case r.admitted:
		return "preempted"
	}
	return "waiting"
}

// sample is one sequence of a request.
type sample struct {
	req     *request
	idx     int
	id      paged.SeqID
	outputs int
	running bool // holds blocks
	// pending is the newest token: the model produced it last step and its
	// KV is computed this step, so it gets a slot only now.
	pending int32
	done    bool
}

// Status describes one request.
type Status struct {
	ID ReqID `json:"id"`
	// CancelToken is set only in the answer to a submission: it is the
	// secret that cancels the request.
	CancelToken  string `json:"cancel_token,omitempty"`
	State        string `json:"state"`
	PromptTokens int    `json:"prompt_tokens"`
	CachedTokens int    `json:"cached_tokens"`
	MaxTokens    int    `json:"max_tokens"`
	N            int    `json:"n"`
	// Generated counts the tokens of each sample so far.
	Generated []int `json:"generated"`
}

// Scheduler is a continuous-batching scheduler in the manner of vLLM: each
// Step decodes every running sequence, admits waiting ones first come
// first served while the dry run says they fit, builds the step's batch,
// and runs a fake model that emits one token per sequence. It owns its
// paged.Manager and, like it, is not safe for concurrent use: one
// goroutine owns both (see Server).
type Scheduler struct {
	cfg SchedulerConfig
	m   *paged.Manager

	nextSeq  uint64
	queued   int // live requests never admitted
	live     map[ReqID]*request
	finished map[ReqID]*request
	finOrder []ReqID // oldest first, for KeepFinished

	waiting []*sample // FCFS; preempted samples go back to the front
	running []*sample // admission order, kept stable for the persistent batch

	sched  []paged.Scheduled
	schedS []*sample
	batch  paged.Batch
	events []paged.Event
	prompt []int32

	idle []chan struct{}
	c    counters
}

// counters are the scheduler's own figures, next to the manager's Stats.
type counters struct {
	submitted, finished, cancelled, parallel  uint64
	rejected                                  [numReasons]uint64
	promptTokens, prefillTokens, cachedTokens uint64
	generated, steps                          uint64
	peakUsed, peakRunning                     int
	managerTime                               time.Duration
	events                                    EventCounts // Dropped unused
}

// NewScheduler returns a scheduler with a new manager for cfg.Manager.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.MaxNumSeqs == 0 {
		cfg.MaxNumSeqs = 256
	}
	if cfg.MaxNumSeqs < MaxN {
		return nil, fmt.Errorf("%w: MaxNumSeqs %d must be at least %d (one request's samples)", ErrInvalid, cfg.MaxNumSeqs, MaxN)
	}
	if cfg.KeepFinished == 0 {
		cfg.KeepFinished = 1024
	}
	if cfg.KeepFinished < 0 {
		return nil, fmt.Errorf("%w: KeepFinished %d is negative", ErrInvalid, cfg.KeepFinished)
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = 512
	}
	if cfg.MaxQueued < 0 {
		return nil, fmt.Errorf("%w: MaxQueued %d is negative", ErrInvalid, cfg.MaxQueued)
	}
	m, err := paged.New(cfg.Manager)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return &Scheduler{
		cfg:      cfg,
		m:        m,
		live:     make(map[ReqID]*request),
		finished: make(map[ReqID]*request),
	}, nil
}

// Manager returns the scheduler's block manager, for reading by the owner.
func (s *Scheduler) Manager() *paged.Manager { return s.m }

// Busy reports whether any request is waiting or running.
func (s *Scheduler) Busy() bool { return len(s.running) > 0 || len(s.waiting) > 0 }

// Submit validates spec and queues it, returning the new request's ID and
// cancel token. A rejected request changes nothing but the rejection
// counter of its reason.
func (s *Scheduler) Submit(spec Spec) (Ticket, error) {
	t, err := s.submit(spec)
	if err != nil {
		s.c.rejected[reasonOf(err)]++
	}
	return t, err
}

func (s *Scheduler) submit(spec Spec) (Ticket, error) {
	n := spec.N
	if n == 0 {
		n = 1
	}
	mcfg := s.m.Config()
	switch {
	case n < 1 || n > MaxN:
		return Ticket{}, fmt.Errorf("%w: n %d must be in [1, %d]", ErrInvalid, spec.N, MaxN)
	case spec.MaxTokens < 1:
		return Ticket{}, fmt.Errorf("%w: max_tokens %d must be at least 1", ErrInvalid, spec.MaxTokens)
	case len(spec.Prompt) > 0 && spec.PromptLen != 0:
		return Ticket{}, fmt.Errorf("%w: give prompt or prompt_len, not both", ErrInvalid)
	case spec.PromptLen < 0:
		return Ticket{}, fmt.Errorf("%w: prompt_len %d is negative", ErrInvalid, spec.PromptLen)
	case len(spec.Prompt) == 0 && spec.PromptLen == 0:
		return Ticket{}, fmt.Errorf("%w: empty prompt", ErrInvalid)
	}
	plen := max(len(spec.Prompt), spec.PromptLen)
	// Checked before any token is looked at or made up, so a huge
	// prompt_len costs nothing, and without overflowing the sum. The
	// longest a sample gets is what must fit: a request admitted now must
	// never become unable to grow or to be readmitted after preemption.
	if plen > mcfg.MaxModelLen || spec.MaxTokens > mcfg.MaxModelLen-plen ||
		s.m.CanAdmitTokens(plen+spec.MaxTokens) == paged.AdmitNever {
		return Ticket{}, fmt.Errorf("%w: %d prompt + %d new tokens exceed the maximum length %d or the pool (%d blocks of %d)",
			ErrTooLong, plen, spec.MaxTokens, mcfg.MaxModelLen, s.m.Stats().UsableBlocks, s.m.BlockSize())
	}
	for i, t := range spec.Prompt {
		if t < 0 {
			return Ticket{}, fmt.Errorf("%w: prompt token %d is negative (%d)", ErrInvalid, i, t)
		}
	}
	// Checked after validation, so a malformed request is told what is
	// wrong with it rather than to come back later.
	if s.queued >= s.cfg.MaxQueued {
		return Ticket{}, fmt.Errorf("%w: %d requests wait for admission", ErrQueueFull, s.queued)
	}
	prompt := spec.Prompt
	if len(prompt) == 0 {
		prompt = madeUpPrompt(s.prompt[:0], s.nextSeq+1, plen)
		s.prompt = prompt
	}
	// Add hashes the prompt's full blocks once, now, off the step's
	// critical path; the sequence holds no blocks until admitted.
	t0 := time.Now()
	seq, err := s.m.Add(prompt, nil)
	s.c.managerTime += time.Since(t0)
	if err != nil {
		if errors.Is(err, paged.ErrNever) {
			return Ticket{}, fmt.Errorf("%w: %w", ErrTooLong, err)
		}
		return Ticket{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.nextSeq++
	r := &request{id: ReqID(rand.Text()), seq: s.nextSeq, token: rand.Text(),
		promptLen: plen, maxTokens: spec.MaxTokens, n: n}
	q := &sample{req: r, id: seq}
	r.samples = append(make([]*sample, 0, n), q)
	s.live[r.id] = r
	s.waiting = append(s.waiting, q)
	s.queued++
	s.c.submitted++
	s.c.promptTokens += uint64(plen)
	if n > 1 {
		s.c.parallel++
	}
	return Ticket{ID: r.id, CancelToken: r.token}, nil
}

// madeUpPrompt appends n tokens that differ from request to request.
func madeUpPrompt(dst []int32, seed uint64, n int) []int32 {
	for j := range n {
		dst = append(dst, int32((seed*104729+uint64(j)*7919)%32000)+1)
	}
	return dst
}

// Cancel ends a waiting or running request and frees its blocks. token
// must be the request's cancel token (from its Ticket): the ID alone,
// which status readers share, cannot cancel.
func (s *Scheduler) Cancel(id ReqID, token string) error {
	r, ok := s.live[id]
	if !ok {
		r, ok = s.finished[id]
	}
	switch {
	case !ok:
		return fmt.Errorf("%w: request %s", ErrUnknownRequest, id)
	case subtle.ConstantTimeCompare([]byte(token), []byte(r.token)) != 1:
		return fmt.Errorf("%w: request %s", ErrBadToken, id)
	case r.state != reqLive:
		return fmt.Errorf("%w: request %s", ErrFinished, id)
	}
	t0 := time.Now()
	for _, q := range r.samples {
		if !q.done {
			if err := s.m.Free(q.id); err != nil {
				panic(fmt.Sprintf("server: cancel request %s: free %v: %v", id, q.id, err))
			}
			q.done = true
		}
	}
	s.c.managerTime += time.Since(t0)
	// Cancels arrive between steps, so no batch refers to these samples;
	// deleting in place keeps the others' order, and with it the rows of
	// the persistent batch.
	s.running = slices.DeleteFunc(s.running, func(q *sample) bool { return q.req == r })
	s.waiting = slices.DeleteFunc(s.waiting, func(q *sample) bool { return q.req == r })
	s.retire(r, reqCancelled)
	s.c.cancelled++
	s.notifyIdle()
	return nil
}

// retire moves a request to the finished set, forgetting the oldest ones
// beyond KeepFinished.
func (s *Scheduler) retire(r *request, state reqState) {
	r.state = state
	delete(s.live, r.id)
	if !r.admitted {
		s.queued--
	}
	if s.cfg.KeepFinished == 0 {
		return
	}
	if len(s.finOrder) == s.cfg.KeepFinished {
		delete(s.finished, s.finOrder[0])
		s.finOrder = s.finOrder[1:]
	}
	s.finished[r.id] = r
	s.finOrder = append(s.finOrder, r.id)
}

// Status describes a live or recently finished request.
func (s *Scheduler) Status(id ReqID) (Status, error) {
	r, ok := s.live[id]
	if !ok {
		if r, ok = s.finished[id]; !ok {
			return Status{}, fmt.Errorf("%w: request %s", ErrUnknownRequest, id)
		}
	}
	st := Status{ID: id, State: r.stateName(), PromptTokens: r.promptLen, CachedTokens: r.cached,
		MaxTokens: r.maxTokens, N: r.n, Generated: make([]int, len(r.samples))}
	for i, q := range r.samples {
		st.Generated[i] = q.outputs
	}
	return st, nil
}

// token is the fake model's output: deterministic, and different for each
// sample of a request, so forked samples diverge and copy on write.
func token(seq uint64, sampleIdx, pos int) int32 {
	return int32((seq*2654435761+uint64(sampleIdx)*40503+uint64(pos)*97)%32000) + 1
}

// Step runs one engine step and reports whether there was anything to do.
func (s *Scheduler) Step() bool {
	if !s.Busy() {
		return false
	}
	s.c.steps++
	s.sched, s.schedS = s.sched[:0], s.schedS[:0]
	t0 := time.Now()
	// Running sequences get memory before new ones: decode first.
	preempted := s.decode()
	if !preempted {
		// As vLLM does, a step that had to preempt admits nobody: the
		// memory is not there.
		s.admit()
	}
	s.c.peakRunning = max(s.c.peakRunning, len(s.running))
	// Only now, after every Append and Admit of the step, are the tables
	// and copy directives final.
	if err := s.m.BuildBatch(&s.batch, s.sched); err != nil {
		panic(fmt.Sprintf("server: BuildBatch: %v", err))
	}
	s.c.managerTime += time.Since(t0)
	if s.cfg.OnBatch != nil {
		s.cfg.OnBatch(s.m, &s.batch)
	}
	s.sample()
	// Draining every step keeps the bounded event buffer from
	// overflowing; a router would publish these.
	t0 = time.Now()
	s.events = s.m.DrainEvents(s.events[:0])
	s.c.managerTime += time.Since(t0)
	for _, e := range s.events {
		ev := &s.c.events
		switch e.Kind {
		case paged.BlockStored:
			ev.Stored++
			ev.StoredBlocks += uint64(len(e.Hashes))
		case paged.BlockRemoved:
			ev.Removed++
			ev.RemovedBlocks += uint64(len(e.Hashes))
		case paged.AllBlocksCleared:
			ev.Cleared++
		}
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(e)
		}
	}
	s.notifyIdle()
	return true
}

// decode gives every running sequence a slot for its pending token,
// preempting the newest running sequences (by recompute) when the pool is
// exhausted. It reports whether it preempted.
func (s *Scheduler) decode() bool {
	preempted := false
	for i := 0; i < len(s.running); {
		q := s.running[i]
		err := s.m.Append(q.id, q.pending)
		if err == nil {
			s.sched = append(s.sched, paged.Scheduled{ID: q.id, NewTokens: 1})
			s.schedS = append(s.schedS, q)
			i++
			continue
		}
		if !errors.Is(err, paged.ErrNoSpace) {
			panic(fmt.Sprintf("server: append to %v: %v", q.id, err))
		}
		// Preempt the newest running sequence, which may be q itself: it
		// has the least work to redo (vLLM's choice). Recompute, not swap:
		// the manager keeps its tokens, and its full blocks stay in the
		// prefix cache, so readmission often finds most of them.
		v := s.running[len(s.running)-1]
		s.running = s.running[:len(s.running)-1]
		if err := s.m.Preempt(v.id); err != nil {
			panic(fmt.Sprintf("server: preempt %v: %v", v.id, err))
		}
		// A waiting sequence only records the token; it is computed
		// with the rest when the sequence is admitted again.
		if err := s.m.Append(v.id, v.pending); err != nil {
			panic(fmt.Sprintf("server: keep pending token of %v: %v", v.id, err))
		}
		v.running = false
		v.req.nrunning--
		// Back to the head of the queue: it came before everyone waiting.
		s.waiting = slices.Insert(s.waiting, 0, v)
		preempted = true
		if v == q {
			break
		}
	}
	return preempted
}

// admit admits waiting sequences in order while the dry run says they fit
// and the sequence limit allows.
func (s *Scheduler) admit() {
	for len(s.waiting) > 0 {
		q := s.waiting[0]
		r := q.req
		seqs := 1
		if !r.forked {
			seqs = r.n // its samples will run once it forks
		}
		if len(s.running)+seqs > s.cfg.MaxNumSeqs {
			return
		}
		// The dry run changes nothing, not even the prefix statistics,
		// which a refused Admit would update (as vLLM counts), so the hit
		// rate reflects admissions only.
		a, err := s.m.CanAdmit(q.id)
		if err != nil {
			panic(fmt.Sprintf("server: CanAdmit %v: %v", q.id, err))
		}
		switch a {
		case paged.AdmitLater:
			return // first come, first served: nobody overtakes the head
		case paged.AdmitNever:
			// Submit checked the longest this sequence can grow to.
			panic(fmt.Sprintf("server: %v of request %s can never be admitted", q.id, r.id))
		}
		cached, err := s.m.Admit(q.id)
		if err != nil {
			panic(fmt.Sprintf("server: Admit %v after CanAdmit ok: %v", q.id, err))
		}
		n, _ := s.m.Len(q.id)
		s.waiting = s.waiting[1:]
		s.running = append(s.running, q)
		// Cached tokens are not computed again; a resumed sequence's
		// generated tokens are, with its prompt.
		s.sched = append(s.sched, paged.Scheduled{ID: q.id, NewTokens: n - cached})
		s.schedS = append(s.schedS, q)
		q.running = true
		r.nrunning++
		if !r.admitted {
			r.admitted, r.cached = true, cached
			s.queued--
		}
		s.c.cachedTokens += uint64(cached)
		s.c.prefillTokens += uint64(n - cached)
	}
}

// sample is the fake model's output step: one new token per scheduled
// sequence. A parallel-sampling request forks after its prompt's step:
// the n samples draw different first tokens from the same logits, so they
// share every block until each writes its own token.
func (s *Scheduler) sample() {
	// Blocks peak here: after every append and admission, before frees.
	if u := s.m.Stats().UsedBlocks; u > s.c.peakUsed {
		s.c.peakUsed = u
	}
	finished := false
	for _, q := range s.schedS {
		r := q.req
		if !r.forked {
			r.forked = true
			for k := 1; k < r.n; k++ {
				t0 := time.Now()
				child, err := s.m.Fork(q.id)
				s.c.managerTime += time.Since(t0)
				if err != nil {
					panic(fmt.Sprintf("server: fork %v: %v", q.id, err))
				}
				c := &sample{req: r, idx: k, id: child, running: true}
				r.nrunning++
				r.samples = append(r.samples, c)
				s.running = append(s.running, c)
				finished = s.emit(c) || finished
			}
		}
		finished = s.emit(q) || finished
	}
	if finished {
		s.running = slices.DeleteFunc(s.running, func(q *sample) bool { return q.done })
	}
}

// emit gives q its next token and frees it once it has all of them. It
// reports whether q finished.
func (s *Scheduler) emit(q *sample) bool {
	r := q.req
	q.pending = token(r.seq, q.idx, q.outputs)
	q.outputs++
	s.c.generated++
	if q.outputs < r.maxTokens {
		return false
	}
	t0 := time.Now()
	if err := s.m.Free(q.id); err != nil {
		panic(fmt.Sprintf("server: free %v: %v", q.id, err))
	}
	s.c.managerTime += time.Since(t0)
	q.done, q.running = true, false
	r.nrunning--
	r.done++
	if r.done == r.n {
		s.retire(r, reqFinished)
		s.c.finished++
	}
	return true
}

// IdleChan returns a channel closed once no request is waiting or
// running (already closed if none is now).
func (s *Scheduler) IdleChan() <-chan struct{} {
	ch := make(chan struct{})
	if !s.Busy() {
		close(ch)
		return ch
	}
	s.idle = append(s.idle, ch)
	return ch
}

func (s *Scheduler) notifyIdle() {
	if s.Busy() {
		return
	}
	for _, ch := range s.idle {
		close(ch)
	}
	s.idle = s.idle[:0]
}
