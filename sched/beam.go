package sched

import (
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// Beam search (Options.BeamWidth). A beam search's prompt runs as one
// sequence; the step that completes it forks the beams, which from then on
// sit side by side in the running list (gather) and so in every step's
// Scheduled list. Each UpdateBeams names, for every new beam, the beam it
// extends (reparent): the scheduler forks a parent chosen more than once
// and frees the beams no one chose, frees first, so that the forks' state
// pages (State groups) come from the dying beams'. The beams
// are preempted together (preemptGroup): swapped out as one group, or
// restarted from the prompt, since beams recomputed one by one would each
// recompute the prompt into blocks of their own. This follows vLLM's
// original scheduler (Kwon et al., SOSP 2023, section 4.4; vLLM v0's
// SequenceGroup), which scheduled and preempted a beam search's sequences
// as one group and forked and freed them after each step.

// UpdateBeams is Update for steps with beam searches: parents[i] names the
// beam (its sample index, Scheduled.Sample) that output i extends. The
// outputs of a beam search's beams may name any beam of the same request
// scheduled in this step: a beam chosen by several new beams is forked
// (they share its blocks and copy on write), a beam chosen by none is
// freed. Every other output must name its own sample (Scheduled.Sample +
// j for the j-th output of an entry), as Update implies. On ErrInvalid (a
// wrong count, a parent out of place) nothing changed. The step's
// Scheduled.Seq handles name the sequences as they ran; Request.Seq names
// each beam's sequence after the call.
func (s *Scheduler) UpdateBeams(tokens []int32, parents []int) error {
	if parents == nil {
		return fmt.Errorf("%w: UpdateBeams with nil parents (Update takes none)", ErrInvalid)
	}
	return s.update(tokens, parents, nil)
}

// checkParents validates UpdateBeams' parents against the step.
func (s *Scheduler) checkParents(parents []int) error {
	if len(parents) != s.step.Outputs {
		return fmt.Errorf("%w: UpdateBeams got %d parents for a step of %d outputs", ErrInvalid, len(parents), s.step.Outputs)
	}
	k := 0
	for i := range s.step.Scheduled {
		sc := &s.step.Scheduled[i]
		e, r := sc.e, sc.e.req
		for j := range sc.Outputs {
			p, own := parents[k], sc.Sample+j
			k++
			if p == own || e.where == inDone {
				continue
			}
			if !r.beam || !r.forked {
				return fmt.Errorf("%w: output %d (request %d sample %d) names parent %d: only beams of a beam search choose their parent", ErrInvalid, k-1, r.id, own, p)
			}
			if p < 0 || p >= len(r.samples) || r.samples[p].where != inRunning || r.samples[p].step != s.step.Number {
				return fmt.Errorf("%w: output %d (request %d beam %d) names parent %d, not a beam of the request in this step", ErrInvalid, k-1, r.id, own, p)
			}
		}
	}
	return nil
}

// reparent applies the parents chosen for the beams of the group whose
// first scheduled beam is step entry i: new beam x, in step order, gets
// the sequence of its parent (the first beam to choose it) or a fork of it.
func (s *Scheduler) reparent(i int, parents []int) error {
	scs := s.step.Scheduled[i:]
	r := scs[0].e.req
	g := 0
	for g < len(scs) && scs[g].e.req == r {
		g++
	}
	scs = scs[:g]
	same := true
	for x := range scs {
		if parents[x] != scs[x].Sample {
			same = false
			break
		}
	}
	if same {
		return nil
	}
	for x := range scs {
		s.beamOld[scs[x].Sample] = scs[x].e.seq
		s.beamUsed[scs[x].Sample] = false
	}
	for x := range scs {
		p := parents[x]
		s.beamFork[x] = s.beamUsed[p] // chosen before: a fork of it
		s.beamUsed[p] = true
		s.beamNew[x] = s.beamOld[p]
	}
	// The beams no one chose go first: each gives back its own state pages
	// (State groups), and there are exactly as many of them as forks, each
	// of which takes a sequence's state pages at once (paged.Manager.Fork).
	// Forking first could find no room in a full pool and fail halfway.
	// The blocks a dying beam shares with a chosen one stay referenced by
	// the chosen one.
	for x := range scs {
		if q := scs[x].Sample; !s.beamUsed[q] {
			if err := s.m.Free(s.beamOld[q]); err != nil {
				return fmt.Errorf("sched: request %d: free beam %d: %w", r.id, q, err)
			}
		}
	}
	for x := range scs {
		if !s.beamFork[x] {
			continue
		}
		p := parents[x]
		c, err := s.m.Fork(s.beamOld[p])
		if err != nil {
			return fmt.Errorf("sched: request %d: fork beam %d: %w", r.id, p, err)
		}
		s.beamNew[x] = c
		s.st.Forks++
	}
	for x := range scs {
		scs[x].e.seq = s.beamNew[x]
	}
	return nil
}

// gather moves the beams just forked from e (at the end of the running
// list) to just after e, so a beam search's beams stay side by side.
func (s *Scheduler) gather(e *entry) {
	k := e.req.n - 1
	tail := len(s.running) - k
	pos := tail - 1
	for s.running[pos] != e {
		pos--
	}
	if pos+1 == tail {
		return
	}
	s.beamBuf = append(s.beamBuf[:0], s.running[tail:]...)
	copy(s.running[pos+1+k:], s.running[pos+1:tail])
	copy(s.running[pos+1:], s.beamBuf)
	clear(s.beamBuf)
}

// groupOverBudget reports whether running[i] is the first beam of a beam
// search whose beams need more tokens than the budget left: the beams
// decode in the same step or not at all.
func (s *Scheduler) groupOverBudget(i, budget int) bool {
	r := s.running[i].req
	if !r.beam || !r.forked || (i > 0 && s.running[i-1].req == r) {
		return false
	}
	return budget < r.n-r.done
}

// preemptGroup preempts every beam of r, the decode loop's victim, while
// the loop is at running[i] (cur) with budget left; it returns the loop's
// index and budget after (when cur was one of the beams, the index of the
// sequence after them), and whether cur was one of the beams. Beams
// scheduled earlier in the step are taken back. By swap, when configured
// and the host tier takes the group, the beams wait in the host tier;
// otherwise the request restarts from its prompt, or, when its beams were
// alone in the pool and no prefix pins that expire hold blocks, is aborted.
func (s *Scheduler) preemptGroup(r *Request, i, budget int, cur *entry) (int, int, bool, error) {
	lo := 0
	for s.running[lo].req != r {
		lo++
	}
	hi := lo
	for hi < len(s.running) && s.running[hi].req == r {
		hi++
	}
	for _, b := range s.running[lo:hi] {
		if b.step == s.step.Number {
			budget += s.unschedule(b)
		}
		if b.computed < b.length {
			// Scheduled in this step (or swapped in for it), which now
			// drops it: a block its uncomputed token filled was committed
			// when the token came and must leave the prefix cache before
			// the beam's blocks are swapped out or freed, as preemptBy
			// does for a lone sequence.
			if err := s.m.Uncompute(b.seq, b.computed); err != nil {
				return i, budget, false, fmt.Errorf("sched: request %d: uncompute beam %d %v: %w", r.id, b.idx, b.seq, err)
			}
		}
	}
	beams := append(s.beamBuf[:0], s.running[lo:hi]...)
	s.beamBuf = beams
	defer clear(beams)
	s.running = append(s.running[:lo], s.running[hi:]...)
	clear(s.running[len(s.running) : len(s.running)+len(beams)])
	self := cur.req == r
	switch {
	case self:
		i = lo // the sequences after the beams
	case i >= hi:
		i -= len(beams)
	}
	s.step.Preempted += len(beams)
	s.st.Preemptions += int64(len(beams))
	if self && len(s.running) == 0 && !s.pinned() {
		// Alone in the pool, the beams still cannot grow: a restart
		// would only come back here. (Beside prefix pins that expire
		// they restart, or swap, and wait for the pins to end, as a
		// lone sequence does: TestBeamsWaitForExpiringPins.)
		s.aborted(r, fmt.Errorf("%w: request %d: %d beams cannot grow past %d tokens in this pool", ErrNever, r.id, len(beams), cur.length))
		return i, budget, true, nil
	}
	if s.cfg.Preemption == Swap && beams[0].arrived != s.st.Steps {
		// (Swapped in this step, the beams restart instead; see preemptBy.)
		ok, err := s.swapOutGroup(r, beams)
		if err != nil || ok {
			return i, budget, self, err
		}
	}
	return i, budget, self, s.restart(r, beams)
}

// swapOutGroup swaps a beam search's beams out together: the first waits
// in the queue for all of them. It reports false when the host tier
// cannot take them.
func (s *Scheduler) swapOutGroup(r *Request, beams []*entry) (bool, error) {
	ids := s.beamIDs[:0]
	for _, b := range beams {
		ids = append(ids, b.seq)
	}
	s.beamIDs = ids
	err := s.m.SwapOut(ids...)
	switch {
	case errors.Is(err, paged.ErrNoSpace):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sched: request %d: swap out %d beams: %w", r.id, len(beams), err)
	}
	for k, b := range beams {
		b.where = inGroup
		if k == 0 {
			b.where = inSwapped
		}
	}
	s.grouped += len(beams) - 1
	s.waiting.pushFront(beams[0])
	s.st.SwappedOut += int64(len(beams))
	r.refreshState()
	if s.cfg.Hooks.Preempted != nil {
		for _, b := range beams {
			s.cfg.Hooks.Preempted(r, b.idx, true)
		}
	}
	return true, nil
}

// restart frees a beam search's beams but the prompt, which goes back to
// the head of the queue as the request's only sequence: the next
// admission computes it and forks the beams again.
func (s *Scheduler) restart(r *Request, beams []*entry) error {
	keep := beams[0].seq
	if err := s.m.Preempt(keep); err != nil {
		return fmt.Errorf("sched: request %d: preempt %v: %w", r.id, keep, err)
	}
	if err := s.m.Truncate(keep, r.promptLen); err != nil {
		return fmt.Errorf("sched: request %d: cut %v back to its prompt: %w", r.id, keep, err)
	}
	for _, b := range beams[1:] {
		if err := s.m.Free(b.seq); err != nil {
			return fmt.Errorf("sched: request %d: free %v: %w", r.id, b.seq, err)
		}
	}
	for _, x := range r.samples[1:] {
		x.where = inDone
	}
	clear(r.samples[1:])
	r.samples = r.samples[:1]
	e := r.samples[0]
	e.seq, e.length, e.computed, e.outputs = keep, r.promptLen, 0, 0
	e.hasPending, e.decoding, e.where, e.rest = false, false, inWaiting, nil
	r.forked, r.done = false, 0
	s.waiting.pushFront(e)
	s.st.Restarts++
	r.refreshState()
	if s.cfg.Hooks.Restarted != nil {
		s.cfg.Hooks.Restarted(r)
	}
	return nil
}

// swapInGroup resumes a swapped-out beam search, the head of the queue,
// with all its beams, and gives each its next token as a decode would. It
// reports the tokens scheduled and false when the group must wait.
func (s *Scheduler) swapInGroup(e *entry, budget int) (int, bool, error) {
	r := e.req
	ids := s.beamIDs[:0]
	need := 0
	for _, b := range r.samples {
		if b.where == inSwapped || b.where == inGroup {
			ids = append(ids, b.seq)
			need += b.length - b.computed
			if b.hasPending {
				need++
			}
		}
	}
	s.beamIDs = ids
	if need > budget {
		return 0, false, nil
	}
	a, need, err := s.m.CanSwapIn(ids...)
	if err != nil {
		return 0, false, fmt.Errorf("sched: request %d: CanSwapIn %d beams: %w", r.id, len(ids), err)
	}
	if a == paged.AdmitOK && len(s.running) > 0 && !s.beamsFit(len(ids), need) {
		// Swapped in, some beam would find no block for its next token,
		// and the search would restart: its KV on the host lost for a
		// step's wait (TestBeamSwapInWaitsForTheirNextTokens).
		a = paged.AdmitLater
	}
	switch a {
	case paged.AdmitLater:
		return 0, false, nil
	case paged.AdmitNever:
		return 0, false, fmt.Errorf("%w: request %d: its %d beams can never be swapped in", ErrNever, r.id, len(ids))
	}
	if err := s.m.SwapIn(ids...); err != nil {
		return 0, false, fmt.Errorf("sched: request %d: swap in %d beams: %w", r.id, len(ids), err)
	}
	s.waiting.pop()
	s.grouped -= len(ids) - 1
	lo := len(s.running)
	for _, b := range r.samples {
		if b.where == inSwapped || b.where == inGroup {
			s.start(b)
		}
	}
	total := 0
	for k := lo; k < len(s.running); k++ {
		b := s.running[k]
		n, err := s.grow(b, budget-total, 0) // beams take no drafts
		if err != nil {
			if !errors.Is(err, paged.ErrNoSpace) {
				return 0, false, fmt.Errorf("sched: request %d: append to %v: %w", r.id, b.seq, err)
			}
			// Swapped in, but no block for some beam's next token:
			// the group restarts instead.
			s.st.Admissions -= int64(len(s.running) - lo)
			s.st.Resumed -= int64(len(s.running) - lo)
			if _, _, _, err := s.preemptGroup(r, lo, budget, b); err != nil {
				return 0, false, err
			}
			return 0, false, nil
		}
		total += n
	}
	// Scheduled only once every beam grew, so Hooks.Scheduled is not
	// called for beams whose swap-in is then undone.
	for _, b := range s.running[lo:] {
		s.schedule(b, b.length-b.computed, 0, true, false)
	}
	r.refreshState()
	return total, true, nil
}
