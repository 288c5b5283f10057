package allocator_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestCountCached: CountCached agrees with IsCached over every range of a
// pool whose blocks are free, held, shared, cached and reserved (none, one
// or three), and panics, as IsCached does, on a range outside the pool.
func TestCountCached(t *testing.T) {
	for _, reserved := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("reserved=%d", reserved), func(t *testing.T) { checkCountCached(t, reserved) })
	}
}

func checkCountCached(t *testing.T, reserved int) {
	const total = 41
	p, err := allocator.New(allocator.Config{NumBlocks: total, Reserved: reserved})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, uint64(reserved)))
	var held []allocator.BlockID
	for range 30 {
		id, err := p.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	for _, id := range held {
		switch r.IntN(4) {
		case 0:
			p.ReleaseToCache(id)
		case 1:
			p.Ref(id) // shared
		case 2:
			p.Release(id)
		}
	}
	cached := 0
	for from := range total + 1 {
		for n := range total - from + 1 {
			want := 0
			for id := from; id < from+n; id++ {
				if p.IsCached(allocator.BlockID(id)) {
					want++
				}
			}
			if got := p.CountCached(allocator.BlockID(from), n); got != want {
				t.Fatalf("CountCached(%d, %d) = %d, IsCached counts %d", from, n, got, want)
			}
			if from == 0 && n == total {
				cached = want
			}
		}
	}
	if cached < 3 || cached > total-10 {
		t.Fatalf("%d of %d blocks cached: the states are not mixed", cached, total)
	}
	for _, c := range []struct {
		id allocator.BlockID
		n  int
	}{{-1, 1}, {0, total + 1}, {total, 1}, {total - 3, 4}, {5, -1}, {allocator.NoBlock, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("CountCached(%d, %d) did not panic", c.id, c.n)
				}
			}()
			p.CountCached(c.id, c.n)
		}()
	}
}
