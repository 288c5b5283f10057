package kvevents

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// benchBatch is 64 one-block BlockStored events of 16 tokens with 32-byte
// hashes, the shape of a prefill committing 64 blocks.
func benchBatch() []paged.Event {
	events := make([]paged.Event, 64)
	tokens := make([]int32, 16)
	for i := range events {
		var h paged.Hash
		h[0], h[1] = byte(i), 0xab
		events[i] = paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{h}, Tokens: tokens, BlockSize: 16, HasParent: i > 0}
	}
	return events
}

// BenchmarkCodec: encoding and decoding one batch, per layout; events/s
// counts the batch's events.
func BenchmarkCodec(b *testing.B) {
	events := benchBatch()
	for _, layout := range []struct {
		name string
		l    Layout
	}{{"array", ArrayLayout}, {"map", MapLayout}} {
		e, err := NewEncoder(EncoderConfig{Layout: layout.l})
		if err != nil {
			b.Fatal(err)
		}
		frame, err := e.AppendBatch(nil, 1, events)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("encode/"+layout.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := frame[:0]
			for b.Loop() {
				buf, _ = e.AppendBatch(buf[:0], 1, events)
			}
			b.ReportMetric(float64(len(events)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run("decode/"+layout.name, func(b *testing.B) {
			b.ReportAllocs()
			var batch Batch
			for b.Loop() {
				if err := batch.Decode(frame); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(events)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
