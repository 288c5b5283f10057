package allocator_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10NoAllocs: the operations TestNoAllocations leaves out (Evict,
// the Try forms, the read-only accessors, Stats, and the refusals), in both
// orders, allocate nothing.
func TestAudit10NoAllocs(t *testing.T) {
	for _, order := range []allocator.Order{allocator.LIFO, allocator.FIFO} {
		p, err := allocator.New(allocator.Config{NumBlocks: 64, Reserved: 1, Order: order})
		if err != nil {
			t.Fatal(err)
		}
		var sink int
		a := testing.AllocsPerRun(1000, func() {
			id, _ := p.Alloc()
			p.TryRef(id)
			p.TryReleaseToCache(id)
			p.TryReleaseToCache(id)
			sink += p.CountCached(0, 64) + int(p.RefCount(id))
			if p.IsCached(id) && !p.IsFree(id) && p.Valid(id) {
				p.TryClaim(id)
				p.Release(id)
			}
			id, _ = p.Alloc()
			p.ReleaseToCache(id)
			p.Evict(id)
			// Refusals: no error is built for them either.
			p.TryRef(id)
			p.TryClaim(id)
			p.TryReleaseToCache(allocator.NoBlock)
			sink += p.Stats().Free
		})
		if a != 0 {
			t.Errorf("order %d: %v allocations per run", order, a)
		}
	}
}
