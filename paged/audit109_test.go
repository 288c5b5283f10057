package paged_test

import (
	"testing"
)

// TestAudit109StampsClearedOnEveryPass: EndStep clears the step stamps a
// part of the pool at a time and starts again at the pool's first block
// once it has swept the last. A prompt computed after the first pass
// (the 40-block pool's 40 steps) must not read as computed in the step
// being built when its stamp value comes back 65,535 steps later: a pin
// then holds its full blocks. (Mutation M2681, the sweep never going
// back to the start.)
func TestAudit109StampsClearedOnEveryPass(t *testing.T) {
	m := pinStepManager(t, nil)
	for range 41 { // past the first pass of the 40-block pool
		m.EndStep()
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 1<<16 - 1 {
		m.EndStep()
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if _, held, err := m.Pin(prompt, nil, 0); err != nil || held != 6 {
		t.Fatalf("65,535 steps after the prompt was computed (past the sweep's first pass), a pin holds %d tokens (%v), want 6", held, err)
	}
}
