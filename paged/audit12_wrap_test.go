package paged

import (
	"errors"
	"math"
	"testing"
)

// Long-run audit: counters that wrap after billions of operations, tested
// by setting them near their limit instead of looping.

// TestSeqIDGenerationNeverRepeats: a slot's generation is 32 bits, bumped
// by Add and by Free, so after 2^31 sequences in one slot it would come
// back to 1 and the slot's first handle, freed long ago, would name the
// new sequence. The slot is retired instead; no handle is issued twice.
func TestSeqIDGenerationNeverRepeats(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 9})
	if err != nil {
		t.Fatal(err)
	}
	first, err := m.Add([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := first.parts()
	if err := m.Free(first); err != nil {
		t.Fatal(err)
	}
	// As though 2^31-1 more sequences had used the slot.
	m.seqs[idx].gen = math.MaxUint32 - 1
	issued := map[SeqID]bool{first: true}
	for i := range 4 {
		id, err := m.Add([]int32{1, 2, 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if issued[id] {
			t.Fatalf("cycle %d: handle %v issued twice", i, id)
		}
		issued[id] = true
		if _, err := m.Len(first); !errors.Is(err, ErrUnknownSequence) {
			t.Fatalf("cycle %d: stale handle %v names a live sequence (new %v): %v", i, first, id, err)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPlacementIDGenerationNeverRepeats: the same for Placement's handles.
func TestPlacementIDGenerationNeverRepeats(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Device: Config{BlockSize: 4, NumBlocks: 9}, Devices: 2})
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.Create([]int32{1, 2, 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := first.parts()
	if err := p.Free(first); err != nil {
		t.Fatal(err)
	}
	p.seqs[idx].gen = math.MaxUint32 - 1
	issued := map[SeqID]bool{first: true}
	for i := range 4 {
		id, err := p.Create([]int32{1, 2, 3}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if issued[id] {
			t.Fatalf("cycle %d: handle %v issued twice", i, id)
		}
		issued[id] = true
		if _, err := p.Len(first); !errors.Is(err, ErrUnknownSequence) {
			t.Fatalf("cycle %d: stale handle %v names a live sequence (new %v): %v", i, first, id, err)
		}
		if err := p.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
}
