package llmd

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// BenchmarkKeys: keys of a 4,096-token prompt in blocks of 16, as a router
// computes them per request ("llmd" with cbor-fnv, "sha256_cbor" with
// vLLM's chain); "sha256" is paged's default hasher over the same blocks,
// the probe to read the llm-d keys' cost against.
func BenchmarkKeys(b *testing.B) {
	toks := tokens(4096)
	p, err := New(Config{BlockSize: 16, HashSeed: "s", Model: "m"})
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSHA256CBOR(Config{BlockSize: 16, HashSeed: "s"})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []struct {
		name string
		keys func(dst []uint64) []uint64
	}{
		{"llmd", func(dst []uint64) []uint64 { return p.AppendKeys(dst, 0, toks) }},
		{"sha256_cbor", func(dst []uint64) []uint64 { return s.AppendKeys(dst, toks) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]uint64, 0, 256)
			for b.Loop() {
				dst = k.keys(dst[:0])
			}
			b.ReportMetric(float64(len(toks)*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
	for _, h := range []struct {
		name string
		h    paged.Hasher
	}{{"llmd-hasher", p.Hasher()}, {"sha256", paged.NewSHA256Hasher()}} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var parent paged.Hash
				for k := 0; k+16 <= len(toks); k += 16 {
					parent = h.h.Sum(&parent, toks[k:k+16], nil)
				}
			}
			b.ReportMetric(float64(len(toks)*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
