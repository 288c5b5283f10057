package probe_test

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/internal/probe"
)

func TestProbesArePositive(t *testing.T) {
	if s := probe.SHA256(); s <= 0 {
		t.Fatalf("SHA256 probe = %v ns", s)
	}
	if testing.Short() {
		t.Skip("MemoryWalk builds a 64 MiB buffer")
	}
	if w := probe.MemoryWalk(); w <= 0 {
		t.Fatalf("MemoryWalk probe = %v ns", w)
	}
}

// BenchmarkProbe reports both probes, so that a benchmark run records them
// beside the figures they normalise (compare with benchstat).
func BenchmarkProbe(b *testing.B) {
	for _, p := range []struct {
		name string
		fn   func() float64
	}{{"sha256-96B", probe.SHA256}, {"memwalk-64MiB", probe.MemoryWalk}} {
		b.Run(p.name, func(b *testing.B) {
			var ns float64
			for b.Loop() {
				ns = p.fn()
			}
			b.ReportMetric(ns, "probe-ns")
		})
	}
}

func ExampleSHA256() {
	ns := probe.SHA256()
	fmt.Println(ns > 0)
	// Output: true
}
