package fleet_test

import (
	"fmt"
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
	// memory+pending: the same lookup completed by a Pending record in
	// which server 0 (8 blocks indexed) has a claim on the other 56 and
	// servers 1-3 on a further 8 each: Extend walks 56+3x8 claims.
	b.Run("memory+pending", func(b *testing.B) {
		x, req := fleettest.BenchFleet(b, memoryBackend(b))
		p, err := fleet.NewPending(fleet.PendingConfig{Capacity: 1 << 12})
		if err != nil {
			b.Fatal(err)
		}
		var sc []fleet.Score
		if sc, err = x.Lookup(req, sc[:0]); err != nil {
			b.Fatal(err)
		}
		for _, s := range sc[:4] {
			end := min(s.Blocks+8, 64)
			if s.Server == sc[0].Server {
				end = 64
			}
			if err := p.Add(s.Server, req[s.Blocks:end]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if sc, err = x.Lookup(req, sc[:0]); err != nil {
				b.Fatal(err)
			}
			p.Extend(req, sc)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		if sc[0].Blocks != 64 || sc[0].Pending != 56 || sc[3].Blocks != 40 {
			b.Fatalf("scores %+v", sc[:4])
		}
	})
	// memory+layouts: the same fleet, every server a hybrid one (full
	// attention, a 128-token window, a state at 16 tokens a block)
	// holding the window blocks and a checkpoint at the end of its
	// prefix: three rows of 64 keys, a fixed point per server.
	b.Run("memory+layouts", func(b *testing.B) {
		x, req := fleettest.BenchFleet(b, memoryBackend(b))
		l := fleet.Layout{BlockSize: 16, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 128}, {Kind: paged.State}}}
		for s := range 8 {
			name := fmt.Sprint("s", s)
			if err := x.SetLayout(name, l); err != nil {
				b.Fatal(err)
			}
			n := 8 * (s + 1)
			ev := []paged.Event{
				{Seq: 2, Kind: paged.BlockStored, Hashes: req[:n], Group: 1},
				{Seq: 3, Kind: paged.BlockStored, Hashes: req[n-1 : n], Group: 2},
			}
			if err := x.Apply(name, ev); err != nil {
				b.Fatal(err)
			}
		}
		sc := fleettest.LoopLookup(b, x, req)
		if sc[7].Blocks != 64 || sc[0].Blocks != 8 {
			b.Fatalf("scores %+v", sc)
		}
	})
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

// BenchmarkRoute routes among 8 hybrid servers whose Affinity exceeds
// their exact hit, with the affinity gain and without it (IgnoreAffinity):
// the gain costs one more pass over the candidates.
func BenchmarkRoute(b *testing.B) {
	cands := make([]fleet.Candidate, 8)
	for i := range cands {
		cands[i] = fleet.Candidate{Score: fleet.Score{Blocks: i % 3, Device: i % 3, Value: float64(i % 3), Affinity: 2 * i},
			Load: float64(i % 4), Work: float64(100 * i), Prompt: 64 * 16}
	}
	for _, r := range []struct {
		name string
		r    fleet.Router
	}{
		{"prefix-aware", fleet.PrefixAware{}},
		{"prefix-aware/exact", fleet.PrefixAware{IgnoreAffinity: true}},
		{"cost-aware", fleet.CostAware{BlockSize: 16}},
		{"cost-aware/exact", fleet.CostAware{BlockSize: 16, IgnoreAffinity: true}},
	} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = r.r.Route(cands)
			}
		})
	}
}
