package fleet

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// benchFleet is 8 servers, each holding a different-length prefix of a
// 64-block request on the device (server s holds 8(s+1) blocks).
func benchFleet(b *testing.B, backend Backend) (*Index, []paged.Hash) {
	x, err := New(Config{Backend: backend, Model: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	req := make([]paged.Hash, 64)
	for i := range req {
		req[i] = h(i)
	}
	for s := range 8 {
		ev := []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: req[:8*(s+1)]}}
		if err := x.Apply(fmt.Sprint("s", s), ev); err != nil {
			b.Fatal(err)
		}
	}
	return x, req
}

// benchApply measures block-event applications: each op applies a batch
// of 8 events of 16 blocks, alternately storing and removing the same
// 128 blocks (steady state: entries come and go).
func benchApply(b *testing.B, backend Backend) {
	x, _ := benchFleet(b, backend)
	blocks := make([]paged.Hash, 128)
	for i := range blocks {
		blocks[i] = h(1000 + i)
	}
	evs := make([]paged.Event, 8)
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		kind := paged.BlockStored
		if seq/8%2 == 1 {
			kind = paged.BlockRemoved
		}
		for i := range evs {
			seq++
			evs[i] = paged.Event{Seq: seq, Kind: kind, Hashes: blocks[16*i : 16*(i+1)]}
		}
		if err := x.Apply("writer", evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*128/b.Elapsed().Seconds(), "blocks/s")
}

// benchLookup measures lookups of one 64-block request over 8 servers.
func benchLookup(b *testing.B, backend Backend) {
	x, req := benchFleet(b, backend)
	var sc []Score
	var err error
	b.ReportAllocs()
	for b.Loop() {
		if sc, err = x.Lookup(req, sc[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	if sc[7].Blocks != 64 {
		b.Fatalf("server 7 scored %d blocks, want 64", sc[7].Blocks)
	}
}

func memoryBackend(b *testing.B) Backend {
	m, err := NewMemory(MemoryConfig{Capacity: 1 << 12})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkApply(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchApply(b, memoryBackend(b)) })
}

func BenchmarkLookup64(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchLookup(b, memoryBackend(b)) })
	// probe: the 64 holder-set reads alone from a Go map keyed by hash,
	// the least any index must do; a ratio to it is steadier than
	// lookups/s on a shared machine.
	b.Run("probe-gomap", func(b *testing.B) {
		_, req := benchFleet(b, memoryBackend(b))
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
