package paged

import (
	"errors"
	"math"
	"testing"
)

// TestCheckTokensEveryPosition checks checkTokens, which reads the tokens
// two to a 64-bit word: a negative token is found at every position of
// slices of every length up to three of its 64-byte rounds and a tail,
// starting at every 4-byte offset of a word, whatever its other bits
// (the sign bit alone, all bits); the largest token IDs pass.
func TestCheckTokensEveryPosition(t *testing.T) {
	buf := make([]int32, 128)
	for off := range 4 {
		for n := range 3*16 + 8 {
			tokens := buf[off : off+n]
			for i := range tokens {
				tokens[i] = math.MaxInt32 - int32(i)
			}
			if err := checkTokens("Add", tokens); err != nil {
				t.Fatalf("offset %d, %d tokens of the largest IDs: %v", off, n, err)
			}
			for p := range n {
				for _, v := range []int32{-1, math.MinInt32, -1 << 30} {
					tokens[p] = v
					if err := checkTokens("Add", tokens); !errors.Is(err, ErrInvalid) {
						t.Fatalf("offset %d, %d tokens, %d at %d: %v, want ErrInvalid", off, n, v, p, err)
					}
				}
				tokens[p] = 0
			}
		}
	}
}
