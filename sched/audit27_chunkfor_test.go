package sched

import "testing"

// TestAudit27PinChunkCapsBelowChunk: entry.pinChunk (a halving made while
// prefix pins held blocks) caps the chunks below entry.chunk (the cap
// shrinkChunk sets where a larger chunk is never computed in the pool),
// never above it. shrinkChunk sets chunk below a pinChunk when an entry
// with one is admitted again while the pins hold and the manager says
// never for the pinChunk: chunkFor answered pinChunk, so the admission
// asked for the never chunk again and aborted the request (ErrNever)
// where the smaller chunk fits. Both caps, either order, and the budget.
func TestAudit27PinChunkCapsBelowChunk(t *testing.T) {
	for _, c := range []struct{ chunk, pin, budget, want int }{
		{0, 0, 32, 32},
		{8, 0, 32, 8},
		{0, 8, 32, 8},
		{16, 8, 32, 8},
		{4, 8, 32, 4}, // shrinkChunk after the pin halving
		{4, 8, 2, 2},
		{8, 16, 6, 6},
	} {
		e := &entry{chunk: c.chunk, pinChunk: c.pin}
		if got := e.chunkFor(c.budget); got != c.want {
			t.Errorf("chunk %d, pinChunk %d, budget %d: chunkFor %d, want %d", c.chunk, c.pin, c.budget, got, c.want)
		}
	}
}
