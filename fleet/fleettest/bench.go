package fleettest

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// BenchFleet is the benchmarks' fleet on backend: 8 servers, each holding
// a different-length prefix of a 64-block request on the device (server s
// holds 8(s+1) blocks). It returns the index and the request.
func BenchFleet(b *testing.B, backend fleet.Backend) (*fleet.Index, []paged.Hash) {
	x, err := fleet.New(fleet.Config{Backend: backend, Model: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	req := make([]paged.Hash, 64)
	for i := range req {
		req[i] = H(i)
	}
	for s := range 8 {
		ev := []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: req[:8*(s+1)]}}
		if err := x.Apply(fmt.Sprint("s", s), ev); err != nil {
			b.Fatal(err)
		}
	}
	return x, req
}

// BenchLookup measures lookups of BenchFleet's 64-block request over its 8
// servers, reported as lookups/s.
func BenchLookup(b *testing.B, backend fleet.Backend) {
	x, req := BenchFleet(b, backend)
	sc := LoopLookup(b, x, req)
	if sc[7].Blocks != 64 {
		b.Fatalf("server 7 scored %d blocks, want 64", sc[7].Blocks)
	}
}

// BenchApply measures block-event applications on BenchFleet's index: each
// op applies a batch of 8 events of 16 blocks, alternately storing and
// removing the same 128 blocks (steady state: entries come and go),
// reported as blocks/s.
func BenchApply(b *testing.B, backend fleet.Backend) {
	x, _ := BenchFleet(b, backend)
	blocks := make([]paged.Hash, 128)
	for i := range blocks {
		blocks[i] = H(1000 + i)
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

// LoopLookup is a lookup benchmark's loop: x.Lookup(req) b.N times,
// reported as lookups/s; it returns the last scores.
func LoopLookup(b *testing.B, x *fleet.Index, req []paged.Hash) []fleet.Score {
	var sc []fleet.Score
	var err error
	b.ReportAllocs()
	for b.Loop() {
		if sc, err = x.Lookup(req, sc[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	return sc
}
