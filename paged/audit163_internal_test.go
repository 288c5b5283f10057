package paged

// The hundred-and-fifteenth round of mutation testing (docs/testing.md):
// the first half of sequence.go, a slot's buffers.

import (
	"testing"
	"unsafe"
)

// TestAudit163SlotGivesUpGroupTables: a slot whose long sequence left it
// buffers past keepTokens gives them all up to a short sequence, the
// tables of KV cache groups 1 and up with the rest (M4733: dropBuffers
// let the tokens, hashes and group 0's table go but kept the others').
func TestAudit163SlotGivesUpGroupTables(t *testing.T) {
	const bs, long = 1024, keepTokens + 4464 // 70,000 tokens, 69 blocks
	m, err := New(Config{BlockSize: bs, NumBlocks: 160,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: bs}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := m.Create(make([]int32, long), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &m.seqs[uint32(a)]
	if c := cap(s.ext[0].blocks); c < long/bs {
		t.Fatalf("the window group's table holds %d entries for %d blocks", c, long/bs+1)
	}
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	b, err := m.Add([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if uint32(b) != uint32(a) {
		t.Fatalf("%v did not reuse %v's slot", b, a)
	}
	if cap(s.tokens) >= keepTokens || cap(s.blocks) >= long/bs || cap(s.ext[0].blocks) >= long/bs {
		t.Fatalf("a 3-token sequence kept buffers of %d tokens, %d and %d table entries", cap(s.tokens), cap(s.blocks), cap(s.ext[0].blocks))
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAudit163BuffersSizedForTheHint: Add and AddFromHashes size a
// sequence's token, hash and table buffers for its MaxTokens hint, so
// decoding to the hint never moves them: a sequence added from tokens in
// a fresh slot (M4763: setOptions did not size the table, and Append grew
// it), and one added from hashes in a reused slot whose buffers hold its
// tokens but not the hint (M4766: growZero reused any buffer that held
// the tokens, and Append grew it).
func TestAudit163BuffersSizedForTheHint(t *testing.T) {
	const bs, hint = 4, 64
	m, err := New(Config{BlockSize: bs, NumBlocks: 64})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(id SeqID, n int) {
		t.Helper()
		if _, err := m.Admit(id); err != nil {
			t.Fatal(err)
		}
		s := &m.seqs[uint32(id)]
		if c := cap(s.tokens); c < hint {
			t.Fatalf("a buffer of %d tokens for a hint of %d", c, hint)
		}
		tokens, hashes, blocks := unsafe.SliceData(s.tokens), unsafe.SliceData(s.hashes), unsafe.SliceData(s.blocks)
		for i := n; i < hint; i++ {
			if err := m.Append(id, int32(i)); err != nil {
				t.Fatal(err)
			}
		}
		if unsafe.SliceData(s.tokens) != tokens || unsafe.SliceData(s.hashes) != hashes || unsafe.SliceData(s.blocks) != blocks {
			t.Fatalf("decoding to the hint moved a buffer (tokens %v, hashes %v, table %v)",
				unsafe.SliceData(s.tokens) != tokens, unsafe.SliceData(s.hashes) != hashes, unsafe.SliceData(s.blocks) != blocks)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.Add([]int32{1, 2, 3, 4, 5, 6, 7, 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := cap(m.seqs[uint32(b)].tokens); c >= hint {
		t.Fatalf("an 8-token prompt's buffer holds %d tokens", c)
	}
	a, err := m.Add([]int32{1, 2, 3, 4, 5, 6}, &SeqOptions{MaxTokens: hint})
	if err != nil {
		t.Fatal(err)
	}
	decode(a, 6)

	if err := m.Free(b); err != nil {
		t.Fatal(err)
	}
	c, err := m.AddFromHashes(nil, 6, &SeqOptions{MaxTokens: hint})
	if err != nil {
		t.Fatal(err)
	}
	if uint32(c) != uint32(b) {
		t.Fatalf("%v did not reuse %v's slot", c, b)
	}
	decode(c, 6)
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
