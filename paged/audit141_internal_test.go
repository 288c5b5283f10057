package paged

// The ninety-fourth round of mutation testing (docs/testing.md): a
// slot's large buffers kept for the next sequence (sequence.go).

import (
	"testing"
)

// TestAudit141SpareBuffers: the token buffers above keepTokens that free
// slots keep are counted in Manager.spare while the slot is free, and no
// longer once a sequence takes it; a sequence that needs less than half
// such a buffer gives it up, one that needs more than half keeps it.
func TestAudit141SpareBuffers(t *testing.T) {
	m, err := New(Config{BlockSize: 1024, NumBlocks: 128}) // MaxModelLen 130,048
	if err != nil {
		t.Fatal(err)
	}
	const big = keepTokens + 4464 // 70,000
	add := func(hint int) (SeqID, *sequence) {
		t.Helper()
		id, err := m.Add([]int32{1, 2, 3}, &SeqOptions{MaxTokens: hint})
		if err != nil {
			t.Fatal(err)
		}
		return id, &m.seqs[uint32(id)]
	}
	a, s := add(big)
	c0 := cap(s.tokens) // big, rounded up to a size class
	if c0 < big || c0 >= 80000 {
		t.Fatalf("a buffer of %d tokens for a hint of %d", c0, big)
	}
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	if m.spare != c0 {
		t.Fatalf("spare %d after freeing a slot with a %d-token buffer", m.spare, c0)
	}
	// 40,000 tokens would more than half fill the buffer: kept.
	b, s := add(40000)
	if uint32(b) != uint32(a) {
		t.Fatalf("%v did not reuse %v's slot", b, a)
	}
	if m.spare != 0 {
		t.Fatalf("spare %d with the only large buffer taken", m.spare)
	}
	if c := cap(s.tokens); c != c0 {
		t.Fatalf("a buffer of %d tokens, want the slot's %d kept", c, c0)
	}
	if err := m.Free(b); err != nil {
		t.Fatal(err)
	}
	if m.spare != c0 {
		t.Fatalf("spare %d, want %d", m.spare, c0)
	}
	// 3 tokens: given up.
	d, s := add(0)
	if m.spare != 0 || cap(s.tokens) >= keepTokens {
		t.Fatalf("spare %d, buffer of %d tokens: the large buffer should go", m.spare, cap(s.tokens))
	}
	if err := m.Free(d); err != nil {
		t.Fatal(err)
	}
	if m.spare != 0 {
		t.Fatalf("spare %d after freeing a small buffer", m.spare)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
