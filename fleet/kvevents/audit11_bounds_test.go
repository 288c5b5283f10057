package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit11FrameBoundsWhatItHolds: a hash takes 32 bytes decoded but
// one byte on the wire (a positive fixint), a token 4 bytes for one, so a
// frame used to cost up to 32 times its size, kept by the Batch for
// reuse: a 1 GiB frame asked for 32 GiB. A frame naming more than
// MaxFrameHashes hashes or MaxFrameTokens tokens is refused with
// ErrMalformed before its arenas grow past the bounds; one at the bounds
// decodes.
func TestAudit11FrameBoundsWhatItHolds(t *testing.T) {
	removed := func(n int) []byte {
		e := new(enc).arr(2).float(1).arr(1).arr(2).str("BlockRemoved").arr(n)
		for range n {
			e.b = append(e.b, 1)
		}
		return e.b
	}
	stored := func(n int) []byte {
		e := new(enc).arr(2).float(1).arr(1).arr(7).str("BlockStored").arr(1).int(1).nil().arr(n)
		for range n {
			e.b = append(e.b, 1)
		}
		return e.int(1).nil().str("GPU").b
	}
	var b Batch
	require.NoError(t, b.Decode(removed(MaxFrameHashes)))
	assert.Len(t, b.Events[0].Hashes, MaxFrameHashes)
	require.ErrorIs(t, b.Decode(removed(MaxFrameHashes+1)), ErrMalformed)
	assert.Empty(t, b.Events)
	// (A frame at the token bound decodes too; 16Mi tokens take long
	// under the race detector, so a smaller one here.)
	require.NoError(t, b.Decode(stored(1<<16)))
	assert.Len(t, b.Events[0].Tokens, 1<<16)
	require.ErrorIs(t, b.Decode(stored(MaxFrameTokens+1)), ErrMalformed)
	assert.Empty(t, b.Events)
	// The bound is the frame's, not one event's: two events of half.
	two := new(enc).arr(2).float(1).arr(2)
	for range 2 {
		two.arr(2).str("BlockRemoved").arr(MaxFrameHashes/2 + 1)
		for range MaxFrameHashes/2 + 1 {
			two.b = append(two.b, 1)
		}
	}
	require.ErrorIs(t, b.Decode(two.b), ErrMalformed)
}
