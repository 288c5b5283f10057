package sched

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
)

// Scheduled is one sequence's work in a step.
type Scheduled struct {
	// Request is the sequence's request and Sample its index there.
	Request *Request
	Sample  int
	// Seq is the manager's handle of the sequence.
	Seq paged.SeqID
	// Start is the position of the first token computed this step and
	// NewTokens how many are: positions [Start, Start+NewTokens) get their
	// KV written this step, and they are the sequence's last tokens.
	Start, NewTokens int
	// Cached is the prefix found in the cache, for a sequence admitted this
	// step by Admit (0 otherwise).
	Cached int
	// Outputs is how many tokens Update expects for this entry: 0 for a
	// prompt chunk that is not the last, N (or BeamWidth) for the step
	// that completes an N-sample (or beam search) prompt, 1 otherwise (for
	// an entry with Drafts, the token sampled after the accepted ones).
	Outputs int
	// Generated is how many tokens the sample had produced before this
	// step (0 for every sample of a forking prompt): the step's output is
	// its output number Generated, counting from 0 (with Drafts, the
	// accepted drafts are outputs Generated on, and the sampled token
	// follows them).
	Generated int
	// Admitted says the sequence was admitted (or swapped in) this step;
	// otherwise it was running already.
	Admitted bool
	// Prefill says the tokens are prompt (or recomputed) tokens, not one
	// decoded token.
	Prefill bool
	// Drafts are the draft tokens (Scheduler.Propose) the step verifies
	// for the sequence, after its pending token: its last len(Drafts)
	// tokens, counted in NewTokens (1 + len(Drafts)). The model computes
	// them with the rest, decides how many to accept, samples the token
	// after those, and UpdateSpeculative takes the verdict. A view valid
	// until the next Schedule; nil when the sequence verifies none.
	Drafts []int32

	e *entry
	// recompute: admitted by Admit, its prefill counted as resumed when it
	// had run before.
	recompute bool
}

// Step is the work of one step, valid until the next Schedule. It is the
// scheduler's own record of the step, which Update, UpdateBeams, Cancel
// and BuildBatch read back: read it, do not modify it.
type Step struct {
	// Number counts the steps from 1.
	Number int64
	// Scheduled lists the sequences to run: decodes and continued chunks
	// in admission order, then the admissions.
	Scheduled []Scheduled
	// Outputs is the number of tokens Update expects: the sum of the
	// entries' Outputs.
	Outputs int
	// Tokens is the number of tokens computed, at most
	// Config.MaxBatchTokens, the drafts included.
	Tokens int
	// Drafts is the number of draft tokens the step verifies, the sum of
	// the entries' len(Drafts): when it is not 0, UpdateSpeculative
	// takes the step's verdict and Update refuses it.
	Drafts int
	// Preempted counts the sequences preempted in this step, those that
	// gave up their blocks because they could not grow even alone (and
	// were aborted) included.
	Preempted int
	// Checkpoints are the state checkpoints to write in this step (State
	// groups; see paged.Checkpoint): Schedule takes them from the manager
	// (paged.Manager.TakeCheckpoints) once every sequence of the step has
	// its tokens, so a server never forgets to, which would drop them and
	// leave its states without prefix hits. The server writes each while
	// computing the step: those whose Tokens equal the tokens computed
	// before the step are copies of the sequence's own state pages, made
	// after the batch's Copies and before the kernels; the others as the
	// kernels pass them. They include the checkpoints of the caller's own
	// sequences (beside the scheduler) that got their step's tokens
	// before Schedule; one that appends to its own sequences after
	// Schedule calls TakeCheckpoints itself after those appends, for
	// theirs. Pages are views valid, like the step, until the next
	// Schedule. Empty without State groups, and in the vLLM-compatible
	// mode (paged.Config.UnifiedFreeQueue).
	Checkpoints []paged.Checkpoint

	// draftBuf holds the step's drafts, which Scheduled.Drafts view.
	draftBuf []int32
}

// add extends Scheduled by one entry and returns it, to be filled in
// place: appending a composite literal of a type with pointers would copy
// it with write barriers.
func (st *Step) add() *Scheduled {
	k := len(st.Scheduled)
	if k == cap(st.Scheduled) {
		st.Scheduled = append(st.Scheduled, Scheduled{})
	} else {
		st.Scheduled = st.Scheduled[:k+1]
	}
	return &st.Scheduled[k]
}

func (s *Scheduler) phase(p Phase) {
	if s.cfg.Hooks.Phase != nil {
		s.cfg.Hooks.Phase(p)
	}
}

// Schedule decides the next step: first every running sequence gets slots
// for its next tokens (its pending sampled token, or its next prompt chunk)
// in admission order while the token budget lasts, preempting victims when
// the pool runs out; then waiting sequences are admitted in queue order
// while they fit, the running limit and the budget allow. The returned
// step is valid until the next Schedule; Update must follow, with the
// tokens sampled. The step's state checkpoints (Step.Checkpoints) are
// taken from the manager last: do not call paged.Manager.TakeCheckpoints
// for the scheduler's sequences, which would find none. With nothing to
// do (Busy is false) it returns an empty step, which is no scheduled step:
// Update and BuildBatch refuse it (ErrInvalid), so a loop that may go idle
// asks Busy before Schedule; its Checkpoints are those of the caller's own
// sequences, if any.
//
// A request that can never proceed in this pool (a sequence that does not
// fit the pool even alone, that cannot grow even alone in it, or that the
// manager says can never be admitted or swapped in) is not an error of
// Schedule: the request is aborted (state Aborted, Request.Err,
// Hooks.Aborted, Stats.Aborted), its blocks are freed, and the step goes
// on with the others. An error other than ErrInvalid (a Schedule without
// Update) means the manager broke its contract; the scheduler is then
// unusable.
func (s *Scheduler) Schedule() (*Step, error) {
	if s.inStep {
		return nil, fmt.Errorf("%w: Schedule called twice without Update", ErrInvalid)
	}
	st := &s.step
	if st.Drafts > 0 {
		// The decode fast path leaves Drafts as it finds it, nil: only
		// entries that verify drafts set it (schedule).
		for i := range st.Scheduled {
			st.Scheduled[i].Drafts = nil
		}
	}
	st.Scheduled, st.Outputs, st.Tokens, st.Preempted = st.Scheduled[:0], 0, 0, 0
	st.Drafts, st.draftBuf = 0, st.draftBuf[:0]
	if !s.Busy() {
		s.dropProposals()
		// The caller's own sequences may have checkpoints due.
		st.Checkpoints = s.m.TakeCheckpoints(st.Checkpoints[:0])
		return st, nil
	}
	s.inStep, s.scheduling = true, true
	s.st.Steps++
	st.Number = s.st.Steps
	budget := s.cfg.MaxBatchTokens
	var err error
	if s.cfg.AdmitFirst {
		s.phase(PhaseAdmit)
		if budget, err = s.admitAll(budget); err != nil {
			return nil, s.fail(err)
		}
		s.phase(PhaseDecode)
		if budget, err = s.decodeAll(budget); err != nil {
			return nil, s.fail(err)
		}
		if st.Preempted > 0 && len(s.running) == 0 {
			// Nothing runs after the decode phase: a request that could
			// not grow even alone was aborted (after the victims it
			// preempted) and left the pool empty. Admit again into it,
			// or the step may run nothing while the head fits (audit 46).
			s.phase(PhaseAdmit)
			if _, err = s.admitAll(budget); err != nil {
				return nil, s.fail(err)
			}
		}
	} else {
		s.phase(PhaseDecode)
		if budget, err = s.decodeAll(budget); err != nil {
			return nil, s.fail(err)
		}
		s.phase(PhaseAdmit)
		// (A step that preempted admits all the same when nothing runs
		// after the decode phase: a request that could not grow even
		// alone was aborted, after the victims it preempted, and left
		// the pool empty; without admissions the step may run nothing
		// while the head fits, audit 46.)
		if st.Preempted == 0 || len(s.running) == 0 || s.cfg.AdmitAfterPreemption {
			if _, err = s.admitAll(budget); err != nil {
				return nil, s.fail(err)
			}
		}
	}
	if s.reserved > 0 && s.forkPages > 0 {
		if err = s.forkVictims(); err != nil {
			return nil, s.fail(err)
		}
	}
	for len(st.Scheduled) == 0 && st.Preempted == 0 && len(s.running) == 0 && s.waiting.len() > 0 && !s.pinned() {
		// The head of the queue does not fit a pool the scheduler holds
		// nothing of: it never will, and it blocks everyone behind it.
		// (While prefix pins hold blocks it waits: pins end.)
		h := s.waiting.peek()
		s.abort(h.req, fmt.Errorf("%w: request %d (%d tokens) does not fit an empty pool", ErrNever, h.req.id, h.total()))
		if _, err = s.admitAll(s.cfg.MaxBatchTokens); err != nil {
			return nil, s.fail(err)
		}
	}
	s.dropProposals()
	// Every Append and Admit of the step is done: the checkpoints they
	// reach are the step's.
	st.Checkpoints = s.m.TakeCheckpoints(st.Checkpoints[:0])
	s.st.PeakRunning = max(s.st.PeakRunning, len(s.running))
	s.scheduling = false
	s.phase(PhaseScheduled)
	return st, nil
}

// forkVictims makes room for the state pages of the forks of the prompts
// that complete in this step (Update forks them) by preempting victims in
// the policy's order, as a decode that finds no room for its next token
// does, until the pool holds the pages or the victim is such a prompt
// (whose fork then fails and requeues it, see fork). Admission sets these
// pages aside (forkRoom), but a running sequence's decodes take them as
// they grow: a beam search admitted beside a forking prompt that outranks
// it took them at every try, the prompt went back to the queue at each
// fork, preempted the beam search again on its next admission, and the
// two restarted each other forever (TestForkingPromptPreemptsBeamsForItsForks).
func (s *Scheduler) forkVictims() error {
	need := 0
	var prompt *entry
	for i := range s.step.Scheduled {
		sc := &s.step.Scheduled[i]
		if r := sc.e.req; !r.forked && r.n > 1 && sc.Outputs > 0 {
			need += (r.n - 1) * s.forkPages
			prompt = sc.e
		}
	}
	for need > 0 && len(s.running) > 0 {
		// The forks come at the Update, after the step ends: the blocks
		// parked until then (a victim's block a Copy of the step reads)
		// are free by then. Uncounted, a victim whose freed block was
		// parked looked as if it had freed too little, and one more was
		// preempted (TestForkVictimsCountParkedBlocks).
		st := s.m.Stats()
		if roomOf(st)+st.ParkedBlocks >= need {
			return nil
		}
		if s.step.Drafts > 0 {
			// Drafts give way before any sequence is preempted, as in
			// the decode phase (audit 46: a sample swapped in with
			// drafts whose states took the forks' pages was preempted
			// for them, by recompute).
			if _, err := s.dropDrafts(); err != nil {
				return err
			}
			continue
		}
		vi := s.victim()
		v := s.running[vi]
		if !v.req.forked && v.req.n > 1 && v.step == s.step.Number && len(v.rest) == 0 {
			return nil // a forking prompt: its own fork decides
		}
		if v.req.beam && v.req.forked {
			if _, _, _, err := s.preemptGroup(v.req, 0, 0, prompt); err != nil {
				return err
			}
			continue
		}
		if v.step == s.step.Number {
			s.unschedule(v)
		}
		if err := s.preempt(vi); err != nil {
			return err
		}
	}
	return nil
}

// pinned reports whether prefix pins (paged.Manager.Pin) that expire hold
// blocks of the pool. Such pins end, so a sequence that does not fit beside
// them waits instead of being aborted as one that never fits. Blocks held
// by the caller's own sequences, or while any pin without an expiry lives,
// count as held for good.
func (s *Scheduler) pinned() bool {
	ps := s.m.PinStats()
	return ps.PinnedBlocks > 0 && ps.Lasting == 0
}

// fail ends the step after an error, so the caller sees the error and
// not a second one from the next call.
func (s *Scheduler) fail(err error) error {
	s.inStep, s.scheduling = false, false
	return err
}

// abort ends r, which can never proceed in this pool, in the middle of
// Schedule: its samples scheduled in this step are taken back, every
// sample's blocks are freed and the running list is swept (nothing else in
// it is done during Schedule). It returns the tokens given back to the
// step's budget.
func (s *Scheduler) abort(r *Request, err error) int {
	n := 0
	for i := 0; i < len(s.step.Scheduled); {
		if e := s.step.Scheduled[i].e; e.req == r {
			n += s.unschedule(e)
			continue
		}
		i++
	}
	s.aborted(r, err)
	if s.dirty {
		s.sweep()
	}
	return n
}

// aborted marks r aborted for err, frees what its samples hold, counts it
// and calls the hook.
func (s *Scheduler) aborted(r *Request, err error) {
	r.err = err
	s.end(r, Aborted)
	s.st.Aborted++
	if s.cfg.Hooks.Aborted != nil {
		s.cfg.Hooks.Aborted(r, err)
	}
}

// decodeAll gives every running sequence not yet scheduled in this step
// its next tokens, in admission order, while the budget lasts, preempting
// victims when the pool runs out. It returns the budget left.
func (s *Scheduler) decodeAll(budget int) (int, error) {
	step := s.st.Steps
	for i := 0; i < len(s.running) && budget > 0; {
		e := s.running[i]
		if e.step == step { // admitted in this step (AdmitFirst)
			i++
			continue
		}
		if s.beams > 0 && s.groupOverBudget(i, budget) {
			break
		}
		var err error
		if e.hasPending && e.length == e.computed {
			// The common case, a decode, without the general path's
			// branches.
			s.st.AppendCalls++
			if err = s.m.Append(e.seq, e.pending); err == nil {
				e.hasPending, e.decoding = false, true
				e.length++
				// (s.proposed first: e.draft is off the entry's first
				// cache line, which is all a decode reads otherwise.)
				if len(s.proposed) > 0 && len(e.draft) > 0 {
					// Drafts leave a token of the budget to every
					// sequence after this one.
					if err := s.speculate(e, budget-len(s.running)+i); err != nil {
						return budget, err
					}
					n := 1 + len(e.spec)
					s.schedule(e, n, 0, false, false)
					budget -= n
					i++
					continue
				}
				// A sampled token means the prompt is complete and
				// forked: one output. (Drafts is nil: see Schedule.)
				st := &s.step
				sc := st.add()
				sc.Request, sc.Sample, sc.Seq, sc.Start, sc.NewTokens = e.req, e.idx, e.seq, e.computed, 1
				sc.Cached, sc.Outputs, sc.Generated, sc.Admitted, sc.Prefill, sc.e, sc.recompute = 0, 1, e.outputs, false, false, e, false
				e.step = step
				st.Outputs++
				st.Tokens++
				s.st.DecodeTokens++
				if s.cfg.Hooks.Scheduled != nil {
					s.cfg.Hooks.Scheduled(sc)
				}
				budget--
				i++
				continue
			}
		} else {
			var n int
			if n, err = s.grow(e, budget, budget-len(s.running)+i); err == nil {
				s.schedule(e, n, 0, false, false)
				budget -= n
				i++
				continue
			}
		}
		if !errors.Is(err, paged.ErrNoSpace) {
			return budget, fmt.Errorf("sched: request %d: append to %v: %w", e.req.id, e.seq, err)
		}
		if st := &s.step; st.Drafts > 0 {
			// Drafts give way before any sequence is preempted.
			n, err := s.dropDrafts()
			if err != nil {
				return budget, err
			}
			budget += n
			continue
		}
		vi := s.victim()
		v := s.running[vi]
		if v == e && len(s.running) == 1 && s.halveChunk(e, budget) {
			continue
		}
		if v == e && len(s.running) == 1 && !(v.req.beam && v.req.forked) && !s.pinned() {
			// Alone, with every block the scheduler could free, it still
			// cannot grow: a preemption would only bring it back here. It
			// gives up its blocks as a victim would, for good. (With
			// prefix pins holding blocks it is preempted below and waits
			// for them to end.)
			s.step.Preempted++
			s.st.Preemptions++
			s.abort(e.req, fmt.Errorf("%w: request %d cannot grow past %d tokens in this pool", ErrNever, e.req.id, e.length))
			break
		}
		if v.req.beam && v.req.forked {
			// A beam search gives up all its beams at once.
			if i, budget, _, err = s.preemptGroup(v.req, i, budget, e); err != nil {
				return budget, err
			}
			continue // (self: the sequences after the beams go on, at i)
		}
		if v.step == step { // scheduled earlier in this step: take it back
			budget += s.unschedule(v)
			if vi < i {
				i--
			}
		}
		if err := s.preempt(vi); err != nil {
			return budget, err
		}
		// The sequence itself was the victim (v == e, at i): the ones
		// after it go on, now at i, with the blocks it gave up. (vLLM
		// ends the phase there; under FCFS the victim is the newest, so
		// nothing runs after it. Under Priority they would wait a step,
		// audit 46.)
	}
	return budget, nil
}

// admitAll admits waiting sequences in queue order while they fit, and
// returns the budget left. A head that can never be admitted is aborted
// and the next one tried.
func (s *Scheduler) admitAll(budget int) (int, error) {
	for s.waiting.len() > 0 && budget > 0 {
		e := s.waiting.peek()
		n, ok, err := s.admit(e, budget)
		if err != nil {
			if !errors.Is(err, ErrNever) {
				return budget, err
			}
			budget += s.abort(e.req, err)
			continue
		}
		if !ok {
			if e.req.state == Aborted {
				// A swapped-out head alone on the device that found no
				// block for its next token once swapped in was aborted
				// there (swapIn, preemptGroup): the pool it emptied may
				// hold the next head. Stopped there, the step ran
				// nothing and the next admitted that head
				// (TestAudit49SwapInAbortAdmitsNext).
				continue
			}
			break
		}
		budget -= n
	}
	return budget, nil
}

// grow gives a running sequence its next tokens: its pending token, and
// perhaps its drafts, at most room of them (speculate), or the next chunk
// of its prompt within budget (none when it holds tokens not computed
// yet, swapped in after a step that dropped them). It returns how many
// tokens the step computes for it.
func (s *Scheduler) grow(e *entry, budget, room int) (int, error) {
	s.st.AppendCalls++
	switch {
	case e.hasPending:
		if err := s.m.Append(e.seq, e.pending); err != nil {
			return 0, err
		}
		e.hasPending, e.decoding = false, true
		e.length++
		if len(e.draft) > 0 && e.length-e.computed == 1 { // a decode
			if err := s.speculate(e, min(room, budget-(e.length-e.computed))); err != nil {
				return 0, err
			}
		}
	case len(e.rest) > 0 && e.length == e.computed:
		// (Swapped in with a chunk its preemption's step never computed,
		// the step recomputes that chunk alone: the manager slides the
		// windows from the end of what it holds when given more.)
		s.unpinChunk(e)
		k := e.nextChunk(budget)
		if k > 0 {
			if err := s.m.Append(e.seq, e.rest[:k]...); err != nil {
				return 0, err
			}
			e.rest = e.rest[k:]
			e.length += k
		}
	}
	return e.length - e.computed, nil
}

// schedule records e's work in the step. A sequence admitted by Admit
// computes its prompt (or recomputes it); one that was running or swapped
// in decodes its pending token, or computes a prompt chunk.
func (s *Scheduler) schedule(e *entry, n, cached int, admitted, recompute bool) {
	out := 0
	if len(e.rest) == 0 {
		out = 1
		if !e.req.forked {
			out = e.req.n
		}
	}
	prefill := recompute || e.outputs == 0 || n-len(e.spec) > 1
	st := &s.step
	sc := st.add()
	sc.Request, sc.Sample, sc.Seq, sc.Start, sc.NewTokens = e.req, e.idx, e.seq, e.computed, n
	sc.Cached, sc.Outputs, sc.Generated, sc.Admitted, sc.Prefill, sc.e = cached, out, e.outputs, admitted, prefill, e
	sc.recompute, sc.Drafts = recompute, e.spec
	e.step = st.Number
	st.Outputs += out
	st.Tokens += n
	if prefill {
		s.st.PrefillTokens += int64(n)
		if recompute && e.outputs > 0 {
			s.st.ResumedTokens += int64(n)
		}
	} else {
		s.st.DecodeTokens += int64(n)
	}
	if s.cfg.Hooks.Scheduled != nil {
		s.cfg.Hooks.Scheduled(sc)
	}
}

// unschedule takes back a sequence scheduled earlier in the step (the
// Priority policy's victim may be one) and returns its tokens to the
// budget. Its appended tokens stay; preemption folds them into the
// sequence to recompute or swap in.
func (s *Scheduler) unschedule(e *entry) int {
	i := slices.IndexFunc(s.step.Scheduled, func(sc Scheduled) bool { return sc.e == e })
	s.withdraw(&s.step.Scheduled[i]) // its drafts are never verified
	sc := s.step.Scheduled[i]
	s.step.Scheduled = slices.Delete(s.step.Scheduled, i, i+1)
	// No longer scheduled in this step: a beam search swapped out and in
	// again within it must not be taken back twice.
	e.step = 0
	s.step.Outputs -= sc.Outputs
	s.step.Tokens -= sc.NewTokens
	if sc.Prefill {
		s.st.PrefillTokens -= int64(sc.NewTokens)
		if sc.recompute && e.outputs > 0 {
			s.st.ResumedTokens -= int64(sc.NewTokens)
		}
	} else {
		s.st.DecodeTokens -= int64(sc.NewTokens)
	}
	return sc.NewTokens
}

// victim picks the running sequence to preempt: the newest under FCFS,
// the highest (priority, submission, sample) under Priority.
func (s *Scheduler) victim() int {
	if !s.waiting.prio {
		return len(s.running) - 1
	}
	vi := 0
	for i, e := range s.running {
		if less(s.running[vi], e) {
			vi = i
		}
	}
	return vi
}

// preempt takes running[vi] out of the running list and gives up its
// device blocks, by swapping when configured and the host tier has room,
// else by recompute; it goes back to the waiting queue.
func (s *Scheduler) preempt(vi int) error {
	return s.preemptBy(vi, s.cfg.Preemption == Swap)
}

// preemptBy is preempt, swapping only when swap says so.
func (s *Scheduler) preemptBy(vi int, swap bool) error {
	v := s.running[vi]
	r := v.req
	// Its drafts go first: the manager keeps only accepted tokens.
	if err := s.unspec(v); err != nil {
		return err
	}
	if vi == len(s.running)-1 {
		s.running[vi] = nil
		s.running = s.running[:vi]
	} else {
		s.running = slices.Delete(s.running, vi, vi+1)
	}
	if !r.forked {
		s.reserved -= r.n - 1
	}
	if v.computed < v.length {
		// Scheduled in this step, which now drops it: the blocks its
		// uncomputed tokens filled must not stay in the prefix cache.
		if err := s.m.Uncompute(v.seq, v.computed); err != nil {
			return fmt.Errorf("sched: request %d: uncompute %v: %w", r.id, v.seq, err)
		}
	}
	swapped := false
	if swap && v.arrived != s.st.Steps {
		// (One admitted or swapped in this step is recomputed instead.
		// Its prefix hits may name blocks another sequence of this step
		// computes, and the step's transfers run before its kernels, so
		// a swap-out would copy those blocks before their KV is written:
		// a later swap-in that found them gone from the device read the
		// copies (another sequence's KV, TestServerLoop's and the state
		// machine's shadow KV stores, audit21). Recomputing costs little:
		// the hits are hit again.)
		if err := s.unchunk(v); err != nil {
			return err
		}
		err := s.m.SwapOut(v.seq)
		switch {
		case err == nil:
			swapped = true
		case !errors.Is(err, paged.ErrNoSpace):
			return fmt.Errorf("sched: request %d: swap out %v: %w", r.id, v.seq, err)
		}
	}
	if swapped {
		v.where = inSwapped
		s.st.SwappedOut++
	} else {
		if err := s.m.Preempt(v.seq); err != nil {
			return fmt.Errorf("sched: request %d: preempt %v: %w", r.id, v.seq, err)
		}
		if s.cfg.ResampleAfterRecompute {
			if err := s.unsample(v); err != nil {
				return err
			}
		}
		// A waiting sequence keeps every token to recompute, in order:
		// what the manager has, then the sampled token or the prompt
		// chunks still to come.
		if err := s.fold(v); err != nil {
			return err
		}
		v.where, v.computed, v.decoding = inWaiting, 0, false
	}
	s.waiting.pushFront(v)
	s.step.Preempted++
	s.st.Preemptions++
	r.refreshState()
	if s.cfg.Hooks.Preempted != nil {
		s.cfg.Hooks.Preempted(r, v.idx, swapped)
	}
	return nil
}

// unchunk gives the prompt chunk a step appended to v and then dropped
// (its tokens from v.computed on, Uncompute'd) back to the chunks to
// come, before v is swapped out: swapped in, it appends them again in
// chunks sized then, halved when alone (halveChunk), as for any chunk.
// Left in the manager, the whole chunk was computed again in the step
// that swapped v in, and CanSwapIn counted the blocks that step reads
// (the windows from the chunk's first position), which could be more
// than an admission may take where the prompt's last token alone fits,
// Submit's floor: never swapped in (TestSwappedOutMidPromptComesBack).
// A decode's token is left (its step reads what a decode reads). With
// State groups too: the manager lets a step dropped in the step being
// built be cut back to what Uncompute named (paged.Manager.Truncate),
// since no state absorbed it.
func (s *Scheduler) unchunk(v *entry) error {
	if v.computed >= v.length || v.computed == 0 || v.decoding {
		return nil
	}
	toks, err := s.m.Tokens(v.seq)
	if err != nil {
		return fmt.Errorf("sched: request %d: tokens of %v: %w", v.req.id, v.seq, err)
	}
	rest := make([]int32, 0, v.length-v.computed+len(v.rest))
	rest = append(append(rest, toks[v.computed:v.length]...), v.rest...)
	if err := s.m.Truncate(v.seq, v.computed); err != nil {
		return fmt.Errorf("sched: request %d: give back the dropped chunk of %v: %w", v.req.id, v.seq, err)
	}
	v.buf, v.rest, v.length = rest, rest, v.computed
	return nil
}

// unsample drops a preempted sequence's newest output if its KV was never
// computed: the pending token, or one appended in this step.
func (s *Scheduler) unsample(v *entry) error {
	switch {
	case v.hasPending:
		v.hasPending = false
	case v.decoding:
		if err := s.m.Truncate(v.seq, v.length-1); err != nil {
			return fmt.Errorf("sched: request %d: drop the last token of %v: %w", v.req.id, v.seq, err)
		}
		v.length--
		v.decoding = false
	default:
		return nil
	}
	v.outputs--
	return nil
}

// fold gives a waiting sequence its pending token and unsent chunks.
func (s *Scheduler) fold(v *entry) error {
	if v.hasPending {
		if err := s.m.Append(v.seq, v.pending); err != nil {
			return fmt.Errorf("sched: request %d: keep the pending token of %v: %w", v.req.id, v.seq, err)
		}
		v.hasPending = false
		v.length++
	}
	if len(v.rest) > 0 {
		if err := s.m.Append(v.seq, v.rest...); err != nil {
			return fmt.Errorf("sched: request %d: keep the prompt of %v: %w", v.req.id, v.seq, err)
		}
		v.length += len(v.rest)
		v.rest = v.rest[:0]
	}
	return nil
}

// admit tries the head of the waiting queue. It reports the tokens
// scheduled and false when the head must wait (admission stops, first
// come first served).
func (s *Scheduler) admit(e *entry, budget int) (int, bool, error) {
	r := e.req
	seqs := 1
	switch {
	case !r.forked:
		seqs = r.n
	case r.beam:
		seqs = r.n - r.done
	}
	if len(s.running)+s.reserved+seqs > s.cfg.MaxRunning {
		return 0, false, nil
	}
	if e.where == inSwapped {
		if r.beam && r.forked {
			return s.swapInGroup(e, budget)
		}
		return s.swapIn(e, budget)
	}
	if !s.cfg.ChunkedPrefill && e.length > budget {
		// The budget covers the tokens the admission leaves to compute,
		// not the cached prefix (vLLM v1 compares the tokens left after
		// its prefix lookup): a dry run finds the hit. A head it refuses
		// goes on to be refused below, as any head (counted, or aborted).
		a, cached, err := s.m.CanAdmitCached(e.seq)
		if err != nil {
			return 0, false, fmt.Errorf("sched: request %d: CanAdmitCached %v: %w", r.id, e.seq, err)
		}
		if a == paged.AdmitOK && e.length-cached > budget {
			return 0, false, nil
		}
	}
	if s.cfg.ChunkedPrefill {
		s.unpinChunk(e)
	}
	if s.cfg.CheckBeforeAdmit {
		var a paged.Admission
		var err error
		if s.cfg.ChunkedPrefill {
			a, err = s.m.CanAdmitChunk(e.seq, e.chunkFor(budget))
			if err == nil && a == paged.AdmitNever {
				a, err = s.shrinkChunk(e, e.chunkFor(budget))
			}
		} else {
			a, err = s.m.CanAdmit(e.seq)
		}
		if err != nil {
			return 0, false, fmt.Errorf("sched: request %d: CanAdmit %v: %w", r.id, e.seq, err)
		}
		switch a {
		case paged.AdmitLater:
			return 0, false, nil
		case paged.AdmitNever:
			// Submit checked the longest a sequence of one KV cache group
			// can get, not with several.
			return 0, false, fmt.Errorf("%w: request %d: %v can never be admitted", ErrNever, r.id, e.seq)
		}
	}
	if !s.forkRoom(r, nil) {
		// An admission only takes blocks: it would leave no room either.
		return 0, false, nil
	}
	s.st.AdmitCalls++
	var cached int
	var err error
	if s.cfg.ChunkedPrefill {
		// Chunked prefill: the manager takes, commits and announces only
		// the blocks of the tokens this step computes; the rest of the
		// prompt comes back chunk by chunk (grow).
		var rest []int32
		cached, rest, err = s.m.AdmitChunk(e.seq, e.chunkFor(budget), e.buf[:0])
		if errors.Is(err, paged.ErrNever) {
			// A smaller chunk may fit: admit with the chunks capped (the
			// refused call's lookup counts, as any refused admission's).
			a, serr := s.shrinkChunk(e, e.chunkFor(budget))
			if serr != nil {
				return 0, false, fmt.Errorf("sched: request %d: CanAdmitChunk %v: %w", r.id, e.seq, serr)
			}
			if a != paged.AdmitNever {
				cached, rest, err = s.m.AdmitChunk(e.seq, e.chunkFor(budget), e.buf[:0])
			}
		}
		if err == nil && len(rest) > 0 {
			e.buf, e.rest = rest, rest
			e.length -= len(rest)
		}
	} else {
		cached, err = s.m.Admit(e.seq)
	}
	switch {
	case errors.Is(err, paged.ErrNoSpace):
		return 0, false, nil
	case errors.Is(err, paged.ErrNever):
		return 0, false, pass(ErrNever, err, "request %d", r.id)
	case err != nil:
		return 0, false, fmt.Errorf("sched: request %d: admit %v: %w", r.id, e.seq, err)
	}
	if !s.forkRoom(r, e) {
		if cached, err = s.lastAloneRoom(e, budget, cached); err != nil || cached < 0 {
			return 0, false, err
		}
	}
	e.computed = cached
	s.waiting.pop()
	s.start(e)
	s.st.CachedTokens += int64(cached)
	if !r.admitted {
		r.cached = cached
	}
	n := e.length - cached
	if !s.cfg.ChunkedPrefill && n > budget {
		// CanAdmitCached above answered for this very admission.
		panic(fmt.Sprintf("sched: request %d: admitted %d uncached tokens with %d of the budget left", r.id, n, budget))
	}
	s.schedule(e, n, cached, true, true)
	r.admitted = true
	r.refreshState()
	return n, true, nil
}

// nextChunk returns the tokens of e's prompt its next chunk takes within
// the step's budget (less what e has scheduled already).
func (e *entry) nextChunk(budget int) int {
	k := min(len(e.rest), e.chunkFor(budget-(e.length-e.computed)))
	if e.lastAlone && k == len(e.rest) && k > 1 {
		k-- // the last token goes alone
	}
	return k
}

// halveChunk halves the chunks of e, alone in the running list, whose
// next prompt chunk did not fit, and reports whether it did: with windows
// a smaller chunk peaks lower (paged.Manager.AdmitChunk judged the first
// chunk, which may have been smaller than this one). Beside prefix pins
// that expire, the cap holds only until they end (unpinChunk). A chunk of
// one token is not halved.
func (s *Scheduler) halveChunk(e *entry, budget int) bool {
	if len(e.rest) == 0 || e.hasPending {
		return false
	}
	k := e.nextChunk(budget)
	if k <= 1 {
		return false
	}
	if s.pinned() {
		e.pinChunk = k / 2
	} else {
		e.chunk = k / 2
	}
	return true
}

// unpinChunk drops e's chunk cap made while prefix pins that expire held
// blocks (entry.pinChunk) once they have ended.
func (s *Scheduler) unpinChunk(e *entry) {
	if e.pinChunk > 0 && !s.pinned() {
		e.pinChunk = 0
	}
}

// shrinkChunk is called when the manager judged e's prompt never
// admissible in chunks of maxNew tokens. With sliding-window or chunked
// local groups the peak of a chunked prefill grows with the chunk
// (docs/hybrid.md, "Long prompts in chunks: what is never"), so a smaller
// chunk may fit where a step's whole budget never does: it halves the
// chunk until the manager no longer says never, caps e's chunks there
// and returns the manager's answer for that chunk, or AdmitNever when
// even one token never fits.
// vLLM has no per-request never: it checks at start-up that a window
// group's window and a step's tokens fit the pool.
func (s *Scheduler) shrinkChunk(e *entry, maxNew int) (paged.Admission, error) {
	for c := maxNew / 2; c >= 1; c /= 2 {
		a, err := s.m.CanAdmitChunk(e.seq, c)
		if err != nil || a != paged.AdmitNever {
			if err == nil {
				e.chunk = c
			}
			return a, err
		}
	}
	return paged.AdmitNever, nil
}

// forkRoom reports whether the pool holds the state pages the forks of
// unforked prompts will take (State groups): those running (s.reserved
// samples) and r's, if it is one. Admission sets them aside from a
// prompt's first chunk until it forks: admitted without them, some
// prompt's forks would find no room at the Update, which sends it back to
// the queue by recompute; admitted first again at the next step, it could
// take the step's whole budget every step (AdmitFirst), so that the
// sequences holding the pages never ran to give them back, or two prompts
// computed in chunks side by side could each hold what the other's forks
// need, and be sent back in turn forever.
//
// With chunked prefill the set-aside also holds the blocks the full
// attention groups of those prompts still take for their chunks to come
// (admitted, the head e's included): set aside only the forks' pages, two
// prompts computed in chunks in a pool too small for both could each, in
// turn, fill the pool with its chunks, find no room for its forks, and go
// back to be recomputed while the other did the same, forever
// (TestChunkedForkingPromptsProgress). Admitted one after the other, the
// first completes and forks.
//
// The head's chunks to come count whenever something is set aside, the
// head forking or not: a prompt of one sample admitted beside forking
// ones on the strength of its first chunk takes, chunk by chunk, the
// room their forks and chunks were given, and the step that finds none
// preempts by recompute. Counted for forking heads only (as before
// session 37), a 7-token prompt of one sample admitted beside the last
// chunk of a 6-token prompt of 2 samples (8 blocks of 2, a State page,
// 4-token steps) took the pool from the first's decodes, and the two
// were preempted three times in all before both finished, where it now
// waits for the fork and nothing is
// (TestAudit171SetAsideHoldsTheHeadsChunks); over random workloads
// (BenchmarkAudit171ForkSetAside) preemptions fell by 3-16% and steps by
// up to 3%.
//
// Parked blocks (paged.Stats.ParkedBlocks: freed in this step but read by
// one of its copies) do not count: neither the admission nor the step's
// decodes can take them, though they are free again at the fork (Update
// ends the step before it forks). A head refused for them waits one step,
// and the step that refuses it is no idle pool (lastAloneRoom); the twin
// property (TestAudit46Twins) allows an empty step only then, and saw
// none in 50,000 runs (audit 49), so counting them is left untested.
func (s *Scheduler) forkRoom(r *Request, e *entry) bool {
	// Spare draft states count: an allocation reclaims them (paged).
	return s.room() >= s.forkNeed(r, e)
}

// forkNeed returns the blocks forkRoom sets aside (0 without State
// groups or unforked prompts).
func (s *Scheduler) forkNeed(r *Request, e *entry) int {
	if s.forkPages == 0 {
		return 0
	}
	samples := s.reserved
	if !r.forked {
		samples += r.n - 1
	}
	if samples == 0 {
		return 0
	}
	need := samples * s.forkPages
	if s.cfg.ChunkedPrefill && s.growGroups > 0 {
		for _, x := range s.running {
			if x.where == inRunning && !x.req.forked && x.req.n > 1 {
				need += s.chunkBlocks(x)
			}
		}
		if e != nil && !r.forked {
			need += s.chunkBlocks(e)
		}
	}
	return need
}

// chunkBlocks returns the blocks e's groups take for the prompt chunks of
// e still to come, up to its fork: a block per new block of tokens in the
// full attention groups, and in each sliding-window or chunked-local group
// as many, but no more than it holds at its last chunk (whose queries read
// from the block the kind's rule gives for the chunk's first position, at
// most a step's budget before the prompt's end) less what it holds now.
// Counted as nothing, a window group's growth at the last chunk took the
// forks' set-aside: a prompt admitted beside a forking one left it no
// room, and with the Priority policy the two sent each other back in turn
// forever (the state machine's seed 15356425213764655632,
// TestChunkedForkingPromptBesideWindowProgress).
//
// With e.lastAlone the last chunk is the last token alone, whose step
// holds the fewest blocks of a local group: the step before may have
// held more, and may still be to come. The forks' pages are taken in
// the last step only, so what is set aside is the more of the last
// step's blocks and the chunk before's less the forks' pages (which that
// step does not need yet). A local group's blocks are counted there as
// they change, a release too: a prompt admitted whole but its last token
// holds a window's every block, most of which that token's step
// releases before the fork (but it frees room for its own forks only).
func (s *Scheduler) chunkBlocks(e *entry) int {
	if len(e.rest) == 0 {
		return 0
	}
	end := e.length + len(e.rest)
	b := e.chunkFor(s.cfg.MaxBatchTokens) // its chunks' cap (shrinkChunk) counts
	if !e.lastAlone {
		// Where the last chunk starts when every chunk from here takes
		// a step's whole budget (or e's cap), as a prompt computed
		// alone does.
		// Beside decoding sequences, smaller chunks may start it up to
		// a budget before the end and hold a block more there: the
		// set-aside is the schedule's likely need, not a bound. Set
		// aside for the earliest start, a prompt computed alone would
		// be refused room it never needs, and aborted in an empty pool
		// it fits (TestSubmitForkBoundAtTheEdge).
		return s.growTo(e, end, e.length+(end-e.length-1)/b*b, false)
	}
	// Its releases make room for its own forks only (no more than their
	// pages): another prompt's fork may come first.
	pages := (e.req.n - 1) * s.forkPages
	need := s.growTo(e, end, end-1, true)
	if end-1 > e.length {
		need = max(need, s.growTo(e, end-1, e.length+(end-1-e.length-1)/b*b, true)-pages)
	}
	return max(need, -pages)
}

// growTo returns the blocks e's groups take, past what they hold now, in
// the step computing its prompt's chunk [last, end): a block per new block
// of tokens in the full attention groups, and in each sliding-window or
// chunked-local group as many but no more than it holds in that step less
// what it holds now; with release, less than nothing where it holds
// fewer then, else nothing.
func (s *Scheduler) growTo(e *entry, end, last int, release bool) int {
	bs := s.m.BlockSize()
	grow := max(0, (end+bs-1)/bs-(e.length+bs-1)/bs)
	blocks := s.growGroups * grow
	if grow == 0 && !release {
		return blocks // no new block of tokens: a local group grows no more either
	}
	for _, lg := range s.locals {
		d := min(grow, (end+bs-1)/bs-lg.dead(last, bs)-s.heldIn(e, lg.g))
		if !release {
			d = max(0, d)
		}
		blocks += d
	}
	return blocks
}

// localGroup is a sliding-window or chunked-local KV cache group, as
// chunkBlocks needs it.
type localGroup struct {
	g    int
	kind paged.GroupKind
	// span is the window or the chunk, in tokens.
	span int
	// keep: prefix caching is on, and a chunked-local group keeps the
	// block before the next position's (its last cached one), as vLLM's.
	keep bool
}

// dead returns at most the number of leading blocks the group releases
// once the next position to compute is c, for blocks of bs tokens: a
// window's first block its query at c reads, or a chunked-local group's
// first block of c's chunk, with prefix caching no further than the block
// before c's (which the prefix cache keeps). Without prefix caching it
// counted that block too, and a forking prompt the set-aside could hold
// was refused room (TestForkAloneWithinBoundRapid).
func (lg localGroup) dead(c, bs int) int {
	if lg.kind == paged.SlidingWindow {
		return max(0, c-lg.span+1) / bs
	}
	if !lg.keep {
		return c / lg.span * lg.span / bs
	}
	return min(c/lg.span*lg.span/bs, max(0, c/bs-1))
}

// lastAloneRoom handles the admission of e, cached of whose prompt
// tokens were cached, that left no room for its forks (forkRoom): it
// leaves the prompt's last token to a step of its own (entry.lastAlone)
// where that can help, and returns the admission's cached tokens, or
// undoes it (undoAdmit) and returns -1 (the head waits). It can help with
// chunked prefill and sliding-window or chunked-local groups, which hold
// fewer blocks in the step computing that token alone than in one
// computing a longer last chunk: a cut prompt (chunks to come) keeps its
// admission if the set-aside then fits; one admitted whole, whose local
// groups hold more blocks now than in that token's step, is admitted
// again without its last token. Without it a prompt Submit's bound lets
// through at the edge (paged.Manager.PrefillFloor: its last token
// computed alone) was refused room at every admission and aborted in an
// empty pool it fits (TestForkLastTokenAloneAtTheEdge).
//
// In an idle pool (nothing of the scheduler's running, no block parked
// until the step ends, no pins that end) the admission is kept all the same:
// waiting there changes nothing, so the head would be aborted as one
// that does not fit an empty pool, while what the set-aside cannot see
// may make room at the fork (the prompt's retention pins, which the
// manager releases for a fork alone in the pool; warm, a prompt that
// branches from a cached prefix pins blocks there, and was aborted where
// it is served cold: TestForkSetAsideIdlePins). If the forks find no
// room then, the request is aborted at the fork (fork).
func (s *Scheduler) lastAloneRoom(e *entry, budget, cached int) (int, error) {
	r := e.req
	can := s.cfg.ChunkedPrefill && len(s.locals) > 0 && !r.forked && r.n > 1
	// A sequence preempted in this step does not make the pool less idle:
	// its blocks are free already, or parked until the step ends (a copy
	// of the step reads them), and only those come back by waiting.
	// Counted as busy whenever the step preempted, a forking head refused
	// after an abort (whose samples count as preempted) in a pool that
	// held nothing else left the step empty, and the next step admitted
	// it with the same room (TestAudit49AbortLeavesIdlePool).
	idle := len(s.running) == 0 && s.m.Stats().ParkedBlocks == 0 && !s.pinned()
	if can && !e.lastAlone && len(e.rest) > 0 {
		e.lastAlone = true
		if s.forkRoom(r, e) || idle {
			return cached, nil
		}
		e.lastAlone = false
		return -1, s.undoAdmit(e)
	}
	uncached := e.length - cached
	retry := can && len(e.rest) == 0 && uncached >= 2 && s.releasesAtLast(e)
	if !retry && idle {
		return cached, nil
	}
	if err := s.undoAdmit(e); err != nil || !retry {
		return -1, err
	}
	e.lastAlone = true
	s.st.AdmitCalls++
	cached, rest, err := s.m.AdmitChunk(e.seq, min(e.chunkFor(budget), uncached-1), e.buf[:0])
	switch {
	case errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever):
		e.lastAlone = false
		return -1, nil
	case err != nil:
		return -1, fmt.Errorf("sched: request %d: admit %v: %w", r.id, e.seq, err)
	}
	if len(rest) > 0 {
		e.buf, e.rest = rest, rest
		e.length -= len(rest)
	}
	if !s.forkRoom(r, e) && !idle {
		e.lastAlone = false
		return -1, s.undoAdmit(e)
	}
	return cached, nil
}

// releasesAtLast reports whether a local group of e, whose prompt is
// admitted whole, holds more blocks now than in a step computing its
// last token alone.
func (s *Scheduler) releasesAtLast(e *entry) bool {
	bs := s.m.BlockSize()
	for _, lg := range s.locals {
		if s.heldIn(e, lg.g) > (e.length+bs-1)/bs-lg.dead(e.length-1, bs) {
			return true
		}
	}
	return false
}

// heldIn returns the blocks e's table holds in group g: its entries past
// the released ones, a prefix that names the null block (block 0).
func (s *Scheduler) heldIn(e *entry, g int) int {
	held := 0
	if t, err := s.m.TableGroup(e.seq, g); err == nil {
		for k := len(t) - 1; k >= 0 && t[k] != 0; k-- {
			held++
		}
	}
	return held
}

// undoAdmit undoes the admission of e that left no room for the forks'
// state pages (forkRoom): the manager takes it back as if it had not been
// made (paged.Manager.Unadmit: its tokens were never computed, and its
// lookup and a preemption are not counted), and the chunks a chunked
// admission cut off go back to the sequence, which waits at the head of
// the queue.
func (s *Scheduler) undoAdmit(e *entry) error {
	if err := s.m.Unadmit(e.seq); err != nil {
		return fmt.Errorf("sched: request %d: unadmit %v: %w", e.req.id, e.seq, err)
	}
	return s.fold(e)
}

// start moves an admitted head of the queue to the running list.
func (s *Scheduler) start(e *entry) {
	e.where = inRunning
	e.arrived = s.st.Steps
	s.running = append(s.running, e)
	if !e.req.forked {
		s.reserved += e.req.n - 1
	}
	s.st.Admissions++
	if e.req.admitted {
		s.st.Resumed++
	}
}

// swapIn resumes a swapped-out head of the queue, then gives it its next
// tokens as a decode would.
func (s *Scheduler) swapIn(e *entry, budget int) (int, bool, error) {
	r := e.req
	a, need, err := s.m.CanSwapIn(e.seq)
	if err != nil {
		return 0, false, fmt.Errorf("sched: request %d: CanSwapIn %v: %w", r.id, e.seq, err)
	}
	switch {
	case a != paged.AdmitOK:
	case e.length-e.computed > budget:
		a = paged.AdmitLater // its unsent tokens alone exceed the budget
	case len(s.running) > 0 && !s.nextFits(e, need+s.forkNeed(r, nil)):
		// Swapped in, it would find no block for its next token, and be
		// recomputed: its KV on the host lost for a step's wait
		// (TestSwapInWaitsForItsNextToken). Nor may it take what is set
		// aside for the forks of unforked prompts (forkRoom), as an
		// admission may not: the step's forks would preempt it, swapped
		// in during the step, by recompute (forkVictims; audit 46).
		a = paged.AdmitLater
	}
	switch a {
	case paged.AdmitLater:
		return 0, false, nil
	case paged.AdmitNever:
		return 0, false, fmt.Errorf("%w: request %d: %v can never be swapped in", ErrNever, r.id, e.seq)
	}
	if err := s.m.SwapIn(e.seq); err != nil {
		return 0, false, fmt.Errorf("sched: request %d: swap in %v: %w", r.id, e.seq, err)
	}
	s.waiting.pop()
	s.start(e)
	// Its drafts leave a token of the budget to each running sequence
	// the step decodes after it (AdmitFirst).
	room := budget - 1
	for _, x := range s.running {
		if x != e && x.step != s.st.Steps {
			room--
		}
	}
	n, err := s.grow(e, budget, room)
	for errors.Is(err, paged.ErrNoSpace) && len(s.running) == 1 && s.halveChunk(e, budget) {
		// Alone, a prompt's chunk that does not fit is halved, as
		// decodeAll halves it.
		n, err = s.grow(e, budget, room)
	}
	for b := budget; errors.Is(err, paged.ErrNoSpace) && len(e.rest) > 0 && e.nextChunk(b) > 1; {
		// Beside others, a smaller chunk this step (nextFits made sure
		// of its first token's blocks).
		b = e.length - e.computed + e.nextChunk(b)/2
		n, err = s.grow(e, b, room)
	}
	if err != nil {
		if !errors.Is(err, paged.ErrNoSpace) {
			return 0, false, fmt.Errorf("sched: request %d: append to %v: %w", r.id, e.seq, err)
		}
		// Swapped in but no block for its next token: recompute later,
		// or, when it is alone on the device, never.
		s.st.Admissions--
		s.st.Resumed--
		if len(s.running) == 1 && !s.pinned() {
			s.step.Preempted++
			s.st.Preemptions++
			s.abort(r, fmt.Errorf("%w: request %d cannot grow past %d tokens in this pool", ErrNever, r.id, e.length))
			return 0, false, nil
		}
		if err := s.preempt(len(s.running) - 1); err != nil {
			return 0, false, err
		}
		return 0, false, nil
	}
	s.schedule(e, n, 0, true, false)
	r.refreshState()
	return n, true, nil
}

// nextFits reports whether the pool holds, besides the need blocks a
// swap-in of e takes (paged.Manager.CanSwapIn), those its next step's
// first token takes: a block in each full attention, sliding-window and
// chunked-local group where that token starts a block (at most: a local
// group may release one as it grows), none when e holds tokens to
// compute already. A prompt chunk longer than that token that does not
// fit is made smaller in that step (swapIn).
func (s *Scheduler) nextFits(e *entry, need int) bool {
	if e.length == e.computed && e.length%s.m.BlockSize() == 0 {
		need += s.growGroups + len(s.locals)
	}
	return need <= s.room()
}

// beamsFit reports whether the pool holds, besides the need blocks a
// swap-in of a beam search's beams takes (paged.Manager.CanSwapIn), those
// the beams' next tokens take: at most a block each in every full
// attention, sliding-window and chunked-local group (a new block of
// tokens, or a copy of the block the beams share).
func (s *Scheduler) beamsFit(beams, need int) bool {
	return need+beams*(s.growGroups+len(s.locals)) <= s.room()
}

// room returns the blocks an allocation may take now: free, cached
// (evictable) and spare draft states (which an allocation reclaims).
func (s *Scheduler) room() int {
	return roomOf(s.m.Stats())
}

// roomOf is room() as the statistics st show it.
func roomOf(st paged.Stats) int {
	return st.FreeBlocks + st.CachedBlocks + st.StateSparePages
}

// Update records the tokens the model sampled for the scheduled step:
// tokens holds Step.Outputs tokens, entry after entry in Step.Scheduled
// order, and for a forking prompt its N samples in order. A sample that
// reaches MaxTokens, the manager's MaxModelLen or a stop token is
// finished and its blocks freed (tail first, so its cached prefix stays).
// On ErrInvalid (a wrong token count, a negative token, no step) nothing
// changed.
//
// For a beam search, each beam extends itself (UpdateBeams chooses other
// parents).
//
// A step with drafts (Step.Drafts) takes its verdict by UpdateSpeculative;
// Update refuses it (ErrInvalid).
func (s *Scheduler) Update(tokens []int32) error { return s.update(tokens, nil, nil) }

// update is Update, UpdateBeams when parents is not nil, and
// UpdateSpeculative when accepted is not nil.
func (s *Scheduler) update(tokens []int32, parents, accepted []int) error {
	if !s.inStep {
		return fmt.Errorf("%w: Update without a scheduled step", ErrInvalid)
	}
	if s.scheduling {
		return fmt.Errorf("%w: Update from a hook inside Schedule", ErrInvalid)
	}
	if len(tokens) != s.step.Outputs {
		return fmt.Errorf("%w: Update got %d tokens for a step of %d outputs", ErrInvalid, len(tokens), s.step.Outputs)
	}
	for i, tok := range tokens {
		// The manager would refuse it at the next step's Append, too late
		// to say whose it is.
		if tok < 0 {
			return fmt.Errorf("%w: Update got a negative token %d at index %d", ErrInvalid, tok, i)
		}
	}
	if parents != nil {
		if err := s.checkParents(parents); err != nil {
			return err
		}
	}
	if err := s.checkAccepted(accepted); err != nil {
		return err
	}
	// The step ran: its admissions' KV is computed, for the manager's
	// SwapOut too when the caller built no batch (paged.Manager.EndStep).
	s.m.EndStep()
	s.phase(PhaseOutput)
	k := 0
	for i := range s.step.Scheduled {
		sc := &s.step.Scheduled[i]
		e := sc.e
		out := tokens[k : k+sc.Outputs]
		k += sc.Outputs
		if e.where == inDone { // cancelled during the step
			s.st.DraftsDropped += int64(len(sc.Drafts))
			continue
		}
		if len(sc.Drafts) > 0 {
			if err := s.settle(sc, accepted[i], out[0]); err != nil {
				s.inStep = false
				return err
			}
			continue
		}
		e.computed, e.decoding = sc.Start+sc.NewTokens, false
		if len(out) == 0 {
			continue
		}
		if parents != nil && e.req.beam && e.req.forked && (i == 0 || s.step.Scheduled[i-1].e.req != e.req) {
			// The first scheduled beam of a group re-parents them all;
			// the group's beams follow it in the step.
			if err := s.reparent(i, parents[k-1:]); err != nil {
				s.inStep = false
				return err
			}
		}
		if sc.Prefill && !e.req.forked {
			requeued, err := s.fork(e)
			if errors.Is(err, ErrNever) {
				s.aborted(e.req, err)
				continue
			}
			if err != nil {
				s.inStep = false
				return err
			}
			if requeued {
				continue // its outputs are drawn again after the recompute
			}
		}
		for j, tok := range out {
			x := e
			if len(out) > 1 { // the samples of a prompt that just forked
				x = e.req.samples[e.idx+j]
			}
			if x.where == inDone {
				// A Finished hook of an earlier sample cancelled the
				// request: its other samples are freed already.
				continue
			}
			x.outputs++
			x.pending, x.hasPending = tok, true
			s.st.Outputs++
			if x.outputs >= x.limit || (x.stops && x.req.stops(tok)) {
				if err := s.finish(x); err != nil {
					s.inStep = false
					return err
				}
			}
		}
	}
	if s.dirty {
		s.sweep()
	}
	s.inStep = false
	s.phase(PhaseDone)
	return nil
}

// fork makes the other samples of a prompt that just completed: they share
// every block and start running at once. A State group gives each child
// its own state pages at once (paged.Manager.Fork), which admission sets
// aside (forkRoom) but a decode, or the prompt's own later chunks, may
// take: when the pool cannot give them, the
// children forked so far are freed and the prompt goes back to the
// waiting queue by recompute (requeued: the step's outputs for it are
// dropped and drawn again once it is recomputed), as a sequence that
// finds no room to grow is preempted, or, alone, is aborted.
func (s *Scheduler) fork(e *entry) (requeued bool, err error) {
	r := e.req
	r.forked = true
	if r.n == 1 {
		return false, nil
	}
	kids := s.forkKids[:0]
	for k := 1; k < r.n; k++ {
		c, err := s.m.Fork(e.seq)
		if errors.Is(err, paged.ErrNoSpace) {
			for _, c := range kids {
				if err := s.m.Free(c); err != nil {
					return false, fmt.Errorf("sched: request %d: free fork %v: %w", r.id, c, err)
				}
			}
			s.forkKids = kids[:0]
			r.forked = false
			if s.alone(e) && !s.pinned() {
				// Nothing else of ours holds blocks, nor do pins that
				// will end: requeued, the prompt would come back to this
				// point every step. The caller aborts the request.
				return false, fmt.Errorf("%w: request %d: its %d samples' state pages do not fit beside its prompt with nothing else running: %w", ErrNever, r.id, r.n, err)
			}
			// Recompute, never swap: a swapped-in prompt would not run
			// its prefill step again, where the forks happen.
			return true, s.preemptBy(slices.Index(s.running, e), false)
		}
		if err != nil {
			return false, fmt.Errorf("sched: request %d: fork %v: %w", r.id, e.seq, err)
		}
		kids = append(kids, c)
	}
	s.forkKids = kids[:0]
	s.reserved -= r.n - 1
	// Forked, the prompt's sequence is a sample: recomputed after a
	// preemption, its last token needs no step of its own
	// (TestForkedPromptRecomputesWithoutLastTokenAlone).
	e.lastAlone = false
	for k, c := range kids {
		ce := &entry{req: r, idx: k + 1, seq: c, where: inRunning, length: e.length, computed: e.computed,
			limit: e.limit, stops: e.stops, heap: -1}
		r.samples = append(r.samples, ce)
		s.running = append(s.running, ce)
		s.st.Forks++
	}
	if r.beam {
		s.gather(e)
	}
	return false, nil
}

// alone reports whether e is the only running entry that has not
// finished: during Update the running list still holds the samples that
// finished earlier in it (swept at its end), whose blocks are freed.
func (s *Scheduler) alone(e *entry) bool {
	for _, x := range s.running {
		if x != e && x.where != inDone {
			return false
		}
	}
	return true
}

// finish frees a sample that produced its last token.
func (s *Scheduler) finish(e *entry) error {
	r := e.req
	if err := s.m.Free(e.seq); err != nil {
		return fmt.Errorf("sched: request %d: free %v: %w", r.id, e.seq, err)
	}
	e.where, e.hasPending = inDone, false
	s.dirty = true
	r.done++
	if r.done == r.n {
		r.state = Finished
		s.st.Finished++
		if r.beam {
			s.beams--
		}
	}
	if s.cfg.Hooks.Finished != nil {
		s.cfg.Hooks.Finished(r, e.idx)
	}
	return nil
}

// BuildBatch fills b with the kernel metadata of the scheduled step
// (paged.Manager.BuildBatch over Step.Scheduled, in order): call it after
// Schedule and before Update. A nil b, or one the manager refuses (its
// Stride or split settings out of range), yields ErrInvalid, wrapping the
// manager's error, and leaves the step as it was.
func (s *Scheduler) BuildBatch(b *paged.Batch) error {
	if !s.inStep {
		return fmt.Errorf("%w: BuildBatch without a scheduled step", ErrInvalid)
	}
	if b == nil {
		return fmt.Errorf("%w: BuildBatch with a nil *paged.Batch", ErrInvalid)
	}
	s.batch = s.batch[:0]
	for i := range s.step.Scheduled {
		sc := &s.step.Scheduled[i]
		if sc.e.where != inDone {
			s.batch = append(s.batch, paged.Scheduled{ID: sc.Seq, NewTokens: sc.NewTokens})
		}
	}
	if err := s.m.BuildBatch(b, s.batch); err != nil {
		if errors.Is(err, paged.ErrInvalid) {
			return pass(ErrInvalid, err, "build batch")
		}
		return err
	}
	return nil
}
