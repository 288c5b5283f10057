package paged_test

import (
	"errors"
	"slices"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// admitChunk admits a waiting sequence a chunk at a time, as a scheduler
// with chunked prefill does: the dry run must agree, a refusal change
// nothing, the hits hold the sequence's KV, and the tokens past the chunk
// come back in order; they are then appended (computed) when they fit,
// and dropped from the model otherwise.
func (s *machine) admitChunk(t *rapid.T) {
	id, ms, ok := s.pick(t, false)
	if !ok {
		return
	}
	maxNew := rapid.IntRange(1, 2*s.bs+1).Draw(t, "maxNew")
	dry, err := s.m.CanAdmitChunk(id, maxNew)
	if err != nil {
		t.Fatalf("CanAdmitChunk: %v", err)
	}
	before := s.m.Stats()
	cached, rest, err := s.m.AdmitChunk(id, maxNew, nil)
	if (err == nil) != (dry == paged.AdmitOK) {
		t.Fatalf("CanAdmitChunk said %v, AdmitChunk returned %v", dry, err)
	}
	if err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		if toks, _ := s.m.Tokens(id); !slices.Equal(toks, ms.tokens) {
			t.Fatalf("a refused AdmitChunk left %v, had %v", toks, ms.tokens)
		}
		return
	}
	n := len(ms.tokens) - len(rest)
	if cached%s.bs != 0 || n-cached > maxNew || n <= cached || !slices.Equal(rest, ms.tokens[n:]) {
		t.Fatalf("AdmitChunk(%d) of %d tokens: cached %d, rest %v", maxNew, len(ms.tokens), cached, rest)
	}
	if got, _ := s.m.Len(id); got != n {
		t.Fatalf("AdmitChunk kept %d tokens, want %d", got, n)
	}
	ms.tokens = ms.tokens[:n]
	ms.running = true
	s.flushCopies(t)
	s.compute(t, id, ms, cached)
	if len(rest) == 0 {
		return
	}
	before = s.m.Stats()
	if err := s.m.Append(id, rest...); err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	s.flushCopies(t)
	ms.tokens = append(ms.tokens, rest...)
	s.compute(t, id, ms, n)
}

// dropStep appends tokens to a running sequence whose step is then
// dropped before computing them: Uncompute, then Preempt or Free. Their
// blocks must not be hit (the shadow KV of a later hit finds no KV).
func (s *machine) dropStep(t *rapid.T) {
	id, ms, ok := s.pick(t, true)
	if !ok || ms.spec > 0 {
		return
	}
	toks := rapid.SliceOfN(rapid.Int32Range(1, 6), 1, 2*s.bs+1).Draw(t, "tokens")
	before := s.m.Stats()
	if err := s.m.Append(id, toks...); err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	s.flushCopies(t)
	from := len(ms.tokens)
	if err := s.m.Uncompute(id, len(ms.tokens)+len(toks)+1); !errors.Is(err, paged.ErrInvalid) {
		t.Fatalf("Uncompute past the end: %v", err)
	}
	if err := s.m.Uncompute(id, from); err != nil {
		t.Fatalf("Uncompute: %v", err)
	}
	if err := s.m.Check(); err != nil {
		t.Fatalf("after Uncompute: %v", err)
	}
	if rapid.Bool().Draw(t, "free") {
		if err := s.m.Free(id); err != nil {
			t.Fatal(err)
		}
		s.remove(id)
		return
	}
	if err := s.m.Preempt(id); err != nil {
		t.Fatal(err)
	}
	ms.tokens = append(ms.tokens, toks...) // recomputed on admission
	ms.running = false
}
