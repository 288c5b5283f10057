package allocator_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/internal/probe"
)

func BenchmarkAllocRelease(b *testing.B) {
	p, err := allocator.New(allocator.Config{NumBlocks: 8192, Reserved: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		id, _ := p.Alloc()
		p.Release(id)
	}
	// The same figure over one 96-byte SHA-256 measured now, comparable
	// across machines (see internal/probe).
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/probe.SHA256(), "x-sha256")
}

func BenchmarkAppendAlloc16(b *testing.B) {
	p, err := allocator.New(allocator.Config{NumBlocks: 8192, Reserved: 1})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]allocator.BlockID, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = p.AppendAlloc(buf[:0], 16)
		for _, id := range buf {
			p.Release(id)
		}
	}
}
