package zmq

import (
	"context"
	"encoding/binary"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

const loopback = "tcp://127.0.0.1:0"

// noLeaks fails the test if goroutines started during it outlive it.
// zmq4 v0.17.0's PUB socket never stops its writer goroutine (Close does
// not signal it); those are the library's, one per PUB socket, and are not
// counted. Any other survivor is ours.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		buf := make([]byte, 1<<20)
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			stacks := string(buf[:runtime.Stack(buf, true)])
			leaked := n - before - strings.Count(stacks, "zmq4.(*pubMWriter).run(")
			if leaked <= 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines leaked:\n%s", leaked, stacks)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair starts a publisher with replay and a subscriber on loopback, the
// subscription established.
func pair(t *testing.T, pcfg PublisherConfig, scfg SubscriberConfig) (*Publisher, *Subscriber) {
	t.Helper()
	pcfg.Endpoint, pcfg.ReplayEndpoint = loopback, loopback
	p, err := NewPublisher(pcfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	scfg.Endpoint, scfg.ReplayEndpoint = p.Endpoint(), p.ReplayEndpoint()
	s, err := NewSubscriber(scfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	require.NoError(t, p.AwaitSubscriber(ctxFor(t)))
	return p, s
}

// stored is a batch of n one-block BlockStored events with int hashes
// from h, numbered from seq.
func stored(seq uint64, h, n int) []paged.Event {
	evs := make([]paged.Event, n)
	for i := range evs {
		evs[i] = paged.Event{Seq: seq + uint64(i), Kind: paged.BlockStored, Hashes: []paged.Hash{kvevents.HashFromInt(uint64(h + i))},
			Tokens: []int32{int32(h + i), 7}, BlockSize: 2}
	}
	return evs
}

// awaitTopic waits until a subscription to topic reached the publisher.
func awaitTopic(t *testing.T, p *Publisher, topic string) {
	t.Helper()
	ctx := ctxFor(t)
	for !slices.Contains(p.pub.(zmq4.Topics).Topics(), topic) {
		require.NoError(t, ctx.Err())
		time.Sleep(2 * time.Millisecond)
	}
}

func next(t *testing.T, s *Subscriber) Message {
	t.Helper()
	m, err := s.Next(ctxFor(t))
	require.NoError(t, err)
	return m
}

func TestRoundTripFromAPagedManager(t *testing.T) {
	noLeaks(t)
	p, s := pair(t, PublisherConfig{Topic: "kv@pod-0", Encoder: kvevents.EncoderConfig{Hashes: kvevents.HashBytes}}, SubscriberConfig{Topic: "kv@"})
	m, err := paged.New(paged.Config{NumBlocks: 4, BlockSize: 2, Events: 64})
	require.NoError(t, err)
	var sent [][]paged.Event
	for i := range 6 {
		a, _, err := m.Create([]int32{int32(i), 1, 2, 3, 4}, nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(a))
		evs := m.DrainEvents(nil)
		require.NotEmpty(t, evs)
		seq, err := p.Publish(evs)
		for j := range evs { // the manager reuses its event arena
			evs[j].Hashes = slices.Clone(evs[j].Hashes)
		}
		sent = append(sent, evs)
		require.NoError(t, err)
		assert.Equal(t, uint64(i), seq)
	}
	var stream kvevents.Stream
	for i, want := range sent {
		msg := next(t, s)
		assert.Equal(t, uint64(i), msg.Seq)
		assert.Equal(t, "kv@pod-0", string(msg.Topic))
		assert.False(t, msg.Replayed)
		got, err := stream.Decode(msg.Seq, msg.Payload)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for j := range want {
			assert.Equal(t, want[j].Kind, got[j].Kind)
			assert.Equal(t, want[j].Hashes, got[j].Hashes)
			assert.Equal(t, want[j].Seq, got[j].Seq, "the manager's numbering survives the trip")
		}
	}
	assert.Equal(t, SubscriberStats{Live: 6}, s.Stats())
}

func TestDroppedBatchIsReplayed(t *testing.T) {
	noLeaks(t)
	p, s := pair(t, PublisherConfig{}, SubscriberConfig{})
	p.mu.Lock()
	p.drop = func(seq uint64) bool { return seq == 2 || seq == 3 }
	p.mu.Unlock()
	for i := range 6 {
		_, err := p.Publish(stored(uint64(1+2*i), 10*i, 2))
		require.NoError(t, err)
	}
	for i := range 6 {
		msg := next(t, s)
		assert.Equal(t, uint64(i), msg.Seq)
		assert.Equal(t, i == 2 || i == 3, msg.Replayed, "batch %d", i)
	}
	assert.Equal(t, SubscriberStats{Live: 4, Replayed: 2}, s.Stats())
}

func TestLateSubscriberCatchesUp(t *testing.T) {
	noLeaks(t)
	// An early subscriber receiving batches 0..4 proves they left the PUB
	// socket's queue before the late one connects.
	p, early := pair(t, PublisherConfig{Buffer: 3, Topic: "kv"}, SubscriberConfig{})
	for i := range 5 {
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
	}
	for range 5 {
		next(t, early)
	}
	// A topic of its own lets the test see the late subscription arrive.
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint(), CatchUp: true, Topic: "k"})
	require.NoError(t, err)
	defer s.Close()
	awaitTopic(t, p, "k")
	_, err = p.Publish(stored(6, 5, 1))
	require.NoError(t, err)
	// The buffer holds the last three batches, 3..5; 0..2 are gone for
	// good, a gap before the first batch delivered.
	for _, want := range []uint64{3, 4, 5} {
		msg := next(t, s)
		assert.Equal(t, want, msg.Seq)
		assert.Equal(t, want != 5, msg.Replayed)
	}
	assert.Equal(t, SubscriberStats{Live: 1, Replayed: 2, Gaps: 1}, s.Stats())
}

func TestEventsDroppedAtTheSourceStayAGap(t *testing.T) {
	noLeaks(t)
	p, s := pair(t, PublisherConfig{}, SubscriberConfig{})
	_, err := p.Publish(stored(1, 0, 2))
	require.NoError(t, err)
	seq, err := p.Publish(stored(5, 2, 1)) // events 3 and 4 were dropped
	require.NoError(t, err)
	assert.Equal(t, uint64(2), seq, "a batch number is skipped for the lost events")

	got := followSeqs(t, s, 3)
	assert.Equal(t, []uint64{1, 2, 4}, got, "the follower's numbering shows the loss")
	assert.Equal(t, uint64(1), s.Stats().Gaps)
}

// TestFollowsVLLMFraming feeds the subscriber from bare ZeroMQ sockets
// that frame messages as vLLM's ZmqEventPublisher does, replay included, so
// the test does not depend on this package's publisher agreeing with its
// subscriber.
func TestFollowsVLLMFraming(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv-events")
	pub, router, frame := v.pub, v.router, v.frame
	served := make(chan []byte, 1)
	go func() {
		req, err := router.Recv()
		if err != nil {
			return
		}
		served <- req.Frames[2]
		f := frame(1)
		_ = router.Send(zmq4.NewMsgFrom(req.Frames[0], nil, f[1], f[2]))
		_ = router.Send(zmq4.NewMsgFrom(req.Frames[0], nil, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, nil))
	}()
	s := v.subscribe()
	require.NoError(t, pub.Send(zmq4.NewMsgFrom(frame(0)...)))
	require.NoError(t, pub.Send(zmq4.NewMsgFrom(frame(2)...))) // batch 1 lost
	for want := range uint64(3) {
		msg := next(t, s)
		assert.Equal(t, want, msg.Seq)
	}
	assert.Equal(t, binary.BigEndian.AppendUint64(nil, 1), <-served, "the request names the first missing batch")
}

// vllmPeer is an engine's side made of bare ZeroMQ sockets that frame
// messages as vLLM's ZmqEventPublisher does: a PUB socket and a ROUTER
// replay socket on loopback, closed with the test.
type vllmPeer struct {
	t      *testing.T
	topic  string
	pub    zmq4.Socket
	router zmq4.Socket
	enc    *kvevents.Encoder
}

func newVLLMPeer(t *testing.T, topic string) *vllmPeer {
	t.Helper()
	v := &vllmPeer{t: t, topic: topic, pub: zmq4.NewPub(context.Background()), router: zmq4.NewRouter(context.Background())}
	t.Cleanup(func() { v.router.Close(); v.pub.Close() })
	require.NoError(t, v.pub.Listen(loopback))
	require.NoError(t, v.router.Listen(loopback))
	var err error
	v.enc, err = kvevents.NewEncoder(kvevents.EncoderConfig{Hashes: kvevents.HashInt})
	require.NoError(t, err)
	return v
}

// frame is the message of batch seq: topic, sequence frame, payload (one
// BlockStored, event seq+1).
func (v *vllmPeer) frame(seq uint64) [][]byte {
	payload, err := v.enc.AppendBatch(nil, 1, stored(seq+1, int(seq), 1))
	require.NoError(v.t, err)
	return [][]byte{[]byte(v.topic), binary.BigEndian.AppendUint64(nil, seq), payload}
}

// subscribe returns a Subscriber of both sockets, closed with the test,
// once its subscription reached the PUB socket.
func (v *vllmPeer) subscribe() *Subscriber {
	v.t.Helper()
	s, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + v.pub.Addr().String(), ReplayEndpoint: "tcp://" + v.router.Addr().String(), Topic: v.topic})
	require.NoError(v.t, err)
	v.t.Cleanup(func() { s.Close() })
	ctx := ctxFor(v.t)
	for len(v.pub.(zmq4.Topics).Topics()) == 0 {
		require.NoError(v.t, ctx.Err())
		time.Sleep(2 * time.Millisecond)
	}
	return s
}

func TestConfigErrors(t *testing.T) {
	_, err := NewPublisher(PublisherConfig{})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewPublisher(PublisherConfig{Endpoint: loopback, Buffer: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewPublisher(PublisherConfig{Endpoint: loopback, HWM: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewPublisher(PublisherConfig{Endpoint: loopback, Encoder: kvevents.EncoderConfig{Layout: 9}})
	require.ErrorIs(t, err, kvevents.ErrInvalid)
	_, err = NewPublisher(PublisherConfig{Endpoint: "bogus://x"})
	require.Error(t, err)
	_, err = NewSubscriber(SubscriberConfig{})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewSubscriber(SubscriberConfig{Endpoint: loopback, CatchUp: true})
	require.ErrorIs(t, err, ErrInvalid)

	p, err := NewPublisher(PublisherConfig{Endpoint: loopback})
	require.NoError(t, err)
	_, err = p.Publish([]paged.Event{{Kind: 42, Hashes: make([]paged.Hash, 1)}})
	require.ErrorIs(t, err, kvevents.ErrInvalid)
	require.NoError(t, p.Close())
	_, err = p.Publish(stored(1, 0, 1))
	require.ErrorIs(t, err, ErrClosed)
	assert.Empty(t, p.ReplayEndpoint())
}

// restartable starts a publisher (no replay) on loopback and a
// subscriber of it, closed with the test, the subscription established.
// restart closes the publisher and starts another on the same endpoint,
// as an engine restarting does, and returns it once the subscriber
// redialed it.
func restartable(t *testing.T) (*Publisher, *Subscriber, func() *Publisher) {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback})
	require.NoError(t, err)
	endpoint := p.Endpoint()
	s, err := NewSubscriber(SubscriberConfig{Endpoint: endpoint})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, p.AwaitSubscriber(ctxFor(t)))
	restart := func() *Publisher {
		require.NoError(t, p.Close())
		p2, err := NewPublisher(PublisherConfig{Endpoint: endpoint})
		require.NoError(t, err)
		t.Cleanup(func() { p2.Close() })
		require.NoError(t, p2.AwaitSubscriber(ctxFor(t)))
		return p2
	}
	return p, s, restart
}

// TestPublisherRestart: an engine restarting on the same address starts
// its numbering over; the subscriber redials, flags the restart, and the
// follower's event numbers show a gap so an index forgets the old cache.
func TestPublisherRestart(t *testing.T) {
	noLeaks(t)
	p, s, restart := restartable(t)
	for i := range 3 {
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
	}
	var stream kvevents.Stream
	var seqs []uint64
	follow := func() Message {
		m := next(t, s)
		if m.Restarted {
			stream.Restart()
		}
		evs, err := stream.Decode(m.Seq, m.Payload)
		require.NoError(t, err)
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		return m
	}
	for range 3 {
		assert.False(t, follow().Restarted)
	}
	_, err := restart().Publish(stored(1, 10, 1))
	require.NoError(t, err)
	m := follow()
	assert.True(t, m.Restarted)
	assert.Equal(t, uint64(0), m.Seq)
	assert.Equal(t, []uint64{1, 2, 3, 5}, seqs, "a gap after the old engine's events")
	assert.Equal(t, uint64(1), s.Stats().Restarts)
}

// TestReplayOutlivesAClient: a subscriber that goes away does not stop the
// replay socket from serving the next one.
func TestReplayOutlivesAClient(t *testing.T) {
	noLeaks(t)
	p, first := pair(t, PublisherConfig{Topic: "kv"}, SubscriberConfig{})
	publishDroppingBatch1(t, p)
	for range 3 {
		next(t, first)
	}
	require.NoError(t, first.Close())

	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint(), CatchUp: true, Topic: "k"})
	require.NoError(t, err)
	defer s.Close()
	awaitTopic(t, p, "k")
	_, err = p.Publish(stored(4, 3, 1))
	require.NoError(t, err)
	for want := range uint64(4) {
		assert.Equal(t, want, next(t, s).Seq)
	}
	assert.Equal(t, SubscriberStats{Live: 1, Replayed: 3}, s.Stats())
}

// followSeqs runs Follow on s until it has delivered n events, and
// returns their Seq numbers in order.
func followSeqs(t *testing.T, s *Subscriber, n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	var got []uint64
	err := Follow(ctx, s, func(evs []paged.Event) error {
		for _, ev := range evs {
			got = append(got, ev.Seq)
		}
		if len(got) == n {
			cancel()
		}
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	return got
}

// publishDroppingBatch1 publishes batches 0, 1 and 2 (events 1, 2, 3),
// batch 1 kept for replay but not sent live: a subscriber sees a gap.
func publishDroppingBatch1(t *testing.T, p *Publisher) {
	t.Helper()
	p.mu.Lock()
	p.drop = func(seq uint64) bool { return seq == 1 }
	p.mu.Unlock()
	for i := range 3 {
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
	}
}
