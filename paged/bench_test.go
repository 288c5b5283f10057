package paged_test

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// BenchmarkDecodeStep: one engine step of 256 running sequences, each
// appending one token, then building the batch. Every 256 steps the
// sequences are truncated back to 100 tokens so the pool never fills; that
// cost is included. With caching, every 16th append fills a block that is
// hashed (SHA-256) and committed.
func BenchmarkDecodeStep(b *testing.B) {
	for _, caching := range []bool{false, true} {
		b.Run(fmt.Sprintf("seqs=256/caching=%v", caching), func(b *testing.B) {
			m, sched := decodeSetup(b, 256, 16, 256*40, !caching)
			var batch paged.Batch
			steps := 0
			b.ReportAllocs()
			for b.Loop() {
				for _, sc := range sched {
					if err := m.Append(sc.ID, int32(steps)); err != nil {
						b.Fatal(err)
					}
				}
				if err := m.BuildBatch(&batch, sched); err != nil {
					b.Fatal(err)
				}
				steps++
				if steps%256 == 0 {
					for _, sc := range sched {
						if err := m.Truncate(sc.ID, 100); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/256, "ns/token")
		})
	}
}

// BenchmarkForkCopyOnWrite: fork a sequence whose last block is partly
// full, write one token into the child (a copy-on-write), free the child.
func BenchmarkForkCopyOnWrite(b *testing.B) {
	m, err := paged.New(paged.Config{NumBlocks: 1024})
	if err != nil {
		b.Fatal(err)
	}
	parent, _, err := m.Create(seqOf(1, 1000), nil)
	if err != nil {
		b.Fatal(err)
	}
	var copies []paged.Copy
	b.ReportAllocs()
	for b.Loop() {
		child, err := m.Fork(parent)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Append(child, 7); err != nil {
			b.Fatal(err)
		}
		copies = m.TakeCopies(copies[:0])
		if err := m.Free(child); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPromptHashLookup: hash a 131,072-token prompt (8,192 blocks of
// 16) and look up its cached prefix, the work of admitting a long prompt.
// "cold": nothing is cached, the lookup stops at once; "warm": the whole
// prompt is cached and the lookup walks all 8,191 blocks it may hit.
func BenchmarkPromptHashLookup(b *testing.B) {
	prompt := seqOf(1, 131072)
	for _, warm := range []bool{false, true} {
		for _, h := range []struct {
			name   string
			hasher func() paged.Hasher
		}{{"sha256", func() paged.Hasher { return paged.NewSHA256Hasher() }}, {"fast", func() paged.Hasher { return paged.FastHasher{} }}} {
			b.Run(fmt.Sprintf("hash=%s/warm=%v", h.name, warm), func(b *testing.B) {
				m, err := paged.New(paged.Config{NumBlocks: 8193 * 2, Hasher: h.hasher()})
				if err != nil {
					b.Fatal(err)
				}
				if warm {
					id, _, err := m.Create(prompt, nil)
					if err != nil {
						b.Fatal(err)
					}
					if err := m.Free(id); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					id, err := m.Add(prompt, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := m.CanAdmit(id); err != nil {
						b.Fatal(err)
					}
					if err := m.Free(id); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(prompt)), "ns/token")
			})
		}
	}
}
