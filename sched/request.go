package sched

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
)

// State is where a request is in its life.
type State uint8

const (
	// Waiting: submitted, never admitted.
	Waiting State = iota
	// Running: some sample holds blocks.
	Running
	// Preempted: admitted once, no sample holds device blocks now (they
	// wait for readmission or sit in the host tier).
	Preempted
	// Finished: every sample produced its last token.
	Finished
	// Cancelled: ended by Cancel.
	Cancelled
	// Aborted: ended by the scheduler because it can never proceed in
	// this pool (Request.Err says why, Hooks.Aborted was called); every
	// block of its samples was freed.
	Aborted
)

var stateNames = [...]string{"waiting", "running", "preempted", "finished", "cancelled", "aborted"}

// String names the state.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// Done reports whether the state is final.
func (s State) Done() bool { return s >= Finished }

// Options are a request's parameters beyond its prompt.
type Options struct {
	// MaxTokens is the number of tokens each sample generates at most.
	// Required, at least 1.
	MaxTokens int
	// N is the number of parallel samples (0 means 1). The prompt is
	// computed once; the step that completes it forks N-1 more sequences
	// that share its blocks (paged.Manager.Fork) and each draws its own
	// first token. At most MaxSamples and Config.MaxRunning. With a State
	// group (paged.Config.Groups) each fork needs its own state pages at
	// once: Submit refuses (ErrNever) a request whose N samples' pages and
	// prompt blocks in the full attention groups exceed the pool; admission sets them aside from the prompt's first chunk until
	// it forks (an admission, of any request, that would leave the pool
	// without the pages of every unforked prompt's forks is undone and
	// waits at the head of the queue; a swap-in beside running sequences
	// waits too), and when the prompt's last step
	// finds no room for them all the same (a decode took it, or the
	// prompt's own chunks), Update sends the prompt back to the waiting
	// queue by recompute (Hooks.Preempted; the step's outputs for it are
	// dropped and drawn again) and forks it when it completes again. If
	// nothing else of the scheduler's is running and no prefix pin that
	// expires holds blocks (see the package documentation), so no room
	// can ever come, the request is aborted (Hooks.Aborted, Request.Err
	// wrapping ErrNever and the fork's paged.ErrNoSpace) and the others go
	// on. Blocks the caller's own sequences hold beside the scheduler
	// count as never released.
	N int
	// Priority orders the waiting queue under the Priority policy: lower
	// values first, as in vLLM. Ignored under FCFS.
	Priority int
	// BeamWidth makes the request a beam search of that many beams (0:
	// none; at most MaxSamples and Config.MaxRunning; not with N > 1). The
	// prompt is computed once and forked into BeamWidth beams, as for N;
	// from then on the caller says, with each step's UpdateBeams, which
	// beam every new beam extends, and the scheduler forks the chosen
	// parents and frees the beams no one extends. The beams are a group:
	// scheduled in the same step, side by side in the batch, and
	// preempted together. Preempted by recompute (or by swap when the host
	// tier is full), the request restarts from its prompt
	// (Hooks.Restarted); by swap, its beams go to the host tier together
	// and come back together. A beam that produces a stop token is
	// finished; the others go on.
	BeamWidth int
	// StopTokens end a sample early when it produces one of them.
	StopTokens []int32
	// Seq are the manager's per-sequence options (LoRA, salt, multimodal
	// ranges, window, retention). Its MaxTokens hint defaults to the
	// prompt length plus MaxTokens. AllowFullHit is refused: the step
	// that completes a prompt samples from its last token's logits, so
	// that token is always computed. Nil means none.
	Seq *paged.SeqOptions
}

// Request is a submitted request. Its methods read the scheduler's view of
// it; like the scheduler, they must be called from the goroutine that owns
// the scheduler.
type Request struct {
	s         *Scheduler
	id        uint64
	prio      int
	promptLen int
	maxTokens int
	n         int
	stop      []int32
	state     State
	admitted  bool
	forked    bool
	cached    int
	done      int // samples finished
	err       error
	// beam: a beam search (Options.BeamWidth), whose samples are beams
	// kept side by side in the running list.
	beam    bool
	samples []*entry
}

// ID returns the request's number: 1 for the first submitted, then in
// submission order.
func (r *Request) ID() uint64 { return r.id }

// State returns where the request is.
func (r *Request) State() State { return r.state }

// Err returns why the request was aborted, an error wrapping ErrNever,
// and nil in every other state.
func (r *Request) Err() error { return r.err }

// PromptLen returns the prompt's length in tokens.
func (r *Request) PromptLen() int { return r.promptLen }

// MaxTokens returns Options.MaxTokens.
func (r *Request) MaxTokens() int { return r.maxTokens }

// Priority returns Options.Priority.
func (r *Request) Priority() int { return r.prio }

// N returns the number of samples asked for (the beam width for a beam
// search).
func (r *Request) N() int { return r.n }

// BeamWidth returns Options.BeamWidth: 0 unless the request is a beam
// search.
func (r *Request) BeamWidth() int {
	if !r.beam {
		return 0
	}
	return r.n
}

// Beams returns the beams of a beam search that are still going: 0 before
// its prompt forks them (and after a restart), then BeamWidth less the
// beams finished.
func (r *Request) Beams() int {
	if !r.beam || !r.forked {
		return 0
	}
	return r.n - r.done
}

// Samples returns the number of samples that exist now: 1 until the
// prompt's step forks the others.
func (r *Request) Samples() int { return len(r.samples) }

// Cached returns the prompt tokens found in the prefix cache at the first
// admission.
func (r *Request) Cached() int { return r.cached }

// Outputs returns the tokens sample i has produced so far.
func (r *Request) Outputs(i int) int {
	if i < 0 || i >= len(r.samples) {
		return 0
	}
	return r.samples[i].outputs
}

// Seq returns the manager's handle of sample i; it names no sequence once
// the sample is done.
func (r *Request) Seq(i int) paged.SeqID {
	if i < 0 || i >= len(r.samples) || r.samples[i].where == inDone {
		return 0
	}
	return r.samples[i].seq
}

// refreshState sets Running or Preempted from the samples' places.
func (r *Request) refreshState() {
	if r.state.Done() || !r.admitted {
		return
	}
	r.state = Preempted
	for _, e := range r.samples {
		if e.where == inRunning {
			r.state = Running
			return
		}
	}
}

func (r *Request) stops(tok int32) bool { return slices.Contains(r.stop, tok) }

// where an entry is.
type place uint8

const (
	inWaiting place = iota // waiting queue, the manager's sequence waiting
	inSwapped              // waiting queue, the sequence in the host tier
	inRunning
	inDone
	// inGroup: in the host tier with its beam search's other beams,
	// queued through the first of them (inSwapped).
	inGroup
)

// entry is one sequence of a request: a sample, or the prompt before the
// fork.
type entry struct {
	// The decode path reads and writes only the fields up to step, which
	// share the entry's first cache line.
	seq    paged.SeqID
	req    *Request
	length int // tokens the manager's sequence holds
	// computed tokens have their KV; the rest of length is new this step.
	computed int
	outputs  int
	// limit is the outputs at which the sample ends: MaxTokens, or fewer
	// when MaxModelLen comes first.
	limit int
	// step is the last step that scheduled the entry.
	step int64
	// pending is the newest sampled token, not yet given to the manager
	// (it gets its slot when the sequence next runs).
	pending    int32
	hasPending bool
	// decoding: the pending token was given to the manager in this step
	// and its KV is not computed yet.
	decoding bool
	// stops: the request has stop tokens.
	stops bool
	where place

	idx int
	// rest are prompt tokens not yet given to the manager: the chunks of a
	// chunked prefill still to come. It is a view into buf.
	rest, buf []int32
	// heap is the entry's index in a priority queue.
	heap int
	// arrived is the step that last admitted or swapped the sequence in:
	// preempted in the same step it is recomputed, not swapped out (see
	// preemptBy).
	arrived int64
	// draft holds the drafts Propose gave for the next step (a buffer the
	// entry keeps); listed says the entry is in Scheduler.proposed.
	draft  []int32
	listed bool
	// spec are the drafts appended (paged.Manager.AppendSpeculative) in
	// this step, awaiting their verdict: a view into the step's buffer,
	// counted in length.
	spec []int32
	// chunk caps the prompt's chunks (0: no cap, the step's budget): set
	// when a larger chunk could never be computed in the pool, which a
	// layout with windows makes possible (see shrinkChunk).
	chunk int
	// pinChunk caps the chunks below chunk while prefix pins that expire
	// hold blocks: a halving made then, which did not fit for want of
	// their blocks, is dropped once they end (Scheduler.unpinChunk).
	pinChunk int
	// lastAlone makes the prompt's last token a chunk of its own (a step
	// that computes it alone): its samples fork in that step, when the
	// sliding-window and chunked-local groups hold least, and the forks'
	// state pages fit there only (Scheduler.lastAloneRoom). The fork
	// clears it: the sequence is a sample then.
	lastAlone bool
}

// chunkFor returns the largest chunk e's prompt takes within n tokens of
// budget.
func (e *entry) chunkFor(n int) int {
	c := e.chunk
	if e.pinChunk > 0 && (c == 0 || e.pinChunk < c) {
		c = e.pinChunk // a cap below chunk only
	}
	if c > 0 && c < n {
		return c
	}
	return n
}

// total returns every token of the sequence: the manager's, the pending
// one and the chunks to come.
func (e *entry) total() int {
	n := e.length + len(e.rest)
	if e.hasPending {
		n++
	}
	return n
}
