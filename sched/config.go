package sched

import (
	"fmt"
	"math"
)

// DefaultMaxRunning is Config.MaxRunning when left 0: vLLM's default
// max_num_seqs.
const DefaultMaxRunning = 256

// MaxSamples bounds Options.N, the parallel samples of one request.
const MaxSamples = 64

// Policy orders the waiting queue.
type Policy uint8

const (
	// FCFS admits in submission order; a preempted sequence goes back to
	// the head of the queue, and preemption takes the most recently
	// admitted running sequence.
	FCFS Policy = iota
	// Priority admits the lowest Options.Priority first (ties in
	// submission order) and preempts the running sequence with the highest
	// (priority, submission) pair, as vLLM's priority scheduling does.
	Priority
)

// String returns "fcfs" or "priority".
func (p Policy) String() string {
	switch p {
	case FCFS:
		return "fcfs"
	case Priority:
		return "priority"
	}
	return fmt.Sprintf("Policy(%d)", p)
}

// Preemption says how a running sequence gives up its blocks when the pool
// runs out.
type Preemption uint8

const (
	// Recompute frees the sequence's blocks and keeps its tokens
	// (paged.Manager.Preempt); readmission finds what is still in the prefix
	// cache and computes the rest again.
	Recompute Preemption = iota
	// Swap copies its blocks to the manager's host tier
	// (paged.Manager.SwapOut) and resumes it with SwapIn, without
	// recompute. When the host tier is full the sequence is preempted by
	// recompute instead, and so is one admitted or swapped in during the
	// same step (it found no block for its next token, or was the victim
	// of a decode after an AdmitFirst admission phase): its hits may name
	// blocks the step itself computes, which a swap-out, running before
	// the step's kernels, would copy unwritten (paged.Manager.SwapOut).
	// (A beam search restarts then.) The manager needs
	// paged.Config.HostBlocks.
	Swap
)

// String returns "recompute" or "swap".
func (p Preemption) String() string {
	switch p {
	case Recompute:
		return "recompute"
	case Swap:
		return "swap"
	}
	return fmt.Sprintf("Preemption(%d)", p)
}

// Config configures a Scheduler. Zero values mean the documented defaults.
type Config struct {
	// MaxRunning bounds the running sequences (vLLM's max_num_seqs); the
	// samples a request will fork count from its admission. Default
	// DefaultMaxRunning.
	MaxRunning int
	// MaxBatchTokens is the token budget of one step (vLLM's
	// max_num_batched_tokens): decodes take one token each, prompts the
	// tokens they compute. Default 0: no budget.
	MaxBatchTokens int
	// ChunkedPrefill lets a prompt larger than what is left of the budget
	// be computed over several steps, a chunk per step. The manager holds
	// and caches only the blocks of the chunks scheduled so far
	// (paged.Manager.AdmitChunk). Without it a prompt is admitted only when
	// the remaining budget covers the tokens it leaves to compute, its
	// uncached ones (paged.Manager.CanAdmitCached, as vLLM v1 counts
	// them), and Submit refuses a prompt longer than the whole budget.
	ChunkedPrefill bool
	// Policy orders the waiting queue and picks preemption victims.
	// Default FCFS.
	Policy Policy
	// Preemption is how a sequence is preempted. Default Recompute.
	Preemption Preemption
	// AdmitAfterPreemption runs the admission phase even in a step that
	// had to preempt. vLLM's scheduler skips admission then (the memory is
	// not there); workload W1's loop does not. Without it a step that
	// preempted admits all the same when nothing runs after its decode
	// phase (a request that could not grow even alone was aborted and
	// left the pool empty).
	AdmitAfterPreemption bool
	// AdmitFirst runs the admission phase before the decode phase: a step
	// first admits what fits, then decodes the sequences that were running
	// before it, whose growth may then preempt the newcomers. This is the
	// order of Orca-style simulations (and of the PagedAttention paper's
	// fragmentation study); vLLM decodes first. AdmitAfterPreemption has
	// no effect with it. When nothing runs after the decode phase of a
	// step that preempted (a request that could not grow even alone was
	// aborted), a second admission phase (Hooks.Phase PhaseAdmit again)
	// admits into the pool it left.
	AdmitFirst bool
	// ResampleAfterRecompute makes a recompute preemption drop the
	// sequence's newest sampled token, whose KV was never computed; the
	// recompute samples it again, one step later. Simulations that track
	// only KV lengths behave so; by default the token is kept and
	// recomputed with the rest, as vLLM does.
	ResampleAfterRecompute bool
	// CheckBeforeAdmit asks the manager's dry run (CanAdmit) before each
	// Admit. A refused admission then costs no error value and leaves the
	// manager's prefix statistics alone; by default Admit is called
	// directly and refused lookups count, as vLLM counts them.
	CheckBeforeAdmit bool
	// MaxDrafts is the most draft tokens Scheduler.Propose takes for one
	// sample's next step (vLLM's num_speculative_tokens). Default 0:
	// speculative decoding is off and Propose refuses drafts.
	MaxDrafts int
	// Hooks observe each step; nil hooks cost nothing.
	Hooks Hooks
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxRunning == 0 {
		c.MaxRunning = DefaultMaxRunning
	}
	switch {
	case c.MaxRunning < 0:
		return c, fmt.Errorf("%w: Config.MaxRunning %d is negative", ErrInvalid, c.MaxRunning)
	case c.MaxBatchTokens < 0:
		return c, fmt.Errorf("%w: Config.MaxBatchTokens %d is negative", ErrInvalid, c.MaxBatchTokens)
	case c.MaxDrafts < 0:
		return c, fmt.Errorf("%w: Config.MaxDrafts %d is negative", ErrInvalid, c.MaxDrafts)
	case c.Policy > Priority:
		return c, fmt.Errorf("%w: Config.Policy %v", ErrInvalid, c.Policy)
	case c.Preemption > Swap:
		return c, fmt.Errorf("%w: Config.Preemption %v", ErrInvalid, c.Preemption)
	}
	if c.MaxBatchTokens == 0 {
		c.MaxBatchTokens = math.MaxInt
	}
	return c, nil
}

// Phase names a point of a step where Hooks.Phase is called.
type Phase uint8

const (
	// PhaseDecode starts Schedule: running sequences get slots for their
	// next tokens, preempting others when the pool runs out.
	PhaseDecode Phase = iota
	// PhaseAdmit starts the admission of waiting sequences (twice in a
	// step of Config.AdmitFirst whose decode phase left nothing running).
	PhaseAdmit
	// PhaseScheduled ends Schedule.
	PhaseScheduled
	// PhaseOutput starts Update: sampled tokens are recorded and finished
	// sequences freed.
	PhaseOutput
	// PhaseDone ends Update.
	PhaseDone
)

var phaseNames = [...]string{"decode", "admit", "scheduled", "output", "done"}

// String names the phase.
func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("Phase(%d)", p)
}

// Hooks let a study or a server observe a step as it happens, on the
// goroutine that calls Schedule and Update. A hook may read the manager and
// the request it is given; it must not call the scheduler or change the
// manager. The one exception is Cancel from a hook called by Update
// (Finished, say to end the other samples once one is done): the request
// ends as between steps. From a hook called inside Schedule (Scheduled,
// Preempted, Restarted, Aborted, Phase before PhaseScheduled), Cancel and
// Update are refused with ErrInvalid and change nothing.
type Hooks struct {
	// Phase is called at each phase boundary of a step, for timing.
	Phase func(p Phase)
	// Scheduled is called when a sequence is given its tokens for the step:
	// in the decode phase after its Append, in the admission phase after
	// its Admit or SwapIn. Under the Priority policy a sequence scheduled
	// earlier in the step may still be preempted (Preempted follows), and
	// one whose request is aborted later in the step is taken out of it
	// (Aborted follows), and its drafts (Scheduled.Drafts) may be
	// withdrawn when a later sequence finds no block: the Step Schedule
	// returns says what the step runs. sc is the step's own entry (see
	// Step), valid during the call (the step's list grows and drops
	// entries): read it, do not modify or keep it.
	Scheduled func(sc *Scheduled)
	// Preempted is called when a running sequence is preempted, after the
	// manager released or swapped out its blocks; for a beam search, once
	// per beam when its beams are swapped out, and not at all when it
	// restarts (Restarted).
	Preempted func(r *Request, sample int, swapped bool)
	// Finished is called when a sequence produced its last token, after
	// the manager freed it.
	Finished func(r *Request, sample int)
	// Restarted is called when a beam search is preempted by recompute:
	// its beams were freed (Preempted is not called for them) and it waits
	// to compute its prompt again, so the caller drops what it kept of
	// them (scores, tokens).
	Restarted func(r *Request)
	// Aborted is called when a request is ended because it can never
	// proceed in this pool: one of its sequences (or a beam search's
	// beams) cannot grow even with every block the scheduler could free,
	// does not fit the pool even alone, or can never be admitted or
	// swapped in. Preempting or readmitting it would only come back to the
	// same point. The whole request ends, every sample of it: its blocks
	// are freed, it is in state Aborted, and err (also Request.Err) wraps
	// ErrNever and says why. The other requests go on. It is called from
	// Schedule, or from Update when a prompt's forks find no room for
	// their state pages with nothing else running (Options.N); from
	// Update, the hook may Cancel other requests, as Finished may.
	Aborted func(r *Request, err error)
}
