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
	pinAfterStampsComeBack(t, 41) // past the first pass of the 40-block pool
}
