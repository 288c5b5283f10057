package fleet_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

func memoryBackend(b *testing.B) fleet.Backend {
	m, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: 1 << 12})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkApply(b *testing.B) {
	b.Run("memory", func(b *testing.B) { fleettest.BenchApply(b, memoryBackend(b)) })
}

func BenchmarkLookup64(b *testing.B) {
	b.Run("memory", func(b *testing.B) { fleettest.BenchLookup(b, memoryBackend(b)) })
	// probe: the 64 holder-set reads alone from a Go map keyed by hash,
	// the least any index must do; a ratio to it is steadier than
	// lookups/s on a shared machine.
	b.Run("probe-gomap", func(b *testing.B) {
		_, req := fleettest.BenchFleet(b, memoryBackend(b))
		m := make(map[paged.Hash][2]uint64, len(req))
		for i := range req {
			m[req[i]] = [2]uint64{uint64(i), 0}
		}
		var sink uint64
		b.ReportAllocs()
		for b.Loop() {
			for i := range req {
				sink += m[req[i]][0]
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		if sink == 0 {
			b.Fatal("no work")
		}
	})
}
