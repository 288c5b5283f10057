package llmd_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/fleet/llmd"
	"github.com/pagedkv/pagedkv/paged"
)

// noPanic runs f and fails the test, naming what, if f panics.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panics: %v", what, r)
		}
	}()
	f()
}

// TestAudit50NilAndEmptyArguments calls every exported function and
// method of llmd with nil, empty and zero arguments. paged's hashers take
// a nil parent as the zero hash, so llmd's do too: KeyOf(nil) is the zero
// hash's key (0, true), the Hasher starts a nil parent's chain at Root,
// and DigestKey(nil) is the zero digest's key, 0. Before audit 50 the
// first three dereferenced nil.
func TestAudit50NilAndEmptyArguments(t *testing.T) {
	cfg := llmd.Config{BlockSize: 4, HashSeed: "0", Model: "m"}
	p, err := llmd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := llmd.NewSHA256CBOR(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var zero paged.Hash
	noPanic(t, "KeyOf(nil)", func() {
		k, ok := llmd.KeyOf(nil)
		zk, zok := llmd.KeyOf(&zero)
		if k != zk || ok != zok || k != 0 || !ok {
			t.Errorf("KeyOf(nil) = %d, %v; want the zero hash's %d, %v", k, ok, zk, zok)
		}
	})
	noPanic(t, "DigestKey(nil)", func() {
		if k := llmd.DigestKey(nil); k != llmd.DigestKey(&zero) {
			t.Errorf("DigestKey(nil) = %d, want the zero digest's %d", k, llmd.DigestKey(&zero))
		}
	})
	tokens := []int32{1, 2, 3, 4}
	noPanic(t, "Hasher().Sum(nil, ...)", func() {
		h := p.Hasher()
		got := h.Sum(nil, tokens, nil)
		if want := h.Sum(&zero, tokens, nil); got != want {
			t.Errorf("Hasher().Sum(nil) = %x, want the zero parent's %x", got, want)
		}
		if want := p.AppendKeys(nil, 0, tokens); len(want) != 1 || got != llmd.HashOf(want[0]) {
			t.Errorf("Hasher().Sum(nil) = %x, want the chain's first key %v from Root", got, want)
		}
		// No tokens and no extra: a key, not a panic.
		h.Sum(nil, nil, nil)
		h.Sum(nil, []int32{}, []byte{})
	})
	noPanic(t, "Processor with empty arguments", func() {
		if got := p.AppendKeys(nil, 0, nil); len(got) != 0 {
			t.Errorf("AppendKeys(nil tokens) = %v, want none", got)
		}
		if got := p.AppendKeys(nil, 0, tokens[:3]); len(got) != 0 {
			t.Errorf("AppendKeys(3 tokens, block 4) = %v, want none", got)
		}
		if _, err := p.Sum(0, nil, nil); err != nil {
			t.Errorf("Sum(0, nil, nil): %v", err)
		}
		if _, err := p.Sum(0, nil, func() {}); err == nil {
			t.Error("Sum with a function as extra: no error")
		}
	})
	noPanic(t, "SHA256CBOR with nil and empty arguments", func() {
		if got := s.AppendKeys(nil, nil); len(got) != 0 {
			t.Errorf("AppendKeys(nil) = %v, want none", got)
		}
		if got := s.AppendDigests(nil, nil, nil); len(got) != 0 {
			t.Errorf("AppendDigests(nil, nil, nil) = %v, want none", got)
		}
		a := s.AppendDigests(nil, nil, tokens)
		root := s.Root()
		b := s.AppendDigests(nil, &root, tokens)
		d, err := s.Sum(nil, tokens, nil)
		if err != nil || len(a) != 1 || len(b) != 1 || a[0] != b[0] || d != a[0] {
			t.Errorf("a nil parent is not Root: %x %x %x %v", a, b, d, err)
		}
		if _, err := s.Sum(nil, nil, func() {}); err == nil {
			t.Error("Sum with a function as extra: no error")
		}
	})
	for _, bs := range []int{0, -1} {
		if _, err := llmd.New(llmd.Config{BlockSize: bs}); err == nil {
			t.Errorf("New(BlockSize %d): no error", bs)
		}
		if _, err := llmd.NewSHA256CBOR(llmd.Config{BlockSize: bs}); err == nil {
			t.Errorf("NewSHA256CBOR(BlockSize %d): no error", bs)
		}
	}
}
