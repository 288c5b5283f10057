package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// firstRun returns the start of the first run of n free slots in owner,
// or -1: where first fit must place an allocation of n.
func firstRun(owner []int, n int) int {
	run := 0
	for i, o := range owner {
		if o != 0 {
			run = 0
			continue
		}
		if run++; run == n {
			return i - n + 1
		}
	}
	return -1
}

// TestFirstFitRandom runs the random arena workload: every allocation
// lands at the lowest hole that holds it, a failed one had no such hole,
// and releasing everything merges the arena back into one hole.
func TestFirstFitRandom(t *testing.T) {
	for _, size := range []int{1, 7, 64, 100, 1000} {
		f, err := NewFirstFit(size)
		require.NoError(t, err)
		randomArena(t, f, size, 7, ErrFirstFitFull, func(owner []int, n, off int, placed bool) {
			want := firstRun(owner, n)
			if !placed {
				off = -1
			}
			require.Equal(t, want, off, "first fit of %d", n)
		})
		require.Equal(t, size, f.Largest(), "size %d did not merge back", size)
	}
}

func TestFirstFitInvalid(t *testing.T) {
	_, err := NewFirstFit(0)
	require.ErrorIs(t, err, ErrFirstFitInvalid)
	f, err := NewFirstFit(10)
	require.NoError(t, err)
	for _, n := range []int{0, -1, 11} {
		_, err := f.Alloc(n)
		require.ErrorIs(t, err, ErrFirstFitInvalid, "alloc %d", n)
	}
	off, err := f.Alloc(4)
	require.NoError(t, err)
	for _, o := range []int{-1, 10, off + 1} {
		require.ErrorIs(t, f.Release(o), ErrFirstFitInvalid, "release %d", o)
	}
	require.NoError(t, f.Release(off))
	require.ErrorIs(t, f.Release(off), ErrFirstFitInvalid, "double release")
	require.NoError(t, f.Check())
	require.Equal(t, 10, f.Free())
}

func TestFirstFitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	f, err := NewFirstFit(15360)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		a, _ := f.Alloc(1100)
		b, _ := f.Alloc(2048)
		c, _ := f.Alloc(300)
		_, _ = f.Alloc(15000) // no hole: the ErrFirstFitFull sentinel
		_ = f.Release(b)
		_ = f.Release(a)
		_ = f.Release(c)
	})
	assert.Zero(t, allocs)
	require.NoError(t, f.Check())
	require.Equal(t, 15360, f.Largest())
}

func TestCompactingArena(t *testing.T) {
	c := newCompacting(10)
	a, err := c.Alloc(6)
	require.NoError(t, err)
	b, err := c.Alloc(4)
	require.NoError(t, err)
	require.False(t, c.Fits(1))
	_, err = c.Alloc(1)
	require.ErrorIs(t, err, ErrFragInvalid)
	require.NoError(t, c.Release(a))
	require.ErrorIs(t, c.Release(a), ErrFragInvalid)
	require.True(t, c.Fits(6))
	require.NoError(t, c.Check())
	require.NoError(t, c.Release(b))
	require.Equal(t, 10, c.Free())
	require.NoError(t, c.Check())
}

// First fit leaves the holes of finished requests where they were: 9
// slots free in holes of 6 and 3 cannot take a reservation of 8, which
// ideal compaction admits at once.
func TestFragFirstFitAndCompactByHand(t *testing.T) {
	reqs := trace([2]int{5, 1}, [2]int{3, 4}, [2]int{2, 1}, [2]int{7, 1})
	cfg := FragConfig{MaxLen: 8, KVTokens: 16, Allocator: AllocFirstFit}
	_, steps := recordSteps(t, reqs, ModelOracle, 0, cfg)
	require.Equal(t, []slots{
		{3, 10, 6, 0, 0, 0}, // r0 [0,6), r1 [6,13), r2 [13,16)
		{3, 13, 3, 0, 0, 0}, // r0 and r2 finish: holes of 6 and 3
		{1, 5, 2, 0, 9, 0},  // r3 needs 8 of the 9 free: external
		{1, 6, 1, 0, 9, 0},
		{1, 7, 0, 0, 9, 0},
		{1, 7, 1, 0, 0, 8}, // r3 placed once r1 is gone
		{1, 8, 0, 0, 0, 8},
	}, rows(steps))
	cfg.Allocator = AllocCompact
	res, steps := recordSteps(t, reqs, ModelOracle, 0, cfg)
	require.Equal(t, []slots{
		{3, 10, 6, 0, 0, 0},
		{3, 13, 3, 0, 0, 0},
		{2, 12, 3, 0, 0, 1}, // compaction makes room for r3
		{2, 14, 1, 0, 0, 1},
		{1, 7, 0, 0, 0, 9},
	}, rows(steps))
	require.Equal(t, AllocCompact, res.Allocator)
	require.Equal(t, "oracle/compact", res.Name())
	a, err := ParseAllocator("FirstFit")
	require.NoError(t, err)
	require.Equal(t, "first-fit", a.String())
	_, err = ParseAllocator("best-fit")
	require.ErrorIs(t, err, ErrFragInvalid)
	_, err = Frag(reqs, ModelOracle, 0, FragConfig{Allocator: Allocator(9)})
	require.ErrorIs(t, err, ErrFragInvalid)
}

func FuzzFirstFit(f *testing.F) {
	f.Add(uint16(100), []byte{3, 200, 7, 1, 129, 64, 2})
	f.Add(uint16(15360), []byte{40, 80, 120, 3, 60, 5, 200})
	f.Fuzz(func(t *testing.T, size uint16, ops []byte) {
		// Every op costs O(size): bounded, an execution stays fast enough
		// for the fuzzer to make progress (unbounded it stalled at 0/s).
		size %= 1024
		ff, err := NewFirstFit(int(size))
		if size == 0 {
			require.ErrorIs(t, err, ErrFirstFitInvalid)
			return
		}
		require.NoError(t, err)
		fuzzArena(t, ff, int(size), ops, ErrFirstFitFull, func(owner []int, n, off int) {
			require.Equal(t, firstRun(owner, n), off, "first fit of %d", n)
		})
	})
}
