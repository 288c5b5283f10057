package allocator_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10CountCachedPanicNamesABlockOutside: CountCached's panic names
// its range's last block, which lies outside the pool. With a count so
// large that id+n-1 does not fit a BlockID, the message named a block
// inside the pool (CountCached(5, MaxInt) on a pool of 10 said "block 3
// out of range [0, 10)"), pointing whoever reads it at the wrong block.
func TestAudit10CountCachedPanicNamesABlockOutside(t *testing.T) {
	p, err := allocator.New(allocator.Config{NumBlocks: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{11, min(1<<31, math.MaxInt), min(1<<32+3, math.MaxInt), math.MaxInt} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			p.CountCached(5, n)
			return "no panic"
		}()
		last := 5 + n - 1
		if n > math.MaxInt-4 {
			last = math.MaxInt // saturates rather than wraps
		}
		want := fmt.Sprintf("allocator: block %d out of range [0, 10)", last)
		if msg != want {
			t.Errorf("CountCached(5, %d) panicked %q, want %q", n, msg, want)
		}
		// The named block lies outside the pool.
		f := strings.Fields(msg)
		if len(f) < 3 {
			continue
		}
		if b, err := strconv.ParseInt(f[2], 10, 64); err != nil || (b >= 0 && b < 10) {
			t.Errorf("CountCached(5, %d) names block %s, inside the pool", n, f[2])
		}
	}
}
