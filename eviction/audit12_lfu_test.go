package eviction

import (
	"math"
	"testing"
)

// TestLFUHitCountSaturates: the hit count of a block the cache keeps hot
// for weeks (a system prompt hit by every request) must saturate, as the
// type's doc says, not wrap to zero after 2^32 hits and make the hottest
// block the first victim.
func TestLFUHitCountSaturates(t *testing.T) {
	p := NewLFU(4).(*LFU)
	p.count[1] = math.MaxUint32 - 1 // as though hit 2^32-1 times
	p.Access(1)
	p.Access(1)
	p.Insert(1)
	p.Insert(2) // never hit
	if id, _ := p.Victim(); id != 2 {
		t.Fatalf("victim %d, want the never-hit block 2 before the hottest block 1", id)
	}
}
