package allocator

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Tests written for the seventy-sixth round of mutation testing (session
// 35, docs/testing.md): each kills a mutation the model, hostile and
// range tests let survive.

// TestAudit123CountCachedPanicFromBlockZero: a range from block 0 that
// runs past the pool's end names its last block, as one from any other
// block does. TestAudit10CountCachedPanicNamesABlockOutside started its
// ranges at block 5 and the other tests only asked for a panic naming
// some block, so a CountCached that named block 0 (inside the pool) for
// such a range passed.
func TestAudit123CountCachedPanicFromBlockZero(t *testing.T) {
	p, err := New(Config{NumBlocks: 10})
	require.NoError(t, err)
	for _, n := range []int{11, 20, math.MaxInt} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			p.CountCached(0, n)
			return "no panic"
		}()
		require.Equal(t, fmt.Sprintf("allocator: block %d out of range [0, 10)", n-1), msg, "CountCached(0, %d)", n)
	}
}

// TestAudit123CheckFindsWrappedCounters: Check refuses a pool that counts
// more releases than allocations even where the difference, wrapped in
// uint64, still gives the right number of held blocks. Every other test
// of Check changed a count that Held or Cached then disagreed with, so
// the releases test itself had never fired.
func TestAudit123CheckFindsWrappedCounters(t *testing.T) {
	p := fixture(t)
	held := p.Held()
	p.allocs, p.releases = 0, p.releases-p.allocs // allocs-releases unchanged
	require.Equal(t, held, p.Held())
	require.Equal(t, 1, p.Cached())
	require.ErrorContains(t, p.Check(), "(allocs 0, releases 18446744073709551614)")
}
