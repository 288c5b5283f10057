package zmq

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit47 tests close the gaps the fifth mutation round found in zmq
// (docs/testing.md, "Mutation testing, fifth round, part B").

// TestAudit47GuardSumsEveryFrameOfAMessage (M381): a message's frames
// count together, all of them: three frames of 700 bytes (each 764 with
// frameCost) fit a 2,048-byte bound two by two but not together, so the
// guard stops at the third frame's size byte, where refFrames (the
// reference count of FuzzGuard) says; a message of two passes whole.
func TestAudit47GuardSumsEveryFrameOfAMessage(t *testing.T) {
	const limit = 2048
	frame := func(flags byte, n int) []byte {
		return append(binary.BigEndian.AppendUint64([]byte{flags | 0x02}, uint64(n)), make([]byte, n)...)
	}
	in := hostileGreeting()
	in = append(in, frame(0x01, 700)...)
	in = append(in, frame(0x00, 700)...) // a message of two: 1,528 counted
	good := len(in)
	in = append(in, frame(0x01, 700)...)
	in = append(in, frame(0x01, 700)...)
	in = append(in, frame(0x00, 700)...) // the third frame goes over
	want := refFrames(in, limit)
	require.Greater(t, want, good, "the reference stops in the message of three")
	g := &guardConn{limit: limit, greet: greetingLen}
	assert.Equal(t, want, g.scan(in), "the guard stops where the reference does")
	assert.ErrorIs(t, g.err, ErrMalformed)
}

// TestAudit47PublisherSkipsABatchForOneLostEvent (M382): events lost at
// the source show as a skipped batch number even when only one event is
// missing; consecutive and unnumbered events skip nothing.
func TestAudit47PublisherSkipsABatchForOneLostEvent(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback})
	require.NoError(t, err)
	defer p.Close()
	for _, c := range []struct {
		first uint64
		n     int
		want  uint64
	}{
		{1, 2, 0}, // events 1, 2
		{4, 1, 2}, // event 3 lost: batch 1 skipped
		{5, 1, 3}, // event 5 follows 4
		{0, 1, 4}, // unnumbered events
		{6, 1, 5}, // 6 follows 5
		{8, 2, 7}, // event 7 lost
	} {
		seq, err := p.Publish(stored(c.first, int(c.first), c.n))
		require.NoError(t, err)
		assert.Equal(t, c.want, seq, "batch of events from %d", c.first)
	}
}

// TestAudit47ReplayedDuplicateIsDeliveredOnce (M384): a replay server
// that answers with a batch twice (or a batch the subscriber has) does
// not make the subscriber deliver it twice: batches come out once each,
// in order.
func TestAudit47ReplayedDuplicateIsDeliveredOnce(t *testing.T) {
	noLeaks(t)
	v := newVLLMPeer(t, "kv")
	one := v.frame(1)
	go func() {
		req, err := v.router.Recv()
		if err != nil {
			return
		}
		for range 2 {
			_ = v.router.Send(zmq4.NewMsgFrom(req.Frames[0], nil, one[1], one[2]))
		}
		_ = v.router.Send(zmq4.NewMsgFrom(req.Frames[0], nil, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, nil))
	}()
	s := v.subscribe()
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(0)...)))
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(2)...))) // batch 1 lost
	require.NoError(t, v.pub.Send(zmq4.NewMsgFrom(v.frame(3)...)))
	var got []uint64
	for range 4 {
		got = append(got, next(t, s).Seq)
	}
	assert.Equal(t, []uint64{0, 1, 2, 3}, got)
	assert.Equal(t, SubscriberStats{Live: 3, Replayed: 1}, s.Stats())
}

// TestAudit47FollowRestartsTheStreamWithThePublisher (M387): Follow, not
// only a hand-written loop (TestPublisherRestart), restarts its stream when
// the subscriber flags a publisher restart: the new engine's batch 0 is
// applied after a gap, not dropped as a replay of the old engine's batch
// 0, which would lose every batch of the new engine up to the old one's
// last number.
func TestAudit47FollowRestartsTheStreamWithThePublisher(t *testing.T) {
	noLeaks(t)
	p, s, restart := restartable(t)
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	applied := make(chan []uint64, 16)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, s, func(evs []paged.Event) error {
			var seqs []uint64
			for _, ev := range evs {
				seqs = append(seqs, ev.Seq)
			}
			applied <- seqs
			return nil
		})
	}()
	await := func() []uint64 {
		select {
		case seqs := <-applied:
			return seqs
		case <-time.After(5 * time.Second):
			t.Fatal("no batch applied in 5 s")
			return nil
		}
	}
	for i := range 3 {
		_, err := p.Publish(stored(uint64(1+i), i, 1))
		require.NoError(t, err)
		assert.Equal(t, []uint64{uint64(1 + i)}, await())
	}
	_, err := restart().Publish(stored(1, 10, 1))
	require.NoError(t, err)
	assert.Equal(t, []uint64{5}, await(), "the new engine's first batch, after a gap")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, uint64(1), s.Stats().Restarts)
}
