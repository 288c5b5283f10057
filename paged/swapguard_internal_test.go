package paged

import (
	"strings"
	"testing"
)

// TestCheckCatchesSwapOutInArrivalStep: Check reports a swapped-out
// sequence whose swap-out was in the step it was admitted (or swapped) in,
// the state SwapOut's guard keeps out (its host blocks would hold KV that
// step had not computed), for as long as it stays swapped out. The
// guard is bypassed here by hand.
func TestCheckCatchesSwapOutInArrivalStep(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 8})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := m.seqAt(id)
	arrived := s.arrived
	s.arrived = 0 // bypass the guard
	if err := m.SwapOut(id); err != nil {
		t.Fatal(err)
	}
	s.arrived = arrived
	for range 3 {
		err := m.Check()
		if err == nil || !strings.Contains(err.Error(), "swapped out in step") {
			t.Fatalf("Check after a swap-out in the arrival step: %v", err)
		}
		m.EndStep() // later steps do not hide it
	}
	if err := m.SwapIn(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("swapped back in: %v", err)
	}
}
