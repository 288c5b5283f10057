package eviction

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestLRURingMatchesList drives the ring LRU with random inserts, removals
// and evictions against a plain ordered slice (the least recently
// released first), starting its position counters just below 2^32 so
// that they wrap within the run, with few blocks so that the ring fills
// and compacts often: every victim, Len, Contains and Ahead agree.
func TestLRURingMatchesList(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 12).Draw(t, "capacity")
		p := NewLRU(n).(*LRU)
		start := rapid.Uint32Range(1<<32-40, 1<<32-1).Draw(t, "start")
		p.head, p.tail = start, start
		var want []allocator.BlockID
		for range rapid.IntRange(0, 400).Draw(t, "ops") {
			id := allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "id"))
			held := slices.Contains(want, id)
			// Evictions are rarer than the rest, so that removals leave
			// stale entries faster than evictions drop them and the ring
			// fills.
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 5:
				if ok := p.TryInsert(id); ok == held {
					t.Fatalf("TryInsert(%d) = %v with %v held", id, ok, want)
				}
				if !held {
					want = append(want, id)
				}
			case op < 9:
				if ok := p.TryRemove(id); ok != held {
					t.Fatalf("TryRemove(%d) = %v with %v held", id, ok, want)
				}
				if held {
					want = slices.DeleteFunc(want, func(b allocator.BlockID) bool { return b == id })
				}
			default:
				got, ok := p.Victim()
				if ok != (len(want) > 0) || (ok && got != want[0]) {
					t.Fatalf("Victim() = %d, %v with %v held", got, ok, want)
				}
				if ok {
					want = want[1:]
				}
			}
			if p.Len() != len(want) || p.tail-p.head > p.mask+1 {
				t.Fatalf("Len %d, span %d, want %d held", p.Len(), p.tail-p.head, len(want))
			}
			for b := range allocator.BlockID(n) {
				if p.Contains(b) != slices.Contains(want, b) {
					t.Fatalf("Contains(%d) = %v with %v held", b, p.Contains(b), want)
				}
			}
			k := rapid.IntRange(0, n+1).Draw(t, "ahead")
			if got, w := p.Ahead(nil, k), want[:min(k, len(want))]; !slices.Equal(got, w) && len(w) > 0 {
				t.Fatalf("Ahead(%d) = %v, want %v", k, got, w)
			}
		}
	})
}
