package paged

import (
	"errors"
	"math"
	"testing"
)

// Long-run audit: counters that wrap after billions of operations, tested
// by setting them near their limit instead of looping.

// checkHandlesNeverRepeat frees first, sets its slot's generation to
// *gen's last even value (as though 2^31-1 more sequences had used the
// slot), then makes and frees sequences through the wrap: no handle may be
// issued twice, and first must stay unknown to length.
func checkHandlesNeverRepeat(t *testing.T, first SeqID, gen *uint32, add func() (SeqID, error), free func(SeqID) error, length func(SeqID) (int, error)) {
	t.Helper()
	if err := free(first); err != nil {
		t.Fatal(err)
	}
	*gen = math.MaxUint32 - 1
	issued := map[SeqID]bool{first: true}
	for i := range 4 {
		id, err := add()
		if err != nil {
			t.Fatal(err)
		}
		if issued[id] {
			t.Fatalf("cycle %d: handle %v issued twice", i, id)
		}
		issued[id] = true
		if _, err := length(first); !errors.Is(err, ErrUnknownSequence) {
			t.Fatalf("cycle %d: stale handle %v names a live sequence (new %v): %v", i, first, id, err)
		}
		if err := free(id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeqIDGenerationNeverRepeats: a slot's generation is 32 bits, bumped
// by Add and by Free, so after 2^31 sequences in one slot it would come
// back to 1 and the slot's first handle, freed long ago, would name the
// new sequence. The slot is retired instead; no handle is issued twice.
func TestSeqIDGenerationNeverRepeats(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 9})
	if err != nil {
		t.Fatal(err)
	}
	add := func() (SeqID, error) { return m.Add([]int32{1, 2, 3}, nil) }
	first, err := add()
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := first.parts()
	checkHandlesNeverRepeat(t, first, &m.seqs[idx].gen, add, m.Free, m.Len)
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
	add := func() (SeqID, error) { return p.Create([]int32{1, 2, 3}, 1) }
	first, err := add()
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := first.parts()
	checkHandlesNeverRepeat(t, first, &p.seqs[idx].gen, add, p.Free, p.Len)
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPinIDGenerationNeverRepeats: a pin slot's generation is 32 bits,
// bumped by every Pin, so after 2^32 pins in one slot it would come back
// and a PinID released long ago would name (and Unpin) a new pin. The
// slot is retired instead. Before the fix the stale ID unpinned the pin
// made after the wrap.
func TestPinIDGenerationNeverRepeats(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 9})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(4); err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3, 4, 5}
	id, _, err := m.Create(prompt, nil) // caches the prefix the pins hold
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	first, _, err := m.Pin(prompt, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unpin(first); err != nil {
		t.Fatal(err)
	}
	m.pins.pins[uint32(first)-1].gen = math.MaxUint32 - 1 // as though 2^32-3 more pins had used the slot
	issued := map[PinID]bool{first: true}
	for i := range 4 {
		p, _, err := m.Pin(prompt, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if issued[p] {
			t.Fatalf("cycle %d: pin %#x issued twice", i, uint64(p))
		}
		issued[p] = true
		if err := m.Unpin(first); !errors.Is(err, ErrUnknownPin) {
			t.Fatalf("cycle %d: the stale pin %#x released the live pin %#x: %v", i, uint64(first), uint64(p), err)
		}
		if err := m.Unpin(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
