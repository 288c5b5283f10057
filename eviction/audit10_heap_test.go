package eviction

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10StampQueueAgainstModel: LeafLRU's queue by release time (a
// sorted list plus a heap for blocks that arrive out of order) against a
// plain set: min, len and membership after every push and remove, with
// stamps arriving in and out of order.
func TestAudit10StampQueueAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 64).Draw(t, "capacity")
		stamp := make([]uint64, n)
		for i := range stamp {
			stamp[i] = uint64(i)*4 + 1 // distinct
		}
		perm := rapid.Permutation(stamp).Draw(t, "stamps")
		copy(stamp, perm)
		q := stampQueue{newList(links(n, 1), n, n), newStampHeap(n, stamp)}
		in := make([]bool, n)
		for range rapid.IntRange(1, 300).Draw(t, "steps") {
			id := allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "id"))
			if in[id] {
				q.remove(id)
			} else {
				q.push(id)
			}
			in[id] = !in[id]
			want, count := allocator.NoBlock, 0
			for b := range allocator.BlockID(n) {
				if in[b] {
					count++
					if want < 0 || stamp[b] < stamp[want] {
						want = b
					}
				}
			}
			got, ok := q.min()
			if got != want || ok != (count > 0) || q.len() != count {
				t.Fatalf("min = %d, %v, len %d; model %d, len %d", got, ok, q.len(), want, count)
			}
			if err := q.h.check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
