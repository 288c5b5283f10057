package paged

import (
	"errors"
	"testing"
)

// TestAudit38PinsStayWithOthersRunning: retention pins are given up for a
// growing sequence's room only when it is alone in the pool (growGroups:
// nrunning == 1); with another sequence running, a growth short of room
// is refused with ErrNoSpace (a scheduler preempts or waits) and the pins
// stay. TestPinReclaimChunkedShareAlone's shape, with a second sequence
// of one token running beside the 13-token prompt (four blocks more in
// the pool for its four): the prompt's growth runs out of room at a step
// whose slide pins window blocks, and is refused, changing nothing. The
// mutation M124 (pins given up with two running) released them instead.
func TestAudit38PinsStayWithOthersRunning(t *testing.T) {
	m, prompt := shareAloneShape(t, 22, true)
	other, _, err := m.Create([]int32{900}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Add(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, err := m.AdmitChunk(id, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := false
	for step := 0; step < 40; step++ {
		m.TakeCheckpoints(nil)
		m.TakeCopies(nil)
		tokens := []int32{1}
		if len(rest) > 0 {
			tokens = rest[:min(2, len(rest))]
		}
		before := m.Stats()
		err := m.Append(id, tokens...)
		if cerr := m.Check(); cerr != nil {
			t.Fatal(cerr)
		}
		after := m.Stats()
		if after.RetentionPinsReleased != 0 {
			t.Fatalf("step %d: %d retention pins released with another sequence running", step, after.RetentionPinsReleased)
		}
		if err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("step %d: %v, want ErrNoSpace", step, err)
			}
			if after != before {
				t.Fatalf("step %d: the refusal changed the stats: %+v, then %+v", step, before, after)
			}
			refused = true
			break
		}
		rest = rest[min(len(tokens), len(rest)):]
	}
	if !refused {
		t.Fatal("never short of room: the test lost its shape")
	}
	// Alone (the other's blocks freed), the same growth runs and pins
	// what its window leaves: the refused step was one that makes pins.
	if err := m.Free(other); err != nil {
		t.Fatal(err)
	}
	tokens := []int32{1}
	if len(rest) > 0 {
		tokens = rest[:min(2, len(rest))]
	}
	if err := m.Append(id, tokens...); err != nil {
		t.Fatalf("alone: %v", err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.RetentionPins == 0 {
		t.Fatal("the refused step pins nothing once alone: the test lost its shape")
	}
}

// TestAudit38PinNamingABlockTwiceCountsItOnce: the pin budget counts
// distinct blocks. A hash list that names one cached block twice (the
// same hash given twice to PinHashes) pins one block: a budget of one
// takes it, PinStats says one block, and Unpin gives both references
// back. The mutation M141 (every naming counted as fresh) refused it
// with ErrPinBudget.
func TestAudit38PinNamingABlockTwiceCountsItOnce(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 8})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3, 4, 5}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	m.EndStep() // the prompt's step ran: Pin holds only computed content (audit 36)
	hs, err := m.BlockHashes(nil, prompt, nil)
	if err != nil || len(hs) != 1 {
		t.Fatalf("hashes %v, %v", hs, err)
	}
	if err := m.SetPinBudget(1); err != nil {
		t.Fatal(err)
	}
	pin, _, err := m.PinHashes([]Hash{hs[0], hs[0]}, 0)
	if err != nil {
		t.Fatalf("a pin naming one block twice, budget 1: %v", err)
	}
	if st := m.PinStats(); st.PinnedBlocks != 1 || st.Pins != 1 {
		t.Errorf("PinStats %+v, want 1 pin of 1 block", st)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unpin(pin); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.UsedBlocks != 0 || st.CachedBlocks != 1 {
		t.Errorf("after Unpin: %d blocks used, %d cached; want 0 and 1", st.UsedBlocks, st.CachedBlocks)
	}
}
