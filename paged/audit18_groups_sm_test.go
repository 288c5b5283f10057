package paged_test

import (
	"errors"
	"slices"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// Dropped steps in the hybrid state machine (runGroupsMachine): a step is
// built (its tokens given to the manager, its directives applied, maybe
// its checkpoints taken) and then dropped before its kernels run, as a
// scheduler drops a sequence it preempts or a request cancelled mid-step:
// Uncompute, then Preempt, Free, or the same tokens computed by the next
// step. A checkpoint handed out for the dropped step holds no state; the
// read-back of every later hit (write) proves none is hit.

// takeDropped takes the dropped step's checkpoints, as a server that
// built the step does, and writes none of them: each must be s's, within
// the step.
func (h *hyModel) takeDropped(t *rapid.T, s *hySeq, from int) {
	if !rapid.Bool().Draw(t, "take checkpoints") {
		return
	}
	for _, c := range h.m.TakeCheckpoints(nil) {
		if c.Seq != s.id || c.Tokens < from || c.Tokens > len(s.tokens) {
			t.Fatalf("dropped step [%d, %d) of %v: checkpoint %+v", from, len(s.tokens), s.id, c)
		}
	}
}

// endDropped ends a dropped step of s, whose tokens from from on were
// never computed.
func (h *hyModel) endDropped(t *rapid.T, s *hySeq, from int) {
	if err := h.m.Uncompute(s.id, from); err != nil {
		t.Fatalf("Uncompute(%v, %d): %v", s.id, from, err)
	}
	s.noteUncompute(from)
	if err := h.m.Check(); err != nil {
		t.Fatalf("after Uncompute: %v", err)
	}
	switch rapid.IntRange(0, 2).Draw(t, "then") {
	case 0:
		if err := h.m.Preempt(s.id); err != nil {
			t.Fatalf("Preempt: %v", err)
		}
		s.state, s.fresh, s.dropped, s.redo = hyWaiting, 0, false, 0
	case 1:
		if err := h.m.Free(s.id); err != nil {
			t.Fatalf("Free: %v", err)
		}
		h.seqs = slices.DeleteFunc(h.seqs, func(x *hySeq) bool { return x == s })
	default:
		// The next step computes them.
		s.fresh, s.dropped = len(s.tokens)-from, true
		h.write(t, s, from)
	}
}

// dropStep appends tokens to a running sequence for a step that is then
// dropped.
func (h *hyModel) dropStep(t *rapid.T, next *int32) {
	if s, from, ok := h.stepToDrop(t, next); ok {
		h.endDropped(t, s, from)
	}
}

// stepToDrop appends tokens to a running sequence for a step, applies its
// directives and maybe takes its checkpoints, and returns the sequence
// and the length it had before, or false where the pool refused the
// tokens.
func (h *hyModel) stepToDrop(t *rapid.T, next *int32) (*hySeq, int, bool) {
	s := h.pick(t, hyRunning)
	if s.fresh > 0 || s.spec > 0 {
		t.Skip("fresh tokens not batched yet, or drafts pending")
	}
	from := len(s.tokens)
	if !h.appendTo(t, s, h.newTokens(t, next, 3*h.bs)) {
		return nil, 0, false
	}
	h.transfer(t)
	h.takeDropped(t, s, from)
	return s, from, true
}

// appendTo appends toks to running s, in the manager and the model, and
// reports whether it did: false where the pool refused them.
func (h *hyModel) appendTo(t *rapid.T, s *hySeq, toks []int32) bool {
	err := h.m.Append(s.id, toks...)
	if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
		return false
	}
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	s.grown()
	s.tokens = append(s.tokens, toks...)
	return true
}

// dropAdmit admits a waiting sequence, whole or a chunk, for a step that
// is then dropped: its branch-point checkpoint, asked at the admission,
// is handed out for that step. Before the step's directives are taken,
// SwapOut refuses the sequence (ErrUncomputed: the step has not computed
// its KV) and changes nothing, and the scheduler may take the admission
// back (Unadmit), which leaves the statistics as if it had not been made.
func (h *hyModel) dropAdmit(t *rapid.T) {
	s := h.pick(t, hyWaiting)
	before := h.m.Stats()
	cached, ok := h.admitOnly(t, s)
	if !ok {
		return
	}
	stats, tables := h.snapshot(s)
	want := paged.ErrUncomputed
	if h.m.Config().HostBlocks == 0 {
		want = paged.ErrNoHostTier
	}
	if err := h.m.SwapOut(s.id); !errors.Is(err, want) {
		t.Fatalf("SwapOut of %v admitted in the step being built: %v, want %v", s.id, err, want)
	}
	h.unchanged(t, "SwapOut", stats, []*hySeq{s}, tables)
	if rapid.Bool().Draw(t, "unadmit") {
		if err := h.m.Unadmit(s.id); err != nil {
			t.Fatalf("Unadmit(%v): %v", s.id, err)
		}
		after := h.m.Stats()
		if lookupCounters(after) != lookupCounters(before) || after.Preemptions != before.Preemptions || after.Unadmits != before.Unadmits+1 {
			t.Fatalf("Unadmit left the admission counted: %+v, then %+v", before, after)
		}
		if err := h.m.Check(); err != nil {
			t.Fatalf("after Unadmit: %v", err)
		}
		s.state, s.fresh, s.dropped, s.redo = hyWaiting, 0, false, 0
		h.transfer(t) // the step runs without it
		return
	}
	h.transfer(t)
	h.takeDropped(t, s, cached)
	h.endDropped(t, s, cached)
}
