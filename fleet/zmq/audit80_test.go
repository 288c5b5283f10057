package zmq

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// The Audit80 tests close the gaps the thirty-fourth mutation round found
// in zmq (docs/testing.md, "Mutation testing, thirty-fourth round").

// noEnd is a replay timeout no test waits out: a replay that is not ended
// by its end marker fails the test at its context's deadline instead.
const noEnd = time.Hour

// recvWithin receives a message from sock, failing the test if none
// comes within 10 s (which only keeps a broken socket from hanging it).
func recvWithin(t *testing.T, sock zmq4.Socket) zmq4.Msg {
	t.Helper()
	type result struct {
		msg zmq4.Msg
		err error
	}
	got := make(chan result, 1)
	go func() {
		msg, err := sock.Recv()
		got <- result{msg, err}
	}()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		return r.msg
	case <-time.After(10 * time.Second):
		t.Fatal("no message in 10 s")
		return zmq4.Msg{}
	}
}

// decodeHash is the first hash of a batch's first event.
func decodeHash(t *testing.T, payload []byte) paged.Hash {
	t.Helper()
	var b kvevents.Batch
	require.NoError(t, b.Decode(payload))
	require.NotEmpty(t, b.Events)
	return b.Events[0].Hashes[0]
}

// TestAudit80ReplaySocketAnswersAsVLLM (M1522, M1523, M1524, M1525) asks
// a Publisher's replay socket directly, through a bare DEALER socket as
// vLLM's clients do, so nothing of this package's Subscriber (which sorts
// and filters what it gets) hides the answer: the buffered batches from
// the start asked for, oldest first also when the ring has wrapped, each
// with its own payload, then the end marker; a request whose start is not
// 8 bytes gets no answer and does not stop the server; a second request
// gets its own batches, not the first one's again.
func TestAudit80ReplaySocketAnswersAsVLLM(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback, Buffer: 3})
	require.NoError(t, err)
	defer func() { assert.NoError(t, p.Close()) }()
	for i := range 5 { // batches 0..4; the ring keeps 2, 3, 4, wrapped
		_, err := p.Publish(stored(uint64(1+i), 100+i, 1))
		require.NoError(t, err)
	}
	d := zmq4.NewDealer(context.Background())
	defer d.Close()
	require.NoError(t, d.Dial(p.ReplayEndpoint()))
	ask := func(start []byte) {
		require.NoError(t, d.Send(zmq4.NewMsgFrom(nil, start)))
	}
	answer := func() []uint64 {
		seqs, payloads := readReplay(t, d)
		for i, seq := range seqs {
			assert.Equal(t, kvevents.HashFromInt(100+seq), decodeHash(t, payloads[i]), "batch %d's own payload", seq)
		}
		return seqs
	}
	ask([]byte{0, 0, 0, 0, 0, 0, 3}) // 7 bytes: ignored
	ask(binary.BigEndian.AppendUint64(nil, 3))
	assert.Equal(t, []uint64{3, 4}, answer(), "the first answer is the well-formed request's")
	ask(binary.BigEndian.AppendUint64(nil, 0))
	assert.Equal(t, []uint64{2, 3, 4}, answer(), "oldest first; 0 and 1 left the ring")
	ask(binary.BigEndian.AppendUint64(nil, 9))
	assert.Empty(t, answer(), "nothing from 9 on: the end marker alone")
}

// TestAudit80PublishNothing (M1521): publishing no events sends nothing
// and takes no batch number.
func TestAudit80PublishNothing(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback})
	require.NoError(t, err)
	defer p.Close()
	for _, evs := range [][]paged.Event{nil, {}} {
		var seq uint64
		require.NotPanics(t, func() { seq, err = p.Publish(evs) })
		require.NoError(t, err)
		assert.Equal(t, uint64(0), seq)
	}
	seq, err := p.Publish(stored(1, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, uint64(0), seq, "the first batch is still batch 0")
	p.mu.Lock()
	assert.Len(t, p.ring, 1)
	p.mu.Unlock()
}

// TestAudit80ConfigBounds (M1526, M1541, M1542): a negative ReplayTimeout
// is refused with ErrInvalid; MaxMessage at either end of its range,
// 2^10 and 2^50, is taken by both sides.
func TestAudit80ConfigBounds(t *testing.T) {
	noLeaks(t)
	_, err := NewSubscriber(SubscriberConfig{Endpoint: loopback, ReplayTimeout: -time.Nanosecond})
	require.ErrorIs(t, err, ErrInvalid)
	for _, v := range []int64{minMessage, maxMessageLimit} {
		p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback, MaxMessage: v})
		require.NoError(t, err, "publisher %d", v)
		s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint(), MaxMessage: v})
		require.NoError(t, err, "subscriber %d", v)
		require.NoError(t, s.Close())
		require.NoError(t, p.Close())
	}
}

// TestAudit80LateSubscriberWithoutCatchUp (M1530): a subscriber with a
// replay endpoint but no CatchUp starts at the first batch it receives
// live; it does not ask for the batches before it (that is CatchUp's
// job), and that is no gap.
func TestAudit80LateSubscriberWithoutCatchUp(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback})
	require.NoError(t, err)
	defer p.Close()
	for i := range 3 { // nobody subscribes: the PUB socket drops them
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
	}
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint(), ReplayTimeout: noEnd})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, p.AwaitSubscriber(ctxFor(t)))
	for i := 3; i < 5; i++ {
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
	}
	for _, want := range []uint64{3, 4} {
		m := next(t, s)
		assert.Equal(t, want, m.Seq)
		assert.False(t, m.Replayed)
	}
	assert.Equal(t, SubscriberStats{Live: 2}, s.Stats())
}

// TestAudit80RestartFlagsOneBatch (M1528, M1529): an engine that restarts
// after one batch (the subscriber's next is 1, the new engine's first
// batch 0, one below) is a restart too, and only the new engine's first
// batch carries the flag.
func TestAudit80RestartFlagsOneBatch(t *testing.T) {
	noLeaks(t)
	p, s, restart := restartable(t)
	_, err := p.Publish(stored(1, 0, 1))
	require.NoError(t, err)
	m := next(t, s)
	require.Equal(t, uint64(0), m.Seq)
	assert.False(t, m.Restarted)
	p2 := restart()
	for i := range 3 {
		_, err := p2.Publish(stored(uint64(1+i), 10+i, 1))
		require.NoError(t, err)
	}
	for i := range uint64(3) {
		m := next(t, s)
		assert.Equal(t, i, m.Seq)
		assert.Equal(t, i == 0, m.Restarted, "batch %d of the new engine", i)
	}
	assert.Equal(t, SubscriberStats{Live: 4, Restarts: 1}, s.Stats())
}

// serve answers the replay requests v's ROUTER receives, in a goroutine,
// the i-th with the replies answers[i] returns (each reply's frames after
// the client's identity), once hold[i] is closed when there is one. It
// returns a channel reporting each request's start.
func (v *vllmPeer) serve(hold map[int]chan struct{}, answers ...func() [][][]byte) <-chan uint64 {
	got := make(chan uint64, len(answers))
	go func() {
		for i, answer := range answers {
			req, err := v.router.Recv()
			if err != nil || len(req.Frames) != 3 || len(req.Frames[2]) != 8 {
				return
			}
			got <- binary.BigEndian.Uint64(req.Frames[2])
			if h := hold[i]; h != nil {
				<-h
			}
			for _, frames := range answer() {
				if v.router.Send(zmq4.NewMsgFrom(append([][]byte{req.Frames[0]}, frames...)...)) != nil {
					return
				}
			}
		}
	}()
	return got
}

var endFrame = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// TestAudit80ReplyFramings (M1532, M1533, M1534, M1535, M1527): the
// subscriber reads a replay however the publisher frames and orders it:
// vLLM's (empty, seq, payload), TensorRT-LLM's (empty, topic, seq,
// payload), batches out of order; skips (and counts) a reply whose
// sequence number is not 8 bytes; ends the replay at the end marker, not
// at its timeout (an hour here). A gap of one batch the replay does not
// fill is counted.
func TestAudit80ReplyFramings(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	frame := v.frame
	vllm := func(seq uint64) [][]byte { f := frame(seq); return [][]byte{nil, f[1], f[2]} }
	trt := func(seq uint64) [][]byte { f := frame(seq); return [][]byte{nil, f[0], f[1], f[2]} }
	got := v.serve(nil,
		// Batch 1 missing: TensorRT-LLM's framing, its end marker too.
		func() [][][]byte { return [][][]byte{trt(1), {nil, []byte("kv"), endFrame, nil}} },
		// Batches 3..5 missing: out of order, one reply with a 7-byte
		// number among them.
		func() [][][]byte {
			return [][][]byte{vllm(5), {nil, make([]byte, 7), []byte{0x90}}, vllm(3), vllm(4), {nil, endFrame, nil}}
		},
		// Batch 7 missing: the publisher no longer has it.
		func() [][][]byte { return [][][]byte{{nil, endFrame, nil}} },
	)
	s, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + v.pub.Addr().String(), ReplayEndpoint: "tcp://" + v.router.Addr().String(),
		Topic: v.topic, ReplayTimeout: noEnd})
	require.NoError(t, err)
	defer s.Close()
	awaitPeer(t, v)
	for _, seq := range []uint64{0, 2, 6, 8} {
		require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(frame(seq)...)))
	}
	var seqs []uint64
	for range 8 {
		m := next(t, s)
		seqs = append(seqs, m.Seq)
		assert.Equal(t, kvevents.HashFromInt(m.Seq), decodeHash(t, m.Payload), "batch %d's own payload", m.Seq)
	}
	assert.Equal(t, []uint64{0, 1, 2, 3, 4, 5, 6, 8}, seqs)
	assert.Equal(t, []uint64{1, 3, 7}, []uint64{<-got, <-got, <-got}, "the first missing batch of each gap asked for")
	assert.Equal(t, SubscriberStats{Live: 4, Replayed: 4, Gaps: 1, Malformed: 1}, s.Stats())
}

// subscribeLive subscribes to v's PUB socket alone (no replay
// endpoint), closes the subscriber when the test ends, and waits until
// the subscription reached v.
func subscribeLive(t *testing.T, v *vllmPeer) *Subscriber {
	t.Helper()
	s, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + v.pub.Addr().String(), Topic: v.topic})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	awaitPeer(t, v)
	return s
}

// awaitPeer waits until a subscription reached v's PUB socket.
func awaitPeer(t *testing.T, v *vllmPeer) {
	t.Helper()
	ctx := ctxFor(t)
	for len(v.pub.(zmq4.Topics).Topics()) == 0 {
		require.NoError(t, ctx.Err())
		time.Sleep(2 * time.Millisecond)
	}
}

// TestAudit80StaleRepliesAreDropped (M1531): the replies to a request
// that timed out, arriving late, are not taken for the next request's:
// in particular their end marker does not end the next replay before its
// batches come.
func TestAudit80StaleRepliesAreDropped(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	vllm := func(seq uint64) [][]byte { f := v.frame(seq); return [][]byte{nil, f[1], f[2]} }
	late := make(chan struct{}) // the first answer waits for the test
	defer func() {
		select {
		case <-late:
		default:
			close(late)
		}
	}()
	end := [][]byte{nil, endFrame, nil}
	v.serve(map[int]chan struct{}{0: late},
		func() [][][]byte { return [][][]byte{vllm(1), end} },
		func() [][][]byte { return [][][]byte{vllm(3), end} },
	)
	// The first request times out (its answer is held back until then);
	// the second must not.
	s, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + v.pub.Addr().String(), ReplayEndpoint: "tcp://" + v.router.Addr().String(),
		Topic: v.topic, ReplayTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	awaitPeer(t, v)
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(0)...)))
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(2)...)))
	assert.Equal(t, uint64(0), next(t, s).Seq)
	assert.Equal(t, uint64(2), next(t, s).Seq, "batch 1 timed out")
	assert.Equal(t, uint64(1), s.Stats().Gaps)
	s.cfg.ReplayTimeout = noEnd // (Next's goroutine: no race)
	// The late answer (batch 1, the end marker) reaches the subscriber.
	close(late)
	ctx := ctxFor(t)
	for len(s.replay) < 2 {
		require.NoError(t, ctx.Err(), "the late answer arrives")
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(4)...)))
	m := next(t, s)
	assert.Equal(t, uint64(3), m.Seq, "the second replay's batch, not cut off by the first's end marker")
	assert.True(t, m.Replayed)
	assert.Equal(t, uint64(4), next(t, s).Seq)
	assert.Equal(t, SubscriberStats{Live: 3, Replayed: 1, Gaps: 1}, s.Stats())
}

// TestAudit80FollowSkipsMalformedInput (M1536, M1537, M1538): a live
// message whose sequence frame is not 8 bytes is ErrMalformed from Next
// (counted, not read), and Follow goes on past it; a batch whose payload
// is not a KV event frame counts as lost events, and Follow goes on past
// it too.
func TestAudit80FollowSkipsMalformedInput(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	s := subscribeLive(t, v)
	send := func(frames ...[]byte) { require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(frames...))) }
	send(v.frame(0)...)
	send([]byte("kv"), make([]byte, 7), v.frame(1)[2])                      // a 7-byte number
	send([]byte("kv"), binary.BigEndian.AppendUint64(nil, 1), []byte{0xc1}) // not msgpack
	send(v.frame(2)...)

	got := followSeqs(t, s, 2)
	assert.Equal(t, []uint64{1, 3}, got, "batch 1's events lost: a gap")
	assert.Equal(t, SubscriberStats{Live: 3, Malformed: 1}, s.Stats())
}

// TestAudit80MessageBounds (M1539, M1543): a batch of about 1.3 MB
// passes the default bound (DefaultMaxMessage, 64 MiB) on both sides,
// while a subscriber whose MaxMessage is 64 KiB, beside a default one on
// the same publisher, drops it: each bound has its own transport. The
// batch counts as lost for the small subscriber, which redials and goes
// on with later batches.
func TestAudit80MessageBounds(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, Topic: "kv"})
	require.NoError(t, err)
	defer p.Close()
	big, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), Topic: "k"})
	require.NoError(t, err)
	defer big.Close()
	small, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), Topic: "kv", MaxMessage: 64 << 10})
	require.NoError(t, err)
	defer small.Close()
	awaitTopic(t, p, "k")
	awaitTopic(t, p, "kv")

	tokens := make([]int32, 1<<10)
	for i := range tokens {
		tokens[i] = 1 << 20 // 5 bytes each on the wire
	}
	huge := make([]paged.Event, 256)
	for i := range huge {
		huge[i] = paged.Event{Seq: uint64(1 + i), Kind: paged.BlockStored, Hashes: []paged.Hash{kvevents.HashFromInt(uint64(i))}, Tokens: tokens, BlockSize: len(tokens)}
	}
	_, err = p.Publish(huge)
	require.NoError(t, err)
	m := next(t, big)
	require.Equal(t, uint64(0), m.Seq)
	assert.Greater(t, len(m.Payload), 1<<20)
	var b kvevents.Batch
	require.NoError(t, b.Decode(m.Payload))
	assert.Len(t, b.Events, len(huge))

	// The small subscriber lost its connection with the batch; it gets
	// the batches published once it has redialed.
	ctx := ctxFor(t)
	for i := 1; ; i++ {
		require.NoError(t, ctx.Err(), "the small subscriber gets a batch again")
		_, err := p.Publish(stored(uint64(len(huge)+i), i, 1))
		require.NoError(t, err)
		wait, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := small.Next(wait)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		require.NoError(t, err)
		assert.NotEqual(t, uint64(0), m.Seq, "the batch over the bound is not delivered")
		assert.Less(t, len(m.Payload), 64<<10)
		break
	}
}

// TestAudit80IPC (M1540): ipc:// endpoints work through the guard (a
// Unix stream socket), with Endpoint and ReplayEndpoint naming them as
// they were bound.
func TestAudit80IPC(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	pubPath, replayPath := filepath.Join(dir, "pub.sock"), filepath.Join(dir, "replay.sock")
	p, err := NewPublisher(PublisherConfig{Endpoint: "ipc://" + pubPath, ReplayEndpoint: "ipc://" + replayPath})
	require.NoError(t, err)
	defer func() { assert.NoError(t, p.Close()) }()
	assert.Equal(t, "ipc://"+pubPath, p.Endpoint())
	assert.Equal(t, "ipc://"+replayPath, p.ReplayEndpoint())
	subscribeAndReplayBatch1(t, p)
}

// fakeConn is a net.Conn whose reads return the given chunks, then err,
// and which records Close.
type fakeConn struct {
	net.Conn
	chunks [][]byte
	err    error
	closed atomic.Bool
}

func (c *fakeConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, c.err
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *fakeConn) Close() error { c.closed.Store(true); return nil }

// TestAudit80GuardHandshake (M1544, M1546, M1547): the handshake is
// through (the timer stops, the connection stays) once the greeting and
// a whole frame have passed, not at the frame's header while its body is
// still to come (a peer could send the header and stall); a connection
// whose peer goes away before that is closed by the guard (the library
// leaves it open), one after it is left to the library.
func TestAudit80GuardHandshake(t *testing.T) {
	ready := append([]byte{0x04, 10}, make([]byte, 10)...) // a 10-byte command
	for _, cut := range []int{0, 1, 2, 5, 11} {            // bytes of the frame sent
		c := &fakeConn{chunks: [][]byte{hostileGreeting(), ready[:cut]}, err: io.EOF}
		g := newGuardConn(c, DefaultMaxMessage)
		buf := make([]byte, 256)
		var err error
		for err == nil {
			_, err = g.Read(buf)
		}
		require.ErrorIs(t, err, io.EOF)
		assert.False(t, g.shaken.Load(), "%d bytes of the first frame: not through", cut)
		assert.True(t, c.closed.Load(), "%d bytes of the first frame: the guard closes the connection", cut)
		g.Close()
	}
	c := &fakeConn{chunks: [][]byte{hostileGreeting(), ready}, err: io.EOF}
	g := newGuardConn(c, DefaultMaxMessage)
	defer g.Close()
	buf := make([]byte, 256)
	n, err := g.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, greetingLen, n)
	assert.False(t, g.shaken.Load(), "the greeting alone")
	n, err = g.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, len(ready), n)
	assert.True(t, g.shaken.Load(), "the greeting and a whole frame")
	assert.False(t, g.timer.Stop(), "the timer was stopped")
	_, err = g.Read(buf)
	require.ErrorIs(t, err, io.EOF)
	assert.False(t, c.closed.Load(), "after the handshake the library closes the connection")
}

// TestAudit80GuardSizeNearTheTop (M1545): a frame announcing a size
// within frameCost of 2^64 (where size+frameCost wraps) is refused like
// any size over the bound, at its last size byte.
func TestAudit80GuardSizeNearTheTop(t *testing.T) {
	for _, size := range []uint64{^uint64(0), ^uint64(0) - frameCost + 1, ^uint64(0) - 30, 1 << 63, uint64(DefaultMaxMessage)} {
		in := binary.BigEndian.AppendUint64(append(hostileGreeting(), 0x02), size)
		g := &guardConn{limit: DefaultMaxMessage, greet: greetingLen}
		g.shaken.Store(true)
		assert.Equal(t, len(in)-1, g.scan(in), "size %#x", size)
		assert.ErrorIs(t, g.err, ErrMalformed, "size %#x", size)
	}
}

// subscribeAndReplayBatch1 subscribes to p at both its endpoints,
// publishes three batches with the second lost on the way, and requires
// the subscriber to see all three in order, the second from the replay.
func subscribeAndReplayBatch1(t *testing.T, p *Publisher) {
	t.Helper()
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint(), ReplayTimeout: noEnd})
	require.NoError(t, err)
	defer func() { assert.NoError(t, s.Close()) }()
	require.NoError(t, p.AwaitSubscriber(ctxFor(t)))
	publishDroppingBatch1(t, p)
	for i := range uint64(3) {
		m := next(t, s)
		assert.Equal(t, i, m.Seq)
		assert.Equal(t, i == 1, m.Replayed)
	}
}
