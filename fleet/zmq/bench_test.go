package zmq

import (
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// BenchmarkPublishDecode: a publisher sends batches of 64 one-block
// BlockStored events (16 tokens each, 32-byte hashes) over loopback TCP and
// a subscriber receives and decodes them, 16 batches in flight per
// iteration. events/s is the end-to-end rate the target (200K/s)
// refers to; decode-ns/batch is the part of it spent decoding, measured
// in the same run.
func BenchmarkPublishDecode(b *testing.B) {
	const perBatch, inFlight = 64, 16
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := p.AwaitSubscriber(b.Context()); err != nil {
		b.Fatal(err)
	}
	events := make([]paged.Event, perBatch)
	tokens := make([]int32, 16)
	for i := range events {
		var h paged.Hash
		h[0], h[1] = byte(i), 0xab
		events[i] = paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{h}, Tokens: tokens, BlockSize: 16, HasParent: i > 0}
	}
	var stream kvevents.Stream
	var decoding time.Duration
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		for range inFlight {
			if _, err := p.PublishAt(1, events); err != nil {
				b.Fatal(err)
			}
		}
		for range inFlight {
			m, err := s.Next(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			evs, err := stream.Decode(m.Seq, m.Payload)
			decoding += time.Since(t0)
			if err != nil || len(evs) != perBatch {
				b.Fatalf("batch %d: %d events, %v", m.Seq, len(evs), err)
			}
			n += len(evs)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(decoding.Nanoseconds())/float64(n/perBatch), "decode-ns/batch")
	if st := s.Stats(); st.Gaps != 0 || st.Replayed != 0 {
		b.Fatalf("loopback lost batches: %+v", st)
	}
}
