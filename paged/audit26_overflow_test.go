package paged

import (
	"errors"
	"testing"
)

// TestAudit26SpeculativeStatePagesOverflow: drafts whose states' pages
// number more than an int holds where int is 32 bits (a State group of
// 198 pages, 11.5M drafts: 2.3e9 pages) are ErrNever, changing nothing,
// as on 64 bits. checkSpeculative multiplied the pages by the drafts in
// int, which wrapped negative under GOARCH=arm: the bound passed, and
// so did growGroups' space check, whose allocation of the states' pages
// (the product again) then allocated nothing, leaving tables short of
// their drafts' states.
func TestAudit26SpeculativeStatePagesOverflow(t *testing.T) {
	m, err := New(Config{BlockSize: 65536, NumBlocks: 200, Groups: []Group{{Kind: FullAttention}, {Kind: State, Pages: 198}}})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Create([]int32{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	drafts := make([]int32, 11_500_000)
	err = m.AppendSpeculative(id, drafts...)
	if !errors.Is(err, ErrNever) {
		t.Fatalf("AppendSpeculative of %d drafts with 198 state pages each: %v, want ErrNever", len(drafts), err)
	}
	if n, _ := m.Len(id); n != 1 || m.Stats() != before {
		t.Fatalf("a refused AppendSpeculative changed the manager: length %d, stats %+v, were %+v", n, m.Stats(), before)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
