package paged_test

import (
	"errors"
	"math"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestGroupWindowAtTheEdgeOfTheRange: a window or chunk past any
// sequence's length (MaxSeqLen) reads like full attention; near
// math.MaxInt its block arithmetic (ceil((W-1)/BlockSize), r*BlockSize+W-1)
// overflows, and a window group released a block its next query reads.
// New refuses such a group with ErrInvalid; MaxSeqLen itself works.
func TestGroupWindowAtTheEdgeOfTheRange(t *testing.T) {
	for _, g := range []paged.Group{
		{Kind: paged.SlidingWindow, Window: math.MaxInt},
		{Kind: paged.SlidingWindow, Window: paged.MaxSeqLen + 1},
		{Kind: paged.ChunkedLocal, Chunk: math.MaxInt},
	} {
		_, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64, Groups: []paged.Group{{Kind: paged.FullAttention}, g}})
		if !errors.Is(err, paged.ErrInvalid) {
			t.Errorf("%v group of %d: New returned %v, want ErrInvalid", g.Kind, max(g.Window, g.Chunk), err)
		}
	}
	for _, g := range []paged.Group{
		{Kind: paged.SlidingWindow, Window: paged.MaxSeqLen},
		{Kind: paged.ChunkedLocal, Chunk: paged.MaxSeqLen},
	} {
		m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64, Groups: []paged.Group{{Kind: paged.FullAttention}, g}})
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := m.Create(seqTokens(40, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := m.Append(a, int32(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Preempt(a); err != nil {
			t.Fatal(err)
		}
		// A second sequence hits the first one's cached prefix.
		if _, _, err := m.Create(seqTokens(40, 1), nil); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatalf("%v group of %d: %v", g.Kind, max(g.Window, g.Chunk), err)
		}
	}
}
