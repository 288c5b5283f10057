package bench

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryModel names a way of giving KV memory to requests in the
// fragmentation study.
type MemoryModel uint8

const (
	// ModelPaged allocates fixed-size blocks on demand through
	// paged.Manager, as vLLM does.
	ModelPaged MemoryModel = iota
	// ModelMax reserves the maximum length for every request at admission
	// (Orca "Max").
	ModelMax
	// ModelPow2 reserves the next power of two of the request's final
	// length (Orca "Pow2").
	ModelPow2
	// ModelOracle reserves exactly the request's final length (Orca
	// "Oracle").
	ModelOracle
)

var modelNames = [...]string{"paged", "max", "pow2", "oracle"}

// String returns the model's flag name: paged, max, pow2 or oracle.
func (m MemoryModel) String() string {
	if int(m) < len(modelNames) {
		return modelNames[m]
	}
	return fmt.Sprintf("MemoryModel(%d)", m)
}

// ParseMemoryModel parses a model's flag name (case-insensitive).
func ParseMemoryModel(s string) (MemoryModel, error) {
	for i, n := range modelNames {
		if strings.EqualFold(s, n) {
			return MemoryModel(i), nil
		}
	}
	return 0, fmt.Errorf("%w: memory model %q (want paged, max, pow2 or oracle)", ErrFragInvalid, s)
}

// ErrFragInvalid is returned for a study configuration out of range.
var ErrFragInvalid = errors.New("bench: frag: invalid configuration")

// ErrNeverFits is returned when the head of the queue cannot be placed even
// with nothing running: the budget is too small for the memory model.
var ErrNeverFits = errors.New("bench: frag: request can never fit")

// Defaults of FragConfig, after the PagedAttention paper's setting: OPT-13B
// on one A100 holds about 7 requests of the maximum length.
const (
	DefaultFragMaxLen   = 2048
	DefaultFragKVTokens = 15360
	DefaultFragStepTime = 20 * time.Millisecond
)

// FragConfig configures one run of the fragmentation study. Zero values
// mean the documented defaults.
type FragConfig struct {
	// MaxLen is the maximum length of a request in tokens; longer requests
	// are truncated to it, prompt first. Default DefaultFragMaxLen.
	MaxLen int
	// KVTokens is the KV budget in token slots, shared by every memory
	// model. Default DefaultFragKVTokens.
	KVTokens int
	// Arrivals makes requests arrive at their trace timestamps, one engine
	// step lasting StepTime; otherwise all wait at step 0 in file order.
	Arrivals bool
	// StepTime is the duration of one engine step with Arrivals. Default
	// DefaultFragStepTime.
	StepTime time.Duration
	// Allocator places the contiguous models' reservations (ignored by
	// ModelPaged). Default AllocBuddy, as in the paper.
	Allocator Allocator
	// OnStep, if set, sees every step's classification (tests use it).
	// Like Progress, it is called from the run's goroutine, so it must be
	// safe for concurrent use when runs go in parallel (FragStudy).
	OnStep func(FragSlots)
	// Progress, if set, is called at each step where requests finish,
	// with how many finished since the last call: a progress meter. It is
	// called from the run's goroutine, so it must be safe for concurrent
	// use when runs go in parallel (FragStudy).
	Progress func(finished int)
}

func (c FragConfig) withDefaults() (FragConfig, error) {
	if c.MaxLen == 0 {
		c.MaxLen = DefaultFragMaxLen
	}
	if c.KVTokens == 0 {
		c.KVTokens = DefaultFragKVTokens
	}
	if c.StepTime == 0 {
		c.StepTime = DefaultFragStepTime
	}
	if c.MaxLen < 1 || c.KVTokens < 1 || c.StepTime < 0 {
		return c, fmt.Errorf("%w: max length %d, KV tokens %d and step time %v must be positive", ErrFragInvalid, c.MaxLen, c.KVTokens, c.StepTime)
	}
	if c.KVTokens < c.MaxLen {
		return c, fmt.Errorf("%w: a KV budget of %d tokens cannot hold one request of the maximum length %d", ErrFragInvalid, c.KVTokens, c.MaxLen)
	}
	if c.KVTokens > 1<<30 {
		return c, fmt.Errorf("%w: KV budget %d above 2^30 tokens", ErrFragInvalid, c.KVTokens)
	}
	return c, nil
}

// FragSlots classifies every token slot of the budget at one step. The
// fields add up to Budget.
type FragSlots struct {
	// Step is the engine step, from 0 (on the arrival clock with
	// FragConfig.Arrivals), and Running the number of running requests.
	Step, Running int
	// Budget is the KV budget in token slots (FragConfig.KVTokens).
	Budget int
	// Tokens: slots holding the KV of a token already processed.
	Tokens int
	// Reserved: allocated to a running request and will hold one of its
	// tokens later.
	Reserved int
	// Internal: allocated to a running request but never used, because the
	// request ends before reaching it.
	Internal int
	// External: free, but the allocator cannot place the next waiting
	// request although all free slots together would hold it; also the
	// part of the budget smaller than one block.
	External int
	// Free: free for another reason: no request waits, or the next one
	// needs more slots than are free in total.
	Free int
}

// FragResult is one memory model's outcome on a trace. Shares are of the
// budget, averaged over steps.
type FragResult struct {
	// Model is the memory model run.
	Model MemoryModel
	// BlockSize is the paged block size in tokens; 0 for contiguous models.
	BlockSize int
	// Allocator placed the reservations of a contiguous model; AllocBuddy
	// (the zero value) for ModelPaged, where it plays no part.
	Allocator Allocator
	// TokenStates, Reserved, Internal, External and Free are the shares
	// (fractions, not percent) of the FragSlots classes Tokens, Reserved,
	// Internal, External and Free.
	TokenStates, Reserved, Internal, External, Free float64
	// AvgRunning is the average number of running requests per step.
	AvgRunning float64
	// Steps is the number of engine steps to drain the trace.
	Steps int
	// TokensPerStep is generated (decoded) tokens per step.
	TokensPerStep float64
	// Preemptions counts requests preempted (by recompute) for lack of
	// memory.
	Preemptions int
	// Requests is the number of requests run; Truncated of them were cut to
	// the maximum length.
	Requests, Truncated int
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
}

// Name names the run: "paged/16" for paged memory with 16-token blocks,
// "oracle/first-fit" for a contiguous model on an allocator.
func (r FragResult) Name() string { return FragRun{r.Model, r.BlockSize, r.Allocator}.Name() }

// PaperShares are the PagedAttention paper's Figure 2 shares, in percent.
type PaperShares struct {
	// TokenStates, Reserved, Internal and External are the percentages of
	// KV memory in those FragSlots classes; only TokenStates is set when
	// Partial.
	TokenStates, Reserved, Internal, External float64
	// Partial is true when the paper gives only the token-state share.
	Partial bool
}

// PaperFig2 returns the PagedAttention paper's Figure 2 shares for a
// memory model (Kwon et al., SOSP 2023; ShareGPT lengths, OPT-13B).
func PaperFig2(m MemoryModel) PaperShares {
	switch m {
	case ModelMax:
		return PaperShares{20.4, 13.3, 57.3, 8.9, false}
	case ModelPow2:
		return PaperShares{26.8, 17.9, 13.6, 41.6, false}
	case ModelOracle:
		return PaperShares{38.2, 25.2, 0, 36.6, false}
	}
	return PaperShares{TokenStates: 96.3, Partial: true}
}

// flight is one request as the engine sees it.
type flight struct {
	index         int
	arrival       int // step
	prompt, final int // after truncation
	tokens        int // token states held, or to recompute while waiting
	fresh         bool
	off           int // contiguous: offset in the arena
}

// memory is a memory model under the engine.
type memory interface {
	// need returns the slots admitting r now takes, in allocator units.
	need(r *flight) int
	// fits reports whether admit(r) would succeed, changing nothing.
	fits(r *flight) bool
	// admit gives r memory for its r.tokens tokens and those the model
	// reserves ahead; false means not now.
	admit(r *flight) (bool, error)
	// grow makes room for r's next token; false means no space.
	grow(r *flight) (bool, error)
	preempt(r *flight) error
	release(r *flight) error
	// held returns the slots allocated to running request r.
	held(r *flight) int
	free() int
	// unusable returns the budget slots the allocator can never hand out
	// (the part of the budget short of a whole block).
	unusable() int
	check() error
}

// Truncate cuts a request of in prompt and out output tokens to maxLen
// tokens as the study does: the prompt first, but leaving at least one
// output token when the trace has one and maxLen has room for it; an
// empty prompt counts as one token (the start token), a negative output
// as none, and a maxLen below 1 as 1. It returns the prompt and final
// lengths and whether anything was cut: 1 <= prompt <= final <= maxLen
// whatever the input, huge lengths included.
func Truncate(in, out, maxLen int) (prompt, final int, cut bool) {
	in, out, maxLen = max(in, 1), max(out, 0), max(maxLen, 1)
	if in <= maxLen && out <= maxLen-in { // in + out <= maxLen, without overflow
		return in, in + out, false
	}
	if out > 0 && maxLen > 1 {
		in = min(in, maxLen-1)
	} else {
		in = min(in, maxLen)
	}
	return in, maxLen, true
}

// Frag runs the engine loop of the fragmentation study over reqs with one
// memory model and returns its shares. blockSize is the paged block size
// (ignored by contiguous models).
//
// The engine: requests wait in file order at step 0 (or arrive by
// timestamp with cfg.Arrivals); at each step it admits waiting requests
// first come first served while the model gives them memory (the head of
// the queue blocks the rest); each running request admitted at an earlier
// step decodes one token; then every slot is classified; then finished
// requests free their memory. A paged request that finds no block for its
// next token preempts the most recently admitted running request (itself
// possibly), which frees its blocks and goes back to the head of the queue
// to be recomputed on readmission (vLLM's recompute preemption).
func Frag(reqs []Request, model MemoryModel, blockSize int, cfg FragConfig) (FragResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return FragResult{}, err
	}
	start := time.Now()
	var res FragResult
	switch model {
	case ModelPaged:
		// The paged model runs through sched.Scheduler, the library's own
		// step loop, configured as this engine (frag_paged.go).
		res, err = simulatePaged(reqs, blockSize, cfg)
	case ModelMax, ModelPow2, ModelOracle:
		blockSize = 0
		var mem memory
		if mem, err = newContiguous(model, cfg.Allocator, cfg.MaxLen, cfg.KVTokens); err != nil {
			return FragResult{}, err
		}
		res, err = simulate(reqs, mem, cfg)
	default:
		return FragResult{}, fmt.Errorf("%w: memory model %d", ErrFragInvalid, model)
	}
	res.Model, res.BlockSize, res.Elapsed = model, blockSize, time.Since(start)
	if model != ModelPaged {
		res.Allocator = cfg.Allocator
	}
	return res, err
}

func simulate(reqs []Request, mem memory, cfg FragConfig) (FragResult, error) {
	res := FragResult{Requests: len(reqs)}
	fl, order, err := flights(reqs, cfg, &res)
	if err != nil {
		return res, err
	}

	running := []*flight(nil)
	q := waitQueue{at: func(i int) *flight { return &fl[order[i]] }, arrived: len(fl)}
	if cfg.Arrivals {
		q.arrived = 0
	}
	head := q.head
	release := func(r *flight) (bool, error) {
		r.fresh = false
		if r.tokens < r.final {
			return false, nil
		}
		return true, mem.release(r)
	}

	var sum fragSums
	finished := 0
	for step := 0; finished < len(fl); step++ {
		if cfg.Arrivals {
			for q.arrived < len(fl) && fl[order[q.arrived]].arrival <= step {
				q.arrived++
			}
			if len(running) == 0 && head() == nil {
				// Idle until the next arrival: skipped, not counted.
				step = fl[order[q.arrived]].arrival - 1
				continue
			}
		}
		// Strict FCFS: the head blocks everyone behind it, so a small
		// request never overtakes a large one (the paper's setting).
		for h := head(); h != nil; h = head() {
			ok, err := mem.admit(h)
			if err != nil {
				return res, err
			}
			if !ok {
				break
			}
			q.pop()
			h.fresh = true
			running = append(running, h)
		}
		if len(running) == 0 {
			h := head()
			return res, fmt.Errorf("%w: request %d needs %d slots in an empty budget of %d", ErrNeverFits, h.index, mem.need(h), cfg.KVTokens)
		}

		// Oldest first, so under pressure the newest requests are the ones
		// preempted, and a request admitted this step only prefills.
		for i := 0; i < len(running); i++ {
			r := running[i]
			if r.fresh {
				continue
			}
			for {
				ok, err := mem.grow(r)
				if err != nil {
					return res, err
				}
				if ok {
					r.tokens++
					sum.decoded++
					break
				}
				// Victims leave from the tail, so the running prefix
				// before r is untouched and the loop index stays valid.
				v := running[len(running)-1]
				running = running[:len(running)-1]
				if err := mem.preempt(v); err != nil {
					return res, err
				}
				v.fresh = false
				q.push(v)
				res.Preemptions++
				if v == r {
					if len(running) == 0 {
						return res, fmt.Errorf("%w: request %d cannot grow past %d tokens with the whole budget", ErrNeverFits, r.index, r.tokens)
					}
					break
				}
			}
		}

		// Classify after decoding and before freeing: a finishing request
		// is counted at its full length once.
		s := FragSlots{Step: step, Running: len(running), Budget: cfg.KVTokens}
		held := 0
		for _, r := range running {
			h := mem.held(r)
			held += h
			s.hold(h, r.tokens, r.final)
		}
		free := mem.free()
		h := head()
		s.settle(held, free, mem.unusable(), h != nil && free >= mem.need(h) && !mem.fits(h))
		if cfg.OnStep != nil {
			cfg.OnStep(s)
		}
		sum.add(s)
		res.Steps++

		var done int
		if running, done, err = retire(running, release, cfg.Progress); err != nil {
			return res, err
		}
		finished += done
	}
	if err := mem.check(); err != nil {
		return res, err
	}
	sum.shares(&res, cfg.KVTokens)
	return res, nil
}

// hold counts the slots of one running request that holds held slots for
// tokens token states and will end at final tokens.
func (s *FragSlots) hold(held, tokens, final int) {
	s.Tokens += tokens
	extra, rest := held-tokens, final-tokens
	r := min(extra, rest)
	s.Reserved += r
	s.Internal += extra - r
}

// settle classifies the free slots once every running request is held:
// free slots are external fragmentation only when the allocator, not the
// total, keeps the next request out (blocked); the part of the budget no
// allocation can use (unusable) always is.
func (s *FragSlots) settle(held, free, unusable int, blocked bool) {
	if held+free+unusable != s.Budget {
		panic(fmt.Sprintf("bench: frag: step %d: %d held + %d free + %d unusable slots != budget %d", s.Step, held, free, unusable, s.Budget))
	}
	s.External = unusable
	if blocked {
		s.External += free
	} else {
		s.Free = free
	}
}

// fragSums adds the classification of every step.
type fragSums struct{ tokens, reserved, internal, external, free, running, decoded int64 }

func (sum *fragSums) add(s FragSlots) {
	sum.tokens += int64(s.Tokens)
	sum.reserved += int64(s.Reserved)
	sum.internal += int64(s.Internal)
	sum.external += int64(s.External)
	sum.free += int64(s.Free)
	sum.running += int64(s.Running)
}

// shares sets res's averages over its Steps.
func (sum *fragSums) shares(res *FragResult, budget int) {
	if res.Steps == 0 {
		return
	}
	total := float64(res.Steps) * float64(budget)
	res.TokenStates = float64(sum.tokens) / total
	res.Reserved = float64(sum.reserved) / total
	res.Internal = float64(sum.internal) / total
	res.External = float64(sum.external) / total
	res.Free = float64(sum.free) / total
	res.AvgRunning = float64(sum.running) / float64(res.Steps)
	res.TokensPerStep = float64(sum.decoded) / float64(res.Steps)
}

// FragRun names one run of a study: a memory model and, for ModelPaged, a
// block size, or for the contiguous models an allocator.
type FragRun struct {
	// Model is the memory model to run.
	Model MemoryModel
	// BlockSize is the block size in tokens for ModelPaged; ignored by the
	// contiguous models.
	BlockSize int
	// Allocator places the contiguous models' reservations; ignored by
	// ModelPaged.
	Allocator Allocator
}

// Name names the run as FragResult.Name does.
func (r FragRun) Name() string {
	if r.Model == ModelPaged {
		return fmt.Sprintf("paged/%d", r.BlockSize)
	}
	return r.Model.String() + "/" + r.Allocator.String()
}

// FragStudy runs Frag for every run on the same trace and configuration,
// on up to GOMAXPROCS goroutines, and returns the results in the order of
// runs. progress, if set, is called once per finished run (serially).
func FragStudy(reqs []Request, runs []FragRun, cfg FragConfig, progress func(done, total int, r FragResult)) ([]FragResult, error) {
	out := make([]FragResult, len(runs))
	errs := make([]error, len(runs))
	var mu sync.Mutex
	done := 0
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(runs)) {
		wg.Go(func() {
			for i := range work {
				c := cfg
				c.Allocator = runs[i].Allocator
				out[i], errs[i] = Frag(reqs, runs[i].Model, runs[i].BlockSize, c)
				if progress != nil {
					mu.Lock()
					done++
					progress(done, len(runs), out[i])
					mu.Unlock()
				}
			}
		})
	}
	for i := range runs {
		work <- i
	}
	close(work)
	wg.Wait()
	return out, errors.Join(errs...)
}

// waitQueue is the contiguous engine's waiting queue: preempted requests on a
// stack, the latest first, ahead of the requests never admitted, at(next)
// to at(arrived-1) in order.
type waitQueue struct {
	requeue       []*flight
	next, arrived int
	at            func(i int) *flight
}

// head returns the next request to admit, or nil.
func (q *waitQueue) head() *flight {
	if len(q.requeue) > 0 {
		return q.requeue[len(q.requeue)-1]
	}
	if q.next < q.arrived {
		return q.at(q.next)
	}
	return nil
}

// pop removes the head.
func (q *waitQueue) pop() {
	if len(q.requeue) > 0 {
		q.requeue = q.requeue[:len(q.requeue)-1]
	} else {
		q.next++
	}
}

// push requeues a preempted request at the head.
func (q *waitQueue) push(r *flight) { q.requeue = append(q.requeue, r) }

// flights prepares the engine's view of reqs: lengths truncated to
// cfg.MaxLen (counted in res.Truncated), arrival steps with cfg.Arrivals,
// and the order requests join the queue in: the file's, or by arrival.
func flights(reqs []Request, cfg FragConfig, res *FragResult) ([]flight, []int, error) {
	fl := make([]flight, len(reqs))
	order := make([]int, len(reqs))
	for i, q := range reqs {
		if q.InputTokens < 0 || q.OutputTokens < 0 || q.Arrival < 0 {
			return nil, nil, fmt.Errorf("%w: request %d has negative lengths or arrival", ErrFragInvalid, i)
		}
		p, f, cut := Truncate(q.InputTokens, q.OutputTokens, cfg.MaxLen)
		if cut {
			res.Truncated++
		}
		fl[i] = flight{index: i, prompt: p, final: f, tokens: p}
		if cfg.Arrivals {
			fl[i].arrival = int(q.Arrival / cfg.StepTime)
		}
		order[i] = i
	}
	if cfg.Arrivals {
		slices.SortStableFunc(order, func(a, b int) int { return fl[a].arrival - fl[b].arrival })
	}
	return fl, order, nil
}

// retire ends the running requests for which end reports true (end
// releases them), keeps the others in order, tells progress (if set) how
// many ended, and returns the rest and that count.
func retire(running []*flight, end func(*flight) (bool, error), progress func(int)) ([]*flight, int, error) {
	kept, n := running[:0], 0
	for _, r := range running {
		ended, err := end(r)
		if err != nil {
			return running, n, err
		}
		if ended {
			n++
			continue
		}
		kept = append(kept, r)
	}
	clear(running[len(kept):])
	if n > 0 && progress != nil {
		progress(n)
	}
	return kept, n, nil
}
