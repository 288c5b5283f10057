package bench_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/bench"
)

func TestBeladyOrder(t *testing.T) {
	p := bench.NewBelady(8)
	p.SetNext(1, 10, 0)
	p.SetNext(2, math.MaxInt32, 0) // never used again: first to go
	p.SetNext(3, 10, 2)            // same next use as 1 but deeper
	p.SetNext(4, 5, 0)
	p.SetNext(5, 10, 2) // ties with 3: higher ID first
	for _, id := range []allocator.BlockID{1, 2, 3, 4, 5} {
		p.Insert(id)
	}
	assert.Equal(t, 5, p.Len())
	assert.True(t, p.Contains(3))
	p.Remove(3)
	assert.False(t, p.Contains(3))
	var got []allocator.BlockID
	for {
		id, ok := p.Victim()
		if !ok {
			break
		}
		got = append(got, id)
	}
	assert.Equal(t, []allocator.BlockID{2, 5, 1, 4}, got)
	assert.Zero(t, p.Len())
}

// TestBeladyMatchesSort checks the heap against sorting under random
// inserts, removals and victims.
func TestBeladyMatchesSort(t *testing.T) {
	const n = 200
	rng := rand.New(rand.NewPCG(1, 2))
	p := bench.NewBelady(n)
	next := make([]int32, n)
	depth := make([]int32, n)
	in := map[allocator.BlockID]bool{}
	worst := func() allocator.BlockID {
		ids := make([]allocator.BlockID, 0, len(in))
		for id := range in {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b allocator.BlockID) int {
			switch {
			case next[a] != next[b]:
				return int(next[b] - next[a])
			case depth[a] != depth[b]:
				return int(depth[b] - depth[a])
			}
			return int(b - a)
		})
		return ids[0]
	}
	for range 5000 {
		id := allocator.BlockID(rng.IntN(n))
		switch {
		case !in[id]:
			next[id], depth[id] = int32(rng.IntN(50)), int32(rng.IntN(4))
			p.SetNext(id, next[id], depth[id])
			p.Insert(id)
			in[id] = true
		case rng.IntN(2) == 0:
			p.Remove(id)
			delete(in, id)
		default:
			want := worst()
			got, ok := p.Victim()
			require.True(t, ok)
			require.Equal(t, want, got)
			delete(in, got)
		}
		require.Equal(t, len(in), p.Len())
	}
}

func TestBeladyMisusePanics(t *testing.T) {
	p := bench.NewBelady(4)
	p.Insert(1)
	assert.PanicsWithValue(t, "bench: Belady.Insert of block 1: already in the policy", func() { p.Insert(1) })
	assert.PanicsWithValue(t, "bench: Belady.SetNext of block 1 while it is evictable", func() { p.SetNext(1, 0, 0) })
	assert.PanicsWithValue(t, "bench: Belady.Remove of block 2: not in the policy", func() { p.Remove(2) })
	_, ok := bench.NewBelady(1).Victim()
	assert.False(t, ok)
}

func TestBeladyAllocatesNothing(t *testing.T) {
	p := bench.NewBelady(64)
	allocs := testing.AllocsPerRun(100, func() {
		for id := range allocator.BlockID(64) {
			p.SetNext(id, int32(id*7%13), 0)
			p.Insert(id)
		}
		p.Remove(5)
		for p.Len() > 0 {
			p.Victim()
		}
	})
	assert.Zero(t, allocs)
}
