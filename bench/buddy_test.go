package bench

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuddyTable(t *testing.T) {
	// Each op allocates n slots (want the offset, or -1 for ErrBuddyFull)
	// or, with n == 0, releases the allocation at off.
	type op struct{ n, off int }
	tests := []struct {
		name    string
		size    int
		ops     []op
		free    int
		largest int
	}{
		{"split to the smallest order", 16, []op{{3, 0}, {4, 4}, {1, 3}, {8, 8}, {1, -1}}, 0, 0},
		{"exact allocation gives the tail back", 16, []op{{5, 0}, {2, 6}, {1, 5}}, 8, 8},
		{"alignment blocks a fit", 8, []op{{2, 0}, {2, 2}, {2, 4}, {0, 2}, {4, -1}}, 4, 2},
		{"release merges up to the arena", 16, []op{{4, 0}, {4, 4}, {8, 8}, {0, 4}, {0, 0}, {16, -1}, {0, 8}, {16, 0}}, 0, 0},
		{"arena not a power of two", 12, []op{{8, 0}, {4, 8}, {1, -1}, {0, 0}, {5, 0}}, 3, 2},
		{"free slots but no block large enough", 15, []op{{2, 12}, {8, 0}, {0, 12}, {8, -1}, {4, 8}}, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBuddy(tt.size)
			require.NoError(t, err)
			for i, o := range tt.ops {
				if o.n == 0 {
					require.NoError(t, b.Release(o.off), "op %d", i)
				} else {
					fits := b.Fits(o.n)
					off, err := b.Alloc(o.n)
					if o.off < 0 {
						require.ErrorIs(t, err, ErrBuddyFull, "op %d", i)
						require.False(t, fits, "op %d", i)
					} else {
						require.NoError(t, err, "op %d", i)
						require.True(t, fits, "op %d", i)
						require.Equal(t, o.off, off, "op %d", i)
					}
				}
				require.NoError(t, b.Check(), "op %d", i)
			}
			assert.Equal(t, tt.free, b.Free())
			assert.Equal(t, tt.largest, b.Largest())
		})
	}
}

func TestBuddyInvalid(t *testing.T) {
	_, err := NewBuddy(0)
	require.ErrorIs(t, err, ErrBuddyInvalid)
	_, err = NewBuddy(1<<30 + 1)
	require.ErrorIs(t, err, ErrBuddyInvalid)

	b, err := NewBuddy(16)
	require.NoError(t, err)
	off, err := b.Alloc(3)
	require.NoError(t, err)
	for _, n := range []int{0, -1, 17} {
		_, err := b.Alloc(n)
		require.ErrorIs(t, err, ErrBuddyInvalid, "alloc %d", n)
		require.False(t, b.Fits(n))
	}
	for _, o := range []int{-1, 16, 1, 4} {
		require.ErrorIs(t, b.Release(o), ErrBuddyInvalid, "release %d", o)
	}
	require.Equal(t, 13, b.Free(), "bad calls changed nothing")
	require.NoError(t, b.Release(off))
	require.ErrorIs(t, b.Release(off), ErrBuddyInvalid, "double release")
	require.Equal(t, 16, b.Free())
	require.NoError(t, b.Check())
}

// TestBuddyRandom checks the invariants after every operation of seeded
// random workloads, against a shadow map of who owns each slot, and that
// releasing everything merges the arena back to its starting blocks.
func TestBuddyRandom(t *testing.T) {
	for _, size := range []int{1, 7, 64, 100, 1000} {
		b, err := NewBuddy(size)
		require.NoError(t, err)
		largest0 := b.Largest()
		randomArena(t, b, size, 42, ErrBuddyFull, func(owner []int, n, off int, placed bool) {
			if placed {
				require.Zero(t, off%(1<<ceilLog2(n)), "offset %d of a %d-slot allocation is misaligned", off, n)
			} else {
				require.Less(t, b.Largest(), n, "a free block of %d would hold %d", b.Largest(), n)
			}
		})
		require.Equal(t, largest0, b.Largest(), "size %d did not merge back", size)
	}
}

// randomArena runs 3000 seeded random allocations and releases on a, an
// empty arena of size slots, checking after each that a's invariants hold,
// that Fits agreed with Alloc, that no slot is handed out twice and that
// the free count matches a shadow of the owners; place checks where each
// allocation went (or why it failed). It releases everything at the end.
func randomArena(t *testing.T, a arena, size int, seed uint64, full error, place func(owner []int, n, off int, placed bool)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(size), seed))
	owner := make([]int, size) // 0 free, else offset+1 of the owner
	live := map[int]int{}
	for i := range 3000 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			for off, n := range live {
				require.NoError(t, a.Release(off))
				for s := off; s < off+n; s++ {
					owner[s] = 0
				}
				delete(live, off)
				break
			}
		} else {
			n := 1 + rng.IntN(max(1, size/4))
			fits := a.Fits(n)
			// place sees the owners before the allocation.
			snapshot := append([]int(nil), owner...)
			off, err := a.Alloc(n)
			if err != nil {
				require.ErrorIs(t, err, full)
				require.False(t, fits)
				place(snapshot, n, 0, false)
			} else {
				require.True(t, fits)
				place(snapshot, n, off, true)
				for s := off; s < off+n; s++ {
					require.Zero(t, owner[s], "step %d: slot %d allocated twice", i, s)
					owner[s] = off + 1
				}
				live[off] = n
			}
		}
		require.NoError(t, a.Check(), "size %d step %d", size, i)
		used := 0
		for _, n := range live {
			used += n
		}
		require.Equal(t, size-used, a.Free())
	}
	for off := range live {
		require.NoError(t, a.Release(off))
	}
	require.NoError(t, a.Check())
	require.Equal(t, size, a.Free())
}

func TestBuddyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	b, err := NewBuddy(15360)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		off1, _ := b.Alloc(1100)
		off2, _ := b.Alloc(2048)
		_, _ = b.Alloc(9000) // no aligned block of 2^14: the ErrBuddyFull sentinel
		_ = b.Release(off1)
		_ = b.Release(off2)
	})
	assert.Zero(t, allocs)
	require.NoError(t, b.Check())
	require.Equal(t, 15360, b.Free())
}

func BenchmarkBuddy(b *testing.B) {
	bd, err := NewBuddy(1 << 20)
	require.NoError(b, err)
	offs := make([]int, 0, 64)
	sizes := [...]int{1100, 311, 2048, 17, 700, 4000, 1}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if len(offs) == cap(offs) {
			for _, o := range offs {
				_ = bd.Release(o)
			}
			offs = offs[:0]
		}
		off, err := bd.Alloc(sizes[i%len(sizes)])
		if err == nil {
			offs = append(offs, off)
		}
		i++
	}
}

// FuzzBuddy drives an allocator with byte-coded operations and checks its
// invariants, and that every placed range is aligned and overlaps no live
// one, after each.
func FuzzBuddy(f *testing.F) {
	f.Add(uint16(100), []byte{3, 200, 7, 1, 129, 64, 2})
	f.Add(uint16(15360), []byte{255, 255, 128, 0, 17})
	f.Fuzz(func(t *testing.T, size uint16, ops []byte) {
		// Every op costs O(size): bounded, an execution stays fast enough
		// for the fuzzer to make progress (unbounded it stalled at 0/s).
		size %= 1024
		b, err := NewBuddy(int(size))
		if size == 0 {
			require.ErrorIs(t, err, ErrBuddyInvalid)
			return
		}
		require.NoError(t, err)
		fuzzArena(t, b, int(size), ops, ErrBuddyFull, func(_ []int, n, off int) {
			require.Zero(t, off%(1<<ceilLog2(n)))
		})
	})
}

// fuzzArena runs ops on a, an empty arena of size slots: an odd op
// releases the live allocation op/2 picks, an even one allocates a size
// scaled from op. It checks that no slot is given twice and a's invariants
// after every allocation; placed checks where each allocation went, given
// the owners before it.
func fuzzArena(t *testing.T, a arena, size int, ops []byte, full error, placed func(owner []int, n, off int)) {
	if len(ops) > 128 {
		ops = ops[:128]
	}
	var live [][2]int // offset, length
	owner := make([]int, size)
	for _, op := range ops {
		if op&1 == 1 && len(live) > 0 {
			k := int(op/2) % len(live)
			off, n := live[k][0], live[k][1]
			require.NoError(t, a.Release(off))
			live = append(live[:k], live[k+1:]...)
			for i := off; i < off+n; i++ {
				owner[i] = 0
			}
			continue
		}
		n := 1 + int(op)*size/512
		off, err := a.Alloc(n)
		if err != nil {
			require.ErrorIs(t, err, full)
			continue
		}
		placed(owner, n, off)
		for i := off; i < off+n; i++ {
			require.Zero(t, owner[i], "slot %d given twice", i)
			owner[i] = off + 1
		}
		live = append(live, [2]int{off, n})
		require.NoError(t, a.Check())
	}
	require.NoError(t, a.Check())
}
