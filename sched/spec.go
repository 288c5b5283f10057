package sched

import (
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// Speculative decoding, after vLLM v1's scheduler (Leviathan et al., ICML
// 2023, and Chen et al., 2023, for draft-and-verify decoding). Between
// steps the server proposes draft tokens for a sample (Propose); the next
// Schedule appends its pending token and then as many of the drafts as the
// budget, the sample's remaining outputs and the pool allow
// (paged.Manager.AppendSpeculative: slots, no prefix-cache commit), and
// the step's Scheduled.Drafts name them. The model verifies them in the
// same forward pass; UpdateSpeculative takes how many each sequence
// accepted and the token sampled after them (the bonus token), keeps the
// accepted drafts as outputs (paged.Manager.AcceptSpeculative commits
// only them) and rolls the rest back. Drafts never cost another sequence
// its step: each sequence scheduled after a drafting one keeps a token of
// the budget, and when the pool runs out the step's drafts are withdrawn,
// newest first, before anyone is preempted.

// Propose gives sample `sample` of r the draft tokens to verify in its
// next step, after its pending sampled token: drafts[0] is the guess for
// the token after it. Call it between Update and the next Schedule; the
// next Schedule uses the drafts or drops them (Stats.DraftsDropped), and a
// second Propose before it replaces them (nil or empty drops them). The
// drafts are copied.
//
// The next step schedules the sample's pending token and the longest
// prefix of the drafts that fits: within Config.MaxBatchTokens less one
// token for each running sequence after it in the step, within the
// sample's remaining outputs (MaxTokens, MaxModelLen: a step's outputs,
// accepted drafts and bonus token, never pass them), and within the pool:
// drafts the pool cannot hold are halved until they fit, and they never
// preempt anything. A sample that does not decode in the next step (not
// reached by the budget, preempted, waiting in the host tier) drops them;
// one swapped in during the step takes them, leaving a token to each
// running sequence decoded after it (AdmitFirst). A manager that refuses
// drafts (paged.ErrInvalid; no layout of this version's paged does: a
// State group keeps a state per draft) makes the sample decode without
// them. DraftRoom says beforehand how many drafts the sample's next step
// could verify at most.
//
// Propose returns ErrInvalid, changing nothing, when speculative
// decoding is off (Config.MaxDrafts 0), between Schedule and Update, for
// a beam search (its beams are chosen anew every step, which drafts do
// not follow), a sample out of range, a sample with no sampled token to
// follow (its prompt is not computed yet, or a recompute preemption took
// the token into the sequence to recompute), more than Config.MaxDrafts
// drafts or a negative one; ErrDone for a finished request or sample,
// ErrForeign for another scheduler's request.
func (s *Scheduler) Propose(r *Request, sample int, drafts []int32) error {
	e, err := s.proposable("Propose", r, sample)
	if err != nil {
		return err
	}
	if len(drafts) > s.cfg.MaxDrafts {
		return fmt.Errorf("%w: Propose of %d drafts for request %d, more than Config.MaxDrafts %d", ErrInvalid, len(drafts), r.id, s.cfg.MaxDrafts)
	}
	for i, tok := range drafts {
		if tok < 0 {
			return fmt.Errorf("%w: Propose for request %d: negative draft %d at index %d", ErrInvalid, r.id, tok, i)
		}
	}
	s.st.DraftsDropped += int64(len(e.draft))
	e.draft = append(e.draft[:0], drafts...)
	s.st.DraftsProposed += int64(len(drafts))
	if !e.listed {
		e.listed = true
		s.proposed = append(s.proposed, e)
	}
	return nil
}

// DraftRoom returns the most drafts sample `sample` of r could verify in
// its next step, so that a drafter proposes no more than can be used:
// Config.MaxDrafts, fewer when the sample's remaining outputs (MaxTokens,
// MaxModelLen) leave less room (a step outputs its accepted drafts and
// the token sampled after them), 0 when only that token is left. The next
// Schedule may take fewer still, for the step's token budget or the pool
// (see Propose), which are not known before it. It fails as Propose
// would, with the same errors, where Propose would refuse any drafts: a
// sequence in its prompt (chunked prefill included) has no sampled token
// to follow, so DraftRoom is ErrInvalid for it until its prompt is
// computed. It costs O(1) and changes nothing.
func (s *Scheduler) DraftRoom(r *Request, sample int) (int, error) {
	e, err := s.proposable("DraftRoom", r, sample)
	if err != nil {
		return 0, err
	}
	return max(0, min(s.cfg.MaxDrafts, e.limit-e.outputs-1)), nil
}

// proposable returns the entry of sample `sample` of r when it can take
// drafts now, else Propose's error (op names the caller).
func (s *Scheduler) proposable(op string, r *Request, sample int) (*entry, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: %s for a nil request", ErrInvalid, op)
	}
	if r.s != s {
		return nil, fmt.Errorf("%w: request %d", ErrForeign, r.id)
	}
	switch {
	case s.cfg.MaxDrafts == 0:
		return nil, fmt.Errorf("%w: %s: speculative decoding is off (Config.MaxDrafts is 0)", ErrInvalid, op)
	case s.inStep:
		return nil, fmt.Errorf("%w: %s for request %d between Schedule and Update: drafts follow the token Update samples", ErrInvalid, op, r.id)
	case r.state.Done():
		return nil, fmt.Errorf("%w: %s for request %d, which is %v", ErrDone, op, r.id, r.state)
	case r.beam:
		return nil, fmt.Errorf("%w: %s for request %d: a beam search takes no drafts", ErrInvalid, op, r.id)
	case sample < 0 || sample >= len(r.samples):
		return nil, fmt.Errorf("%w: %s for request %d sample %d of %d", ErrInvalid, op, r.id, sample, len(r.samples))
	}
	e := r.samples[sample]
	if e.where == inDone {
		return nil, fmt.Errorf("%w: %s for request %d sample %d, which is finished", ErrDone, op, r.id, sample)
	}
	if !e.hasPending {
		return nil, fmt.Errorf("%w: %s for request %d sample %d: no sampled token to follow (its prompt is not computed, or a recompute took the token back)", ErrInvalid, op, r.id, sample)
	}
	return e, nil
}

// speculate appends e's proposed drafts after its pending token (already
// appended in this step): at most room of them, fewer when the sample's
// remaining outputs or the pool say so. It sets e.spec and counts them in
// e.length; the drafts not appended are dropped.
func (s *Scheduler) speculate(e *entry, room int) error {
	d := e.draft
	e.draft = e.draft[:0] // d keeps the values until the next Propose
	// The step outputs the accepted drafts and the bonus token.
	k := max(0, min(len(d), room, e.limit-e.outputs-1))
	for k > 0 {
		err := s.m.AppendSpeculative(e.seq, d[:k]...)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, paged.ErrNoSpace), errors.Is(err, paged.ErrNever):
			k /= 2 // fewer drafts may fit; drafts never preempt
		case errors.Is(err, paged.ErrInvalid):
			k = 0 // the manager takes no drafts
		default:
			return fmt.Errorf("sched: request %d: append %d drafts to %v: %w", e.req.id, k, e.seq, err)
		}
	}
	s.st.DraftsDropped += int64(len(d) - k)
	if k == 0 {
		return nil
	}
	st := &s.step
	off := len(st.draftBuf)
	st.draftBuf = append(st.draftBuf, d[:k]...)
	e.spec = st.draftBuf[off : off+k : off+k]
	e.length += k
	st.Drafts += k
	return nil
}

// unspec rolls back the drafts e appended in this step.
func (s *Scheduler) unspec(e *entry) error {
	if len(e.spec) == 0 {
		return nil
	}
	if err := s.m.AcceptSpeculative(e.seq, 0); err != nil {
		return fmt.Errorf("sched: request %d: drop the drafts of %v: %w", e.req.id, e.seq, err)
	}
	e.length -= len(e.spec)
	e.spec = nil
	return nil
}

// withdraw takes the drafts of sc, scheduled in this step, out of it
// (dropped) and returns the tokens given back to the budget. The manager
// still holds them: unspec rolls them back.
func (s *Scheduler) withdraw(sc *Scheduled) int {
	k := len(sc.Drafts)
	sc.Drafts = nil
	sc.NewTokens -= k
	s.step.Tokens -= k
	s.step.Drafts -= k
	s.st.DecodeTokens -= int64(k)
	s.st.DraftsDropped += int64(k)
	return k
}

// dropDrafts frees the blocks of the newest drafts of the step, when the
// pool runs out: the drafts of the last entry that has some are withdrawn
// and rolled back. It returns the tokens given back to the budget. Its
// callers loop while the step counts drafts (Step.Drafts > 0), so a
// count no entry's drafts make up is a broken invariant, a panic rather
// than a loop that never ends.
func (s *Scheduler) dropDrafts() (int, error) {
	for i := len(s.step.Scheduled) - 1; i >= 0; i-- {
		sc := &s.step.Scheduled[i]
		if len(sc.Drafts) == 0 {
			continue
		}
		n := s.withdraw(sc)
		return n, s.unspec(sc.e)
	}
	panic(fmt.Sprintf("sched: step %d counts %d drafts, and none of its %d entries has any", s.step.Number, s.step.Drafts, len(s.step.Scheduled)))
}

// dropProposals drops the proposals no step used.
func (s *Scheduler) dropProposals() {
	for _, e := range s.proposed {
		s.st.DraftsDropped += int64(len(e.draft))
		e.draft, e.listed = e.draft[:0], false
	}
	clear(s.proposed)
	s.proposed = s.proposed[:0]
}

// UpdateSpeculative is Update (or UpdateBeams, when parents is not nil)
// for a step whose sequences verify drafts (Scheduled.Drafts). accepted
// has one count per Step.Scheduled entry: how many of the entry's drafts
// the model accepted, the longest prefix its verification kept, from 0 to
// len(Drafts) (0 for an entry without drafts). tokens are as for Update,
// one per output: for an entry with drafts, the token sampled after its
// accepted ones (the bonus, or the correction of the first rejected
// draft). The accepted drafts become the sample's outputs, followed by
// that token; the rejected ones are rolled back
// (paged.Manager.AcceptSpeculative), so neither the prefix cache nor the
// next step sees them. A stop token or the sample's last output among
// the accepted drafts ends the sample there: the drafts after it and the
// bonus token are dropped, and the sample is finished as Update finishes
// one. On ErrInvalid (a wrong count, an accepted count out of range, a
// negative token, no step) nothing changed.
func (s *Scheduler) UpdateSpeculative(tokens []int32, accepted []int, parents []int) error {
	if accepted == nil {
		return fmt.Errorf("%w: UpdateSpeculative with nil accepted (Update takes none)", ErrInvalid)
	}
	return s.update(tokens, parents, accepted)
}

// checkAccepted validates UpdateSpeculative's counts against the step.
func (s *Scheduler) checkAccepted(accepted []int) error {
	if accepted == nil {
		if s.step.Drafts > 0 {
			return fmt.Errorf("%w: step %d verifies %d drafts: its verdict goes to UpdateSpeculative", ErrInvalid, s.step.Number, s.step.Drafts)
		}
		return nil
	}
	if len(accepted) != len(s.step.Scheduled) {
		return fmt.Errorf("%w: UpdateSpeculative got %d accepted counts for a step of %d entries", ErrInvalid, len(accepted), len(s.step.Scheduled))
	}
	for i, a := range accepted {
		if k := len(s.step.Scheduled[i].Drafts); a < 0 || a > k {
			return fmt.Errorf("%w: UpdateSpeculative: entry %d accepts %d of its %d drafts", ErrInvalid, i, a, k)
		}
	}
	return nil
}

// settle applies the verdict of sc, an entry with drafts whose sample is
// live: a of its drafts accepted, then tok sampled.
func (s *Scheduler) settle(sc *Scheduled, a int, tok int32) error {
	e := sc.e
	k := len(sc.Drafts)
	keep, last, end := a, tok, false
	for j, d := range sc.Drafts[:a] {
		e.outputs++
		if e.outputs >= e.limit || (e.stops && e.req.stops(d)) {
			// Ends at draft j, which is its last output and, like the
			// last sampled token of any sample, gets no slot.
			keep, last, end = j, d, true
			break
		}
	}
	if err := s.m.AcceptSpeculative(e.seq, keep); err != nil {
		return fmt.Errorf("sched: request %d: accept %d of %d drafts of %v: %w", e.req.id, keep, k, e.seq, err)
	}
	e.length = sc.Start + 1 + keep
	e.computed, e.decoding, e.spec = e.length, false, nil
	drafted := a // drafts that became outputs
	if end {
		drafted = keep + 1
	} else {
		e.outputs++ // the bonus token
		s.st.Outputs++
		end = e.outputs >= e.limit || (e.stops && e.req.stops(tok))
	}
	s.st.Outputs += int64(drafted)
	s.st.DraftsAccepted += int64(drafted)
	s.st.DraftsRejected += int64(k - drafted)
	e.pending, e.hasPending = last, true
	if end {
		return s.finish(e)
	}
	return nil
}
