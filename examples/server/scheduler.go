package main

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// Errors of the scheduler; every error it returns wraps one of them.
var (
	// ErrInvalid: the submitted request is malformed (empty prompt, bad n,
	// no max tokens; negative token IDs, which the scheduler refuses).
	ErrInvalid = errors.New("server: invalid request")
	// ErrTooLong: the request can never run here (longer than the maximum
	// model length, or more blocks than the pool has). A request the
	// scheduler finds out about only once it runs is aborted instead: its
	// Status carries this error's code.
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
	// ID names the request (Status, GET /requests/{id}).
	ID ReqID
	// CancelToken is the secret Cancel needs.
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
	// where a real server runs the model's forward pass (with KV cache
	// groups, b.GroupTables and b.GroupSlots are the other groups' rows;
	// the step's state checkpoints are taken just before). It runs on the
	// goroutine that owns the scheduler and may read m, not change it.
	OnBatch func(m *paged.Manager, b *paged.Batch)
	// OnEvent, if set, receives every KV event drained after a step. The
	// event's slices are only valid during the call.
	OnEvent func(e paged.Event)
	// Drafts turns on speculative decoding: before each step a fake
	// drafter proposes this many draft tokens for every sample the last
	// step gave a token (sched.Scheduler.Propose), the step verifies them
	// beside its pending token, and the fake model accepts those that
	// match what it would have sampled. The drafter guesses a quarter of
	// the tokens wrong, so some drafts are rejected; the outputs are the
	// same as without drafts, in fewer steps. 0: none.
	Drafts int
}

// request is a submitted request as the server sees it: its public ID and
// cancel token beside the scheduler's request, which holds its samples.
type request struct {
	id    ReqID
	token string
	r     *sched.Request
	// admitted is set at the first admission; until then the request
	// counts against MaxQueued.
	admitted bool
}

// Status describes one request.
type Status struct {
	// ID names the request.
	ID ReqID `json:"id"`
	// CancelToken is set only in the answer to a submission: it is the
	// secret that cancels the request.
	CancelToken string `json:"cancel_token,omitempty"`
	// State is waiting, running, preempted, finished, cancelled or
	// aborted.
	State string `json:"state"`
	// PromptTokens is the prompt's length, CachedTokens the part found
	// in the prefix cache at its first admission, MaxTokens and N the
	// tokens to generate and the samples, as submitted.
	PromptTokens int `json:"prompt_tokens"`
	CachedTokens int `json:"cached_tokens"`
	MaxTokens    int `json:"max_tokens"`
	N            int `json:"n"`
	// Generated counts the tokens of each sample so far.
	Generated []int `json:"generated"`
	// Error and Message are set when the request failed (state
	// "aborted": it can never run in this pool, which only running it
	// showed): the stable code and the text an error answer would carry.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// Scheduler is the server's side of package sched: a sched.Scheduler in
// vLLM's configuration (FCFS, decode first, no admission in a step that
// preempted, recompute preemption, a dry run before every admission), plus
// what an HTTP server adds: unguessable request IDs with cancel tokens, a
// bounded admission queue, finished requests kept for Status, a fake model
// that emits one token per sequence, KV events drained each step, and
// counters. It owns its paged.Manager and, like it, is not safe for
// concurrent use: one goroutine owns both (see Server).
type Scheduler struct {
	cfg      SchedulerConfig
	m        *paged.Manager
	s        *sched.Scheduler
	queued   int // live requests never admitted
	live     map[ReqID]*request
	byID     map[uint64]*request // live requests by the scheduler's ID
	finished map[ReqID]*request
	finOrder []ReqID // oldest first, for KeepFinished

	batch  paged.Batch
	ckpts  []paged.Checkpoint
	tokens []int32
	events []paged.Event
	prompt []int32
	// decoding are the samples the last step gave a token, which drafts
	// may follow; drafts and accepted are the drafter's buffer and the
	// verdict of the step.
	decoding []sample
	drafts   []int32
	accepted []int

	idle []chan struct{}
	c    counters
}

// counters are the server's own figures, next to the scheduler's and the
// manager's.
type counters struct {
	submitted, finished, cancelled, parallel uint64
	aborted                                  uint64
	rejected                                 [numReasons]uint64
	promptTokens, steps                      uint64
	peakUsed                                 int
	managerTime                              time.Duration
	events                                   EventCounts // Dropped unused
	// groups are the per-group figures, one per Config.Groups entry
	// (none for a model of one attention kind).
	groups []groupCounters
}

// groupCounters are one KV cache group's counters: the blocks its KV
// events named and the state checkpoints it was handed.
type groupCounters struct {
	stored, removed, checkpoints uint64
}

// sample names one sample of a request.
type sample struct {
	r *sched.Request
	i int
}

// NewScheduler returns a scheduler with a new manager for cfg.Manager.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Drafts < 0 {
		return nil, fmt.Errorf("%w: Drafts %d is negative", ErrInvalid, cfg.Drafts)
	}
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
	s := &Scheduler{
		cfg:      cfg,
		m:        m,
		live:     make(map[ReqID]*request),
		byID:     make(map[uint64]*request),
		finished: make(map[ReqID]*request),
	}
	s.c.groups = make([]groupCounters, len(m.Config().Groups))
	s.s, err = sched.New(m, sched.Config{
		MaxRunning: cfg.MaxNumSeqs,
		// The dry run changes nothing, not even the prefix statistics,
		// which a refused Admit would update (as vLLM counts), so the
		// hit rate reflects admissions only.
		CheckBeforeAdmit: true,
		MaxDrafts:        cfg.Drafts,
		Hooks: sched.Hooks{
			Scheduled: s.scheduled,
			Finished:  s.sampleFinished,
			Aborted:   s.aborted,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return s, nil
}

// Manager returns the scheduler's block manager, for reading by the owner.
func (s *Scheduler) Manager() *paged.Manager { return s.m }

// Checkpoints returns the state checkpoints of the step being run, for
// OnBatch: each is written while the step's kernels compute it (see
// sched.Step.Checkpoints). The slice is valid until the next step; it is
// empty without State groups.
func (s *Scheduler) Checkpoints() []paged.Checkpoint { return s.ckpts }

// Busy reports whether any request is waiting or running.
func (s *Scheduler) Busy() bool { return s.s.Busy() }

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
	// Checked before a prompt is made up, so a huge prompt_len costs
	// nothing, and without overflowing the sum. What the pool can hold,
	// and the token IDs, the scheduler checks (sched.Submit).
	if plen > mcfg.MaxModelLen || spec.MaxTokens > mcfg.MaxModelLen-plen {
		return Ticket{}, fmt.Errorf("%w: %d prompt + %d new tokens exceed the maximum length %d",
			ErrTooLong, plen, spec.MaxTokens, mcfg.MaxModelLen)
	}
	// Checked after the fields, so a malformed request is told what is
	// wrong with it rather than to come back later (but for its token
	// IDs, which only the scheduler reads).
	if s.queued >= s.cfg.MaxQueued {
		return Ticket{}, fmt.Errorf("%w: %d requests wait for admission", ErrQueueFull, s.queued)
	}
	prompt := spec.Prompt
	if len(prompt) == 0 {
		prompt = madeUpPrompt(s.prompt[:0], uint64(s.s.Stats().Submitted)+1, plen)
		s.prompt = prompt
	}
	// The scheduler hashes the prompt's full blocks once, now, off the
	// step's critical path; the sequence holds no blocks until admitted.
	t0 := time.Now()
	sr, err := s.s.Submit(prompt, sched.Options{MaxTokens: spec.MaxTokens, N: n})
	if err != nil {
		if errors.Is(err, sched.ErrNever) {
			return Ticket{}, fmt.Errorf("%w: %w", ErrTooLong, err)
		}
		return Ticket{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Counted for accepted requests only: a refusal changes no figure
	// but its reason's count.
	s.c.managerTime += time.Since(t0)
	r := &request{id: ReqID(rand.Text()), token: rand.Text(), r: sr}
	s.live[r.id] = r
	s.byID[sr.ID()] = r
	s.queued++
	s.c.submitted++
	s.c.promptTokens += uint64(plen)
	if n > 1 {
		s.c.parallel++
	}
	return Ticket{ID: r.id, CancelToken: r.token}, nil
}

// madeUpPrompt appends n tokens that differ from request to request. It
// grows dst once, to its final length: a length the checks before it
// should have refused (one past int's range) fails at once with a
// growslice panic, rather than appending for minutes.
func madeUpPrompt(dst []int32, seed uint64, n int) []int32 {
	dst = slices.Grow(dst, n)
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
	case r.r.State().Done():
		return fmt.Errorf("%w: request %s", ErrFinished, id)
	}
	// Cancels arrive between steps, so no batch refers to these samples;
	// the scheduler deletes them in place, which keeps the others' order,
	// and with it the rows of the persistent batch.
	t0 := time.Now()
	if err := s.s.Cancel(r.r); err != nil {
		panic(fmt.Sprintf("server: cancel request %s: %v", id, err))
	}
	s.c.managerTime += time.Since(t0)
	s.retire(r)
	s.c.cancelled++
	s.notifyIdle()
	return nil
}

// retire moves a request to the finished set, forgetting the oldest ones
// beyond KeepFinished.
func (s *Scheduler) retire(r *request) {
	delete(s.live, r.id)
	delete(s.byID, r.r.ID())
	if !r.admitted {
		s.queued--
	}
	// NewScheduler made KeepFinished at least 1.
	if len(s.finOrder) == s.cfg.KeepFinished {
		delete(s.finished, s.finOrder[0])
		s.finOrder = s.finOrder[1:]
	}
	s.finished[r.id] = r
	s.finOrder = append(s.finOrder, r.id)
}

// Status describes a live or recently finished request: waiting (never
// admitted), running (some sample holds blocks), preempted (admitted once,
// none holds blocks now), finished, cancelled, or aborted (it can never
// run in this pool; Error and Message say why).
func (s *Scheduler) Status(id ReqID) (Status, error) {
	r, ok := s.live[id]
	if !ok {
		if r, ok = s.finished[id]; !ok {
			return Status{}, fmt.Errorf("%w: request %s", ErrUnknownRequest, id)
		}
	}
	sr := r.r
	st := Status{ID: id, State: sr.State().String(), PromptTokens: sr.PromptLen(), CachedTokens: sr.Cached(),
		MaxTokens: sr.MaxTokens(), N: sr.N(), Generated: make([]int, sr.Samples())}
	for i := range st.Generated {
		st.Generated[i] = sr.Outputs(i)
	}
	if err := sr.Err(); err != nil {
		st.Error, st.Message = ReasonTooLong.String(), fmt.Errorf("%w: %w", ErrTooLong, err).Error()
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
	t0 := time.Now()
	s.propose()
	st, err := s.s.Schedule()
	if err != nil {
		panic(fmt.Sprintf("server: schedule: %v", err))
	}
	// Only now, after every Append and Admit of the step, are the tables
	// and copy directives final.
	if err := s.s.BuildBatch(&s.batch); err != nil {
		panic(fmt.Sprintf("server: BuildBatch: %v", err))
	}
	// With State groups the manager asks for the state at a prefix's
	// branch point while the prefill passes it: Schedule took the step's
	// checkpoints (Step.Checkpoints), and a real server writes each one's
	// pages during this step's kernels (after the batch's Copies, which
	// restore hit checkpoints). Empty without State groups.
	s.ckpts = st.Checkpoints
	s.c.managerTime += time.Since(t0)
	for i := range s.ckpts {
		s.c.groups[s.ckpts[i].Group].checkpoints++
	}
	if s.cfg.OnBatch != nil {
		s.cfg.OnBatch(s.m, &s.batch)
	}
	// Blocks peak here: after every append and admission, before frees.
	if u := s.m.Stats().UsedBlocks; u > s.c.peakUsed {
		s.c.peakUsed = u
	}
	// The fake model: one token per output. A parallel-sampling request's
	// prompt step draws its n samples' first tokens from the same logits;
	// the scheduler forks them, and they share every block until each
	// writes its own token.
	// With drafts it accepts those that say what it samples, and samples
	// the token after them.
	s.tokens, s.accepted = s.tokens[:0], s.accepted[:0]
	for _, sc := range st.Scheduled {
		a := 0
		for a < len(sc.Drafts) && sc.Drafts[a] == token(sc.Request.ID(), sc.Sample, sc.Generated+a) {
			a++
		}
		s.accepted = append(s.accepted, a)
		for j := range sc.Outputs {
			s.tokens = append(s.tokens, token(sc.Request.ID(), sc.Sample+j, sc.Generated+a))
		}
	}
	t0 = time.Now()
	var err2 error
	if s.cfg.Drafts > 0 {
		err2 = s.s.UpdateSpeculative(s.tokens, s.accepted, nil)
	} else {
		err2 = s.s.Update(s.tokens)
	}
	if err2 != nil {
		panic(fmt.Sprintf("server: update: %v", err2))
	}
	if s.cfg.Drafts > 0 {
		s.decoding = s.decoding[:0]
		for _, sc := range st.Scheduled {
			for j := range sc.Outputs {
				if r, i := sc.Request, sc.Sample+j; r.Seq(i) != 0 && r.Outputs(i) > 0 {
					s.decoding = append(s.decoding, sample{r, i})
				}
			}
		}
	}
	// Draining every step keeps the bounded event buffer from
	// overflowing; a router would publish these.
	s.events = s.m.DrainEvents(s.events[:0])
	s.c.managerTime += time.Since(t0)
	for _, e := range s.events {
		ev := &s.c.events
		switch e.Kind {
		case paged.BlockStored:
			ev.Stored++
			ev.StoredBlocks += uint64(len(e.Hashes))
			if e.Group < len(s.c.groups) {
				s.c.groups[e.Group].stored += uint64(len(e.Hashes))
			}
		case paged.BlockRemoved:
			ev.Removed++
			ev.RemovedBlocks += uint64(len(e.Hashes))
			if e.Group < len(s.c.groups) {
				s.c.groups[e.Group].removed += uint64(len(e.Hashes))
			}
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

// propose is the fake drafter: for each sample the last step gave a
// token, the next Drafts tokens the fake model will sample, but a wrong
// one for a quarter of the model's tokens, chosen by a hash of the token.
func (s *Scheduler) propose() {
	for _, x := range s.decoding {
		if x.r.State().Done() || x.r.Seq(x.i) == 0 {
			continue // cancelled since
		}
		out := x.r.Outputs(x.i)
		s.drafts = s.drafts[:0]
		for j := range s.cfg.Drafts {
			tok := token(x.r.ID(), x.i, out+j)
			if uint32(tok)*0x9E3779B9>>30 == 0 { // a hash, not the position's cycle
				tok = tok%32000 + 1
			}
			s.drafts = append(s.drafts, tok)
		}
		if err := s.s.Propose(x.r, x.i, s.drafts); err != nil {
			panic(fmt.Sprintf("server: propose: %v", err))
		}
	}
}

// scheduled is the scheduler's hook for every sequence given tokens: the
// first admission of a request takes it out of the admission queue.
func (s *Scheduler) scheduled(sc *sched.Scheduled) {
	if !sc.Admitted {
		return
	}
	if r := s.byID[sc.Request.ID()]; r != nil && !r.admitted {
		r.admitted = true
		s.queued--
	}
}

// sampleFinished is the scheduler's hook for a sample's last token; the
// request is retired once all its samples are done.
func (s *Scheduler) sampleFinished(sr *sched.Request, _ int) {
	if sr.State() != sched.Finished {
		return
	}
	if r := s.byID[sr.ID()]; r != nil {
		s.retire(r)
		s.c.finished++
	}
}

// aborted is the scheduler's hook for a request that can never run in
// this pool (sched.Hooks.Aborted): its blocks are freed; it is retired
// with its error, which its Status shows.
func (s *Scheduler) aborted(sr *sched.Request, _ error) {
	if r := s.byID[sr.ID()]; r != nil {
		s.retire(r)
		s.c.aborted++
	}
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
