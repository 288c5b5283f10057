package eviction

import "testing"

// BenchmarkPolicy runs the mixed steady-state workload of workload.step on
// a full pool of 16384 blocks: per op, one Victim, one Hint and Insert of
// new content, one prefix hit (Access, Remove, Insert) when the hit block
// is evictable, and one Advance.
func BenchmarkPolicy(b *testing.B) {
	for _, name := range Names() {
		f, err := ByName(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			w := newWorkload(f, 1<<14, 1)
			for range 1 << 15 {
				w.step()
			}
			b.ReportAllocs()
			for b.Loop() {
				w.step()
			}
		})
	}
}
