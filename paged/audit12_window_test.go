package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestWindowLargerThanThePool: a windowed sequence holds the blocks its
// window spans, at most ceil((W-1)/bs)+1 of them. When that fits the pool
// it grows to MaxModelLen, past the pool; when it does not, the sequence is
// a full-attention one as far as the pool goes, and the append that would
// outgrow the pool must fail with ErrNever (it can never succeed), not
// ErrNoSpace (try again later), even in an otherwise empty pool.
func TestWindowLargerThanThePool(t *testing.T) {
	const bs, usable = 4, 7
	for _, c := range []struct {
		window int
		grows  bool
	}{
		{(usable-1)*bs + 1, true}, // spans at most 7 blocks
		{(usable-1)*bs + 2, false},
		{1 << 10, false}, // MaxModelLen
	} {
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: usable + 1, MaxModelLen: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := m.Create(seqTokens(3, 1), &paged.SeqOptions{Window: c.window})
		if err != nil {
			t.Fatal(err)
		}
		n := 3
		for ; n < 4*usable*bs; n++ {
			if err = m.Append(id, int32(n)); err != nil {
				break
			}
		}
		switch {
		case c.grows && err != nil:
			t.Errorf("window %d: append %d: %v", c.window, n+1, err)
		case !c.grows && (n != usable*bs || !errors.Is(err, paged.ErrNever)):
			t.Errorf("window %d: append of token %d failed with %v, want token %d to fail with ErrNever", c.window, n+1, err, usable*bs+1)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
