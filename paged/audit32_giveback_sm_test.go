package paged_test

import (
	"errors"
	"slices"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"

	"github.com/pagedkv/pagedkv/paged"
)

// Steps given back in the hybrid state machine (runGroupsMachine): a
// scheduler that drops a step may give its tokens back (Uncompute, then
// Truncate of some or all of them) and schedule them, or others, again
// (Append, then a batch). Uncompute's record of the first position never
// computed lasts until the next Append (its doc): the model keeps it in
// hySeq.redo, and every swap-in checks that the sequence's local tables
// hold nothing before what its next query reads (checkSwappedIn). Before
// 9ec6008 a record cut by Truncate outlived the recompute, and the
// sequence came back holding a window block its next query no longer
// reads.

// noteUncompute records in the model that positions from from on of s were
// never computed (Uncompute), as the manager keeps it: the earlier of the
// positions named since the last Append.
func (s *hySeq) noteUncompute(from int) {
	if from >= len(s.tokens) {
		return
	}
	if s.redo == 0 {
		s.redo, s.dropNow = from+1, true
	} else if from+1 < s.redo {
		s.redo = from + 1
	}
}

// grown ends Uncompute's record of s: an Append (or AppendSpeculative)
// takes every token before the ones it adds as computed.
func (s *hySeq) grown() { s.redo = 0 }

// giveBack appends tokens to a running sequence for a step that is then
// dropped and given back, as a scheduler gives back a dropped step:
// Uncompute of the step's tokens, then Truncate of some or all of them.
// The tokens kept are computed by the next step; the normal actions
// append and compute again after that.
func (h *hyModel) giveBack(t *rapid.T, next *int32) {
	s, from, ok := h.stepToDrop(t, next)
	if !ok {
		return
	}
	end := len(s.tokens)
	if err := h.m.Uncompute(s.id, from); err != nil {
		t.Fatalf("Uncompute(%v, %d): %v", s.id, from, err)
	}
	s.noteUncompute(from)
	parent := s
	var other *hySeq // the parent or its child, not cut
	if h.hasState() && rapid.Bool().Draw(t, "fork in the step") {
		// Forked in the step of the Uncompute (audit44): the child's
		// State pages are copies of the parent's as the step's Copy
		// directives find them, before its kernels, so the child is cut
		// back as the parent is (the mark is inherited) and its state is
		// read back after its tokens are computed again.
		id, err := h.m.Fork(s.id)
		switch {
		case errors.Is(err, paged.ErrNoSpace):
		case err != nil:
			t.Fatalf("Fork(%v) in the step of its Uncompute(%d): %v", s.id, from, err)
		default:
			c := &hySeq{id: id, tokens: slices.Clone(s.tokens), state: hyRunning, fresh: len(s.tokens) - from, dropped: true,
				spec: s.spec, redo: s.redo, dropNow: s.dropNow}
			h.seqs = append(h.seqs, c)
			h.forkedDropped++
			s.fresh, s.dropped, other = len(s.tokens)-from, true, c
			if rapid.Bool().Draw(t, "give back the child's") {
				s, other = c, s
			}
		}
	}
	n := rapid.IntRange(from, len(s.tokens)-1).Draw(t, "give back to")
	stats, before := h.m.Stats(), h.tables(s)
	err := h.m.Truncate(s.id, n)
	if !h.truncatable(s, n) {
		// A sliding window or chunked-local group that released what
		// the query at n reads: refused, and the step is computed again
		// whole. (A State group no longer refuses: Uncompute told the
		// manager that no state absorbed the step's tokens.)
		if !errors.Is(err, paged.ErrInvalid) {
			t.Fatalf("Truncate(%v, %d) of %d tokens after Uncompute: %v, want ErrInvalid", s.id, n, len(s.tokens), err)
		}
		h.unchanged(t, "Truncate", stats, []*hySeq{s}, [][][]allocator.BlockID{before})
		n = len(s.tokens)
	} else if err != nil {
		t.Fatalf("Truncate(%v, %d) of %d tokens after Uncompute(%d): %v", s.id, n, len(s.tokens), from, err)
	}
	h.givenBack++
	s.fresh, s.dropped = len(s.tokens)-from, true
	s.cut(len(s.tokens) - n)
	if err := h.m.Check(); err != nil {
		t.Fatalf("after giving back [%d, %d) of %v: %v", n, end, s.id, err)
	}
	// The next step computes the tokens kept (as endDropped's), the
	// parent's first: the checkpoints its dropped step reached are
	// pending (take checkpoints), and write takes them.
	if other == parent {
		h.write(t, other, from) // all of them
		other = nil
	}
	h.write(t, s, from)
	if other != nil {
		h.write(t, other, from)
	}
	if !rapid.Bool().Draw(t, "give again") {
		return // a later batch computes them again
	}
	// That step ran; the scheduler gives the sequence tokens again, as
	// many as it gave back or fewer, and the step after computes them.
	s.fresh, s.dropped = 0, false
	at := len(s.tokens)
	if h.appendTo(t, s, h.newTokens(t, next, max(1, end-n))) {
		s.fresh = len(s.tokens) - at
		h.write(t, s, at)
	}
}

// checkSwappedIn fails unless s, just swapped in, holds in its sliding
// window and chunked-local tables no block before the first one its next
// query reads: the query at its accepted length (one less with drafts
// pending: the token sampled last is computed with them), or at the first
// position a dropped step left uncomputed (Uncompute, until the next
// Append). A chunked-local group keeps no block more: the last cached
// one, which a running sequence keeps (vLLM's rule; paged's dead), is
// released at SwapOut when the next query does not read it.
func (h *hyModel) checkSwappedIn(t *rapid.T, s *hySeq) {
	q := len(s.tokens) - s.spec
	if s.spec > 0 {
		q--
	}
	if s.redo > 0 {
		q = min(q, s.redo-1)
	}
	if s.dropped {
		q = min(q, len(s.tokens)-s.fresh)
	}
	q = max(q, 0)
	for g, k := range h.groups {
		if k.Kind != paged.SlidingWindow && k.Kind != paged.ChunkedLocal {
			continue
		}
		first := h.live(g, q) / h.bs
		table, err := h.m.TableGroup(s.id, g)
		if err != nil {
			t.Fatalf("TableGroup(%v, %d): %v", s.id, g, err)
		}
		for j, b := range table[:min(first, len(table))] {
			if b != 0 {
				t.Fatalf("%v swapped in (%d tokens, %d drafts, next query at %d) holds block %d at entry %d of %v group %d, which reads from entry %d: %v",
					s.id, len(s.tokens), s.spec, q, b, j, k.Kind, g, first, table)
			}
		}
	}
}
