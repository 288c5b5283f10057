package zmq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// The Audit118 tests close the gaps the seventy-first mutation round found
// in zmq (docs/testing.md, "Mutation testing, seventy-first round").

// readReplay reads one answer of a replay socket from a bare DEALER
// socket, up to its end marker, checking vLLM's framing (empty, seq,
// payload) of every reply and the end marker's empty payload. It returns
// the batches' numbers and payloads.
func readReplay(t *testing.T, d zmq4.Socket) ([]uint64, [][]byte) {
	t.Helper()
	var seqs []uint64
	var payloads [][]byte
	for {
		msg := recvWithin(t, d)
		require.Len(t, msg.Frames, 3, "(empty, seq, payload)")
		assert.Empty(t, msg.Frames[0])
		require.Len(t, msg.Frames[1], 8)
		seq := binary.BigEndian.Uint64(msg.Frames[1])
		if seq == ^uint64(0) {
			assert.Empty(t, msg.Frames[2], "the end marker has no payload")
			return seqs, payloads
		}
		seqs = append(seqs, seq)
		payloads = append(payloads, msg.Frames[2])
	}
}

// TestAudit118ReplayEndpointKeepsItsScheme (M2991): a publisher whose PUB
// socket is on TCP and whose replay socket is on a Unix socket names each
// endpoint with its own scheme, and a subscriber dialing both gets a
// dropped batch replayed over the Unix socket.
func TestAudit118ReplayEndpointKeepsItsScheme(t *testing.T) {
	noLeaks(t)
	replayPath := filepath.Join(t.TempDir(), "replay.sock")
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: "ipc://" + replayPath})
	require.NoError(t, err)
	defer func() { assert.NoError(t, p.Close()) }()
	assert.True(t, strings.HasPrefix(p.Endpoint(), "tcp://127.0.0.1:"), p.Endpoint())
	assert.Equal(t, "ipc://"+replayPath, p.ReplayEndpoint())
	subscribeAndReplayBatch1(t, p)
}

// TestAudit118SizeHintBoundsTheEncoding (M3002): sizeHint, the capacity
// PublishAt encodes a batch into, bounds the encoded batch from above
// for the events it is documented for (hashes up to 34-byte bins, tokens,
// removals, a clear), so encoding allocates once: the payload is the
// slice PublishAt made, not a grown copy.
func TestAudit118SizeHintBoundsTheEncoding(t *testing.T) {
	many := make([]int32, 64)
	for i := range many {
		many[i] = 1 << 30 // 5 bytes each
	}
	batches := map[string][]paged.Event{
		"one stored":   stored(1, 0, 1),
		"many stored":  stored(1, 0, 40),
		"long blocks":  {{Seq: 1, Kind: paged.BlockStored, Hashes: []paged.Hash{kvevents.HashFromInt(1)}, Tokens: many, BlockSize: len(many)}},
		"two hashes":   {{Seq: 1, Kind: paged.BlockStored, Hashes: []paged.Hash{kvevents.HashFromInt(1), kvevents.HashFromInt(2)}, Tokens: many, BlockSize: len(many) / 2}},
		"removed":      {{Seq: 1, Kind: paged.BlockRemoved, Hashes: []paged.Hash{kvevents.HashFromInt(1), kvevents.HashFromInt(2), kvevents.HashFromInt(3)}}},
		"cleared":      {{Seq: 1, Kind: paged.AllBlocksCleared}},
		"stored, then": append(stored(1, 0, 3), paged.Event{Seq: 4, Kind: paged.BlockRemoved, Hashes: []paged.Hash{kvevents.HashFromInt(0)}}),
	}
	for _, hashes := range []kvevents.HashEncoding{kvevents.HashInt, kvevents.HashBytes} {
		enc, err := kvevents.NewEncoder(kvevents.EncoderConfig{Hashes: hashes})
		require.NoError(t, err)
		for name, evs := range batches {
			hint := sizeHint(evs)
			buf := make([]byte, 0, hint)
			payload, err := enc.AppendBatch(buf, 1.5e9, evs)
			require.NoError(t, err, name)
			assert.LessOrEqual(t, len(payload), hint, "%s, hashes %v", name, hashes)
			assert.Equal(t, hint, cap(payload), "%s, hashes %v: encoded in place", name, hashes)
		}
	}
}

// TestAudit118ReplayIgnoresFourFrameRequests (M3003): a replay request
// of more than vLLM's three frames (identity, empty, start) is ignored,
// as vLLM ignores it, even when its third frame is 8 bytes; the next
// well-formed request gets its own answer.
func TestAudit118ReplayIgnoresFourFrameRequests(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback})
	require.NoError(t, err)
	defer func() { assert.NoError(t, p.Close()) }()
	for i := range 3 {
		_, err := p.Publish(stored(uint64(1+i), 100+i, 1))
		require.NoError(t, err)
	}
	d := zmq4.NewDealer(context.Background())
	defer d.Close()
	require.NoError(t, d.Dial(p.ReplayEndpoint()))
	zero, two := binary.BigEndian.AppendUint64(nil, 0), binary.BigEndian.AppendUint64(nil, 2)
	require.NoError(t, d.Send(zmq4.NewMsgFrom(nil, zero, two))) // four frames at the ROUTER
	require.NoError(t, d.Send(zmq4.NewMsgFrom(nil, two)))
	seqs, payloads := readReplay(t, d)
	require.Equal(t, []uint64{2}, seqs, "the first answer is the well-formed request's")
	assert.Equal(t, kvevents.HashFromInt(102), decodeHash(t, payloads[0]))
}

// goroutinesIn counts the goroutines whose stacks run fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn+"(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestAudit118CloseWaitsForItsGoroutines (M3006, M3024): Close returns
// once the goroutines it stops are gone, as it says: the publisher's
// replay server and the subscriber's two pumps, with a request answered
// and batches read just before.
func TestAudit118CloseWaitsForItsGoroutines(t *testing.T) {
	noLeaks(t)
	// One P: a goroutine that closing the sockets woke, and that Close
	// did not wait for, has not run yet when Close returns, so a Close
	// that does not wait is seen every time, not by the scheduler's luck.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range 3 {
		p, s := pair(t, PublisherConfig{}, SubscriberConfig{ReplayTimeout: noEnd})
		publishDroppingBatch1(t, p)
		for range 3 {
			next(t, s)
		}
		require.NoError(t, s.Close())
		assert.Zero(t, goroutinesIn("zmq.(*Subscriber).pump"), "the pumps are gone when Close returns")
		require.NoError(t, p.Close())
		assert.Zero(t, goroutinesIn("zmq.(*Publisher).serveReplay"), "the replay server is gone when Close returns")
	}
}

// failingSocket is a socket whose Close fails with err.
type failingSocket struct {
	zmq4.Socket
	err    error
	closed int
}

func (f *failingSocket) Close() error { f.closed++; return f.err }

// TestAudit118CloseReportsTheFirstSocketError (M3007, M3008): Close
// closes both sockets and returns the first error, the PUB socket's
// before the replay socket's; a connection its peer closed first
// (net.ErrClosed, however wrapped) is no error.
func TestAudit118CloseReportsTheFirstSocketError(t *testing.T) {
	errPub, errReplay := errors.New("pub"), io.ErrUnexpectedEOF
	peerClosed := fmt.Errorf("write: %w", net.ErrClosed)
	for _, tc := range []struct {
		pub, replay error
		want        error
	}{
		{errPub, errReplay, errPub},
		{nil, errReplay, errReplay},
		{errPub, nil, errPub},
		{peerClosed, errReplay, errReplay},
		{errPub, peerClosed, errPub},
		{peerClosed, peerClosed, nil},
		{nil, nil, nil},
	} {
		pub, replay := &failingSocket{err: tc.pub}, &failingSocket{err: tc.replay}
		p := &Publisher{pub: pub, replay: replay, done: make(chan struct{})}
		err := p.Close()
		if tc.want == nil {
			assert.NoError(t, err, "%v, %v", tc.pub, tc.replay)
		} else {
			assert.ErrorIs(t, err, tc.want, "%v, %v", tc.pub, tc.replay)
		}
		assert.Equal(t, 1, pub.closed)
		assert.Equal(t, 1, replay.closed)
		assert.NoError(t, p.Close(), "a second Close")
	}
}

// TestAudit118RestartCatchesUpFromZero (M3017): a CatchUp subscriber
// that sees the live stream go back (a new engine on the endpoint) asks
// the replay socket for the new engine's batches from 0, not from the
// number after the old engine's last batch, and delivers the new
// engine's batch 0 it missed, flagged as the restart.
func TestAudit118RestartCatchesUpFromZero(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	vllm := func(seq uint64) [][]byte { f := v.frame(seq); return [][]byte{nil, f[1], f[2]} }
	asked := v.serve(nil, func() [][][]byte { return [][][]byte{vllm(0), {nil, endFrame, nil}} })
	s, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + v.pub.Addr().String(), ReplayEndpoint: "tcp://" + v.router.Addr().String(),
		Topic: v.topic, CatchUp: true, ReplayTimeout: noEnd})
	require.NoError(t, err)
	defer s.Close()
	awaitPeer(t, v)
	for _, seq := range []uint64{0, 1, 2, 1} { // the new engine's batch 0 lost live
		require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(seq)...)))
	}
	for want := range uint64(3) {
		m := next(t, s)
		require.Equal(t, want, m.Seq)
		assert.False(t, m.Restarted)
	}
	m := next(t, s)
	assert.Equal(t, uint64(0), m.Seq, "the new engine's batch 0, replayed")
	assert.True(t, m.Replayed)
	assert.True(t, m.Restarted)
	assert.Equal(t, uint64(0), <-asked, "asked from 0")
	m = next(t, s)
	assert.Equal(t, uint64(1), m.Seq)
	assert.False(t, m.Restarted)
	assert.Equal(t, SubscriberStats{Live: 4, Replayed: 1, Restarts: 1}, s.Stats())
}

// TestAudit118CancelDuringReplay (M3019): a context that ends while Next
// waits for a replay ends Next with the context's error; the live batch
// that asked is not delivered past the unfilled gap.
func TestAudit118CancelDuringReplay(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	never := make(chan struct{}) // the answer is held until the test ends
	defer close(never)
	asked := v.serve(map[int]chan struct{}{0: never}, func() [][][]byte { return nil })
	s, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + v.pub.Addr().String(), ReplayEndpoint: "tcp://" + v.router.Addr().String(),
		Topic: v.topic, ReplayTimeout: noEnd})
	require.NoError(t, err)
	defer s.Close()
	awaitPeer(t, v)
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(0)...)))
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(2)...)))
	assert.Equal(t, uint64(0), next(t, s).Seq)
	ctx, cancel := context.WithCancel(ctxFor(t))
	type result struct {
		m   Message
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := s.Next(ctx)
		got <- result{m, err}
	}()
	assert.Equal(t, uint64(1), <-asked, "batch 1 asked for")
	cancel()
	r := <-got
	require.ErrorIs(t, r.err, context.Canceled, "got batch %d", r.m.Seq)
	assert.Equal(t, SubscriberStats{Live: 1}, s.Stats())
}

// TestAudit118FollowSkipsEmptyBatches (M3026): a batch with no events (a
// publisher's batch of events vLLM does not put on the wire, such as
// removals of nothing) calls apply with nothing: Follow skips it.
func TestAudit118FollowSkipsEmptyBatches(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	s := subscribeLive(t, v)
	empty, err := v.enc.AppendBatch(nil, 1, []paged.Event{{Seq: 2, Kind: paged.BlockRemoved}})
	require.NoError(t, err)
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(0)...)))
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom([]byte(v.topic), binary.BigEndian.AppendUint64(nil, 1), empty)))
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(2)...)))
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	var calls [][]uint64
	err = Follow(ctx, s, func(evs []paged.Event) error {
		var seqs []uint64
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		calls = append(calls, seqs)
		if len(calls) == 2 {
			cancel()
		}
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, calls, 2)
	assert.Equal(t, []uint64{1}, calls[0])
	assert.Len(t, calls[1], 1, "batch 2's event, not an empty call for batch 1")
	assert.Equal(t, SubscriberStats{Live: 3}, s.Stats())
}

// TestAudit118ApplyErrorStopsFollow (M3027): an error from apply stops
// Follow, which returns it wrapped with the batch's number; the batches
// after it are not applied.
func TestAudit118ApplyErrorStopsFollow(t *testing.T) {
	noLeaks(t)
	p, s := pair(t, PublisherConfig{}, SubscriberConfig{})
	for i := range 3 {
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
	}
	refused := errors.New("refused")
	var applied []uint64
	err := Follow(ctxFor(t), s, func(evs []paged.Event) error {
		applied = append(applied, evs[0].Seq)
		if len(applied) == 2 {
			return refused
		}
		return nil
	})
	require.ErrorIs(t, err, refused)
	assert.Contains(t, err.Error(), "apply batch 1")
	assert.Equal(t, []uint64{1, 2}, applied)
}

// TestAudit118QueuedBatchesEndAtClose (M3012): batches a replay queued
// behind the one Next returned are not delivered once Close was called:
// Next yields ErrClosed. (TestAudit9ClosedSubscriberYieldsErrClosed
// catches M3012 only when a select picks the live channel over the
// closed done channel; here the batch is queued, so it is seen always.)
func TestAudit118QueuedBatchesEndAtClose(t *testing.T) {
	noLeaks(t)
	p, s := pair(t, PublisherConfig{}, SubscriberConfig{ReplayTimeout: noEnd})
	publishDroppingBatch1(t, p)
	assert.Equal(t, uint64(0), next(t, s).Seq)
	m := next(t, s)
	require.Equal(t, uint64(1), m.Seq)
	require.True(t, m.Replayed)
	require.Len(t, s.pending, 1, "batch 2 queued behind the replay")
	require.NoError(t, s.Close())
	_, err := s.Next(ctxFor(t))
	require.ErrorIs(t, err, ErrClosed)
}
