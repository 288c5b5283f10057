package zmq

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

const benchPerBatch, benchInFlight = 64, 16

// benchEvents is one batch as a manager drains it after admitting 64
// prompts of 17 tokens: 64 one-block BlockStored events of 16 tokens with
// SHA-256 hashes, the shape of a prefill burst.
func benchEvents(b *testing.B) []paged.Event {
	m, err := paged.New(paged.Config{NumBlocks: 256, BlockSize: 16, Events: 256})
	if err != nil {
		b.Fatal(err)
	}
	prompt := make([]int32, 17)
	for i := range benchPerBatch {
		prompt[0] = int32(i)
		if _, _, err := m.Create(prompt, nil); err != nil {
			b.Fatal(err)
		}
	}
	events := m.DrainEvents(nil)
	if len(events) != benchPerBatch {
		b.Fatalf("%d events", len(events))
	}
	return events
}

// BenchmarkPublishDecode: "codec" publishes batches with a Publisher over
// loopback TCP and a Subscriber receives and decodes them with a
// kvevents.Stream, 16 batches in flight per iteration; events/s is the
// end-to-end rate the target (>= 200K/s) refers to and
// decode-ns/batch the part spent decoding. "probe" sends the same frames
// through bare zmq4 PUB/SUB sockets with neither encoding nor decoding:
// codec's events/s over probe's, in the same run, is the share of the
// transport's rate the wire code keeps.
func BenchmarkPublishDecode(b *testing.B) {
	events := benchEvents(b)
	b.Run("codec", func(b *testing.B) {
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
		var stream kvevents.Stream
		var decoding time.Duration
		b.ReportAllocs()
		start, n := time.Now(), 0
		for b.Loop() {
			for range benchInFlight {
				if _, err := p.PublishAt(1, events); err != nil {
					b.Fatal(err)
				}
			}
			for range benchInFlight {
				m, err := s.Next(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				evs, err := stream.Decode(m.Seq, m.Payload)
				decoding += time.Since(t0)
				if err != nil || len(evs) != benchPerBatch {
					b.Fatalf("batch %d: %d events, %v", m.Seq, len(evs), err)
				}
				n += len(evs)
			}
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		b.ReportMetric(float64(decoding.Nanoseconds())/float64(n/benchPerBatch), "decode-ns/batch")
		if st := s.Stats(); st.Gaps != 0 || st.Replayed != 0 {
			b.Fatalf("loopback lost batches: %+v", st)
		}
	})
	b.Run("probe", func(b *testing.B) {
		enc, err := kvevents.NewEncoder(kvevents.EncoderConfig{})
		if err != nil {
			b.Fatal(err)
		}
		payload, err := enc.AppendBatch(nil, 1, events)
		if err != nil {
			b.Fatal(err)
		}
		pub := zmq4.NewPub(context.Background())
		defer pub.Close()
		if err := pub.Listen(loopback); err != nil {
			b.Fatal(err)
		}
		sub := zmq4.NewSub(context.Background())
		defer sub.Close()
		if err := sub.Dial("tcp://" + pub.Addr().String()); err != nil {
			b.Fatal(err)
		}
		if err := sub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
			b.Fatal(err)
		}
		for len(pub.(zmq4.Topics).Topics()) == 0 {
			time.Sleep(time.Millisecond)
		}
		b.ReportAllocs()
		start, n, seq := time.Now(), 0, uint64(0)
		for b.Loop() {
			for range benchInFlight {
				frame := binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
				seq++
				if err := pub.Send(zmq4.NewMsgFrom(nil, frame, payload)); err != nil {
					b.Fatal(err)
				}
			}
			for range benchInFlight {
				if _, err := sub.Recv(); err != nil {
					b.Fatal(err)
				}
				n += benchPerBatch
			}
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	})
}
