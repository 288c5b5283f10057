package paged

import "testing"

// TestPendingListStaysShort: a caller that never takes checkpoints
// (TakeCheckpoints) leaves each admission's checkpoint asked: the pages go
// with the sequence, but its handle stayed in the pending list, which
// grew by one per admission for the manager's life and was walked by
// every admission that asked one (pendingAt). The list keeps only the
// sequences whose checkpoint is still pending.
func TestPendingListStaysShort(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64,
		Groups: []Group{{Kind: FullAttention}, {Kind: State, Pages: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	prompt := func(tail int32) []int32 {
		p := make([]int32, 0, 17)
		for i := range 12 {
			p = append(p, int32(i+1))
		}
		return append(p, tail, tail+1, tail+2, tail+3, tail+4)
	}
	first, _, err := m.Create(prompt(1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Free(first); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		id, _, err := m.Create(prompt(int32(2000+10*i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.ret.pend); n > 1 {
		t.Fatalf("%d sequences in the pending list after 200 admissions and frees, none pending", n)
	}
}
