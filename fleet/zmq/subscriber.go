package zmq

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// DefaultReplayTimeout bounds a replay request when
// SubscriberConfig.ReplayTimeout is 0.
const DefaultReplayTimeout = 5 * time.Second

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Endpoint is the PUB address to dial (a vLLM engine's
	// --kv-events-config endpoint, or Publisher.Endpoint). Required.
	Endpoint string
	// ReplayEndpoint is the publisher's replay (ROUTER) address; empty
	// means gaps are reported, never filled.
	ReplayEndpoint string
	// Topic filters messages by prefix of their first frame; empty takes
	// all.
	Topic string
	// CatchUp asks for every buffered batch before the first one received
	// live, so a subscriber that joins late (or loses the first messages
	// to the PUB socket's slow-joiner window) still sees the history the
	// publisher kept. Needs ReplayEndpoint.
	CatchUp bool
	// ReplayTimeout bounds each replay request; 0 means
	// DefaultReplayTimeout.
	ReplayTimeout time.Duration
	// MaxMessage bounds the bytes of one message the publisher may send
	// (a batch, with its topic and sequence frames); a publisher that
	// announces more is disconnected before anything is allocated (the
	// subscriber redials), and the batch counts as lost. 0 means
	// DefaultMaxMessage; otherwise at least 1 KiB.
	MaxMessage int64
}

// Message is one batch as it came over the wire.
type Message struct {
	// Topic is the message's first frame; nil for a replayed batch, which
	// vLLM's replay socket sends without it.
	Topic []byte
	// Seq is the batch sequence number (the second frame).
	Seq uint64
	// Payload is the msgpack KVEventBatch (the third frame).
	Payload []byte
	// Replayed reports whether the batch came from the replay socket.
	Replayed bool
	// Restarted reports that the publisher started over: the live stream
	// went back to a sequence number already delivered, as a restarted
	// vLLM engine does (its numbering and its cache start afresh).
	Restarted bool
}

// Subscriber reads a vLLM-style event publisher: a SUB socket for the live
// stream and, when configured, a DEALER socket that asks the publisher's
// ROUTER for the batches a gap in sequence numbers says were missed. Next
// delivers batches in sequence order; a gap replay cannot fill (the
// publisher no longer buffers the batches, or its source dropped events)
// is left in the sequence numbers for the consumer to see.
//
// Next and Follow belong to one goroutine; Close may be called from any.
type Subscriber struct {
	cfg    SubscriberConfig
	sub    zmq4.Socket
	dealer zmq4.Socket
	live   chan zmq4.Msg
	replay chan zmq4.Msg
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	next      uint64
	started   bool
	restarted bool // the next batch delivered is the new publisher's first
	pending   []Message
	stats     SubscriberStats
}

// SubscriberStats counts what a Subscriber saw.
type SubscriberStats struct {
	// Live is the number of batches delivered from the live stream.
	Live uint64
	// Replayed is the number of batches delivered from replays.
	Replayed uint64
	// Gaps is the number of gaps replay did not fill (or could not try).
	Gaps uint64
	// Malformed is the number of messages skipped for bad framing.
	Malformed uint64
	// Restarts is the number of times the publisher started over.
	Restarts uint64
}

// NewSubscriber dials the publisher and subscribes to cfg.Topic.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("%w: SubscriberConfig.Endpoint is empty", ErrInvalid)
	}
	if cfg.CatchUp && cfg.ReplayEndpoint == "" {
		return nil, fmt.Errorf("%w: CatchUp needs a ReplayEndpoint", ErrInvalid)
	}
	if cfg.ReplayTimeout < 0 {
		return nil, fmt.Errorf("%w: ReplayTimeout %v is negative", ErrInvalid, cfg.ReplayTimeout)
	}
	if cfg.ReplayTimeout == 0 {
		cfg.ReplayTimeout = DefaultReplayTimeout
	}
	endpoint, replayEndpoint, err := guardEndpoints(cfg.MaxMessage, "SubscriberConfig", cfg.Endpoint, cfg.ReplayEndpoint)
	if err != nil {
		return nil, err
	}
	s := &Subscriber{cfg: cfg, live: make(chan zmq4.Msg, 64), replay: make(chan zmq4.Msg, 64), done: make(chan struct{})}
	// Both sockets redial a publisher that went away (zmq4 resends the
	// subscription), so a follower outlives an engine restart.
	s.sub = zmq4.NewSub(context.Background(), zmq4.WithAutomaticReconnect(true))
	if err := s.sub.Dial(endpoint); err != nil {
		s.sub.Close()
		return nil, fmt.Errorf("zmq: subscriber: %w", err)
	}
	if err := s.sub.SetOption(zmq4.OptionSubscribe, cfg.Topic); err != nil {
		s.sub.Close()
		return nil, fmt.Errorf("zmq: subscribe: %w", err)
	}
	if cfg.ReplayEndpoint != "" {
		s.dealer = zmq4.NewDealer(context.Background(), zmq4.WithAutomaticReconnect(true))
		if err := s.dealer.Dial(replayEndpoint); err != nil {
			s.dealer.Close()
			s.sub.Close()
			return nil, fmt.Errorf("zmq: replay: %w", err)
		}
		s.wg.Add(1)
		go s.pump(s.dealer, s.replay)
	}
	s.wg.Add(1)
	go s.pump(s.sub, s.live)
	return s, nil
}

// closed reports whether Close has been called.
func (s *Subscriber) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// pump moves messages from a socket to a channel until the subscriber
// closes, so Next can wait on a context too. zmq4 reports a connection the
// peer dropped as a receive error; the socket redials and receiving goes
// on.
func (s *Subscriber) pump(sock zmq4.Socket, out chan<- zmq4.Msg) {
	defer s.wg.Done()
	for {
		msg, err := sock.Recv()
		if err != nil {
			if !pause(s.done) {
				return
			}
			continue
		}
		select {
		case out <- msg:
		case <-s.done:
			return
		}
	}
}

// pause waits a moment after a receive error, so a socket that keeps
// failing does not spin, and reports whether to go on (done is open).
func pause(done <-chan struct{}) bool {
	t := time.NewTimer(5 * time.Millisecond)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// Next returns the next batch in sequence order, asking for a replay
// first when the live stream skips ahead. A message without vLLM's framing
// yields an error wrapping ErrMalformed (and is skipped); a closed
// subscriber yields ErrClosed.
func (s *Subscriber) Next(ctx context.Context) (Message, error) {
	for {
		// Batches buffered before a Close are not delivered after it.
		if s.closed() {
			return Message{}, ErrClosed
		}
		for len(s.pending) > 0 {
			m := s.pending[0]
			s.pending = s.pending[1:]
			if s.started && m.Seq < s.next {
				continue // delivered already
			}
			if (s.started && m.Seq > s.next) || (!s.started && s.cfg.CatchUp && m.Seq > 0) {
				s.stats.Gaps++ // replay could not fill it
			}
			s.started, s.next = true, m.Seq+1
			m.Restarted, s.restarted = s.restarted, false
			if m.Replayed {
				s.stats.Replayed++
			} else {
				s.stats.Live++
			}
			return m, nil
		}
		var msg zmq4.Msg
		select {
		case <-ctx.Done():
			return Message{}, ctx.Err()
		case <-s.done:
			return Message{}, ErrClosed
		case msg = <-s.live:
		}
		m, err := parse(msg.Frames)
		if err != nil {
			s.stats.Malformed++
			return Message{}, err
		}
		// Replays are cut below the live batch that asked for them, so the
		// live stream going back means a new publisher on the endpoint.
		if s.started && m.Seq < s.next {
			s.started, s.next, s.restarted = false, 0, true
			s.stats.Restarts++
		}
		gap := (s.started && m.Seq > s.next) || (!s.started && s.cfg.CatchUp && m.Seq > 0)
		if gap && s.dealer != nil {
			if err := s.fill(ctx, s.next, m.Seq); err != nil {
				return Message{}, err
			}
		}
		s.pending = append(s.pending, m)
	}
}

// fill asks the replay socket for the batches from start on and queues
// those before end. A replay that times out leaves the gap.
func (s *Subscriber) fill(ctx context.Context, start, end uint64) error {
	// Replies to an earlier request that timed out are stale.
	for len(s.replay) > 0 {
		<-s.replay
	}
	req := binary.BigEndian.AppendUint64(make([]byte, 0, 8), start)
	if err := s.dealer.Send(zmq4.NewMsgFrom(nil, req)); err != nil {
		if s.closed() {
			return ErrClosed // Close closed the socket under the request
		}
		return fmt.Errorf("zmq: replay request: %w", err)
	}
	timer := time.NewTimer(s.cfg.ReplayTimeout)
	defer timer.Stop()
loop:
	for {
		var msg zmq4.Msg
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		case <-timer.C:
			break loop // the rest of the gap stays
		case msg = <-s.replay:
		}
		// The DEALER sees vLLM's (empty, seq, payload); TensorRT-LLM's
		// publisher puts the topic before the sequence number.
		frames := msg.Frames
		if len(frames) > 0 && len(frames[0]) == 0 {
			frames = frames[1:]
		}
		if len(frames) == 3 {
			frames = frames[1:]
		}
		if len(frames) != 2 || len(frames[0]) != 8 {
			s.stats.Malformed++
			continue
		}
		seq := binary.BigEndian.Uint64(frames[0])
		if seq == ^uint64(0) {
			break loop // the end marker, -1
		}
		if seq >= start && seq < end {
			s.pending = append(s.pending, Message{Seq: seq, Payload: frames[1], Replayed: true})
		}
	}
	// Replies to an earlier, timed-out request may interleave: order by
	// sequence number; Next drops repeats.
	slices.SortStableFunc(s.pending, func(a, b Message) int { return cmp.Compare(a.Seq, b.Seq) })
	return nil
}

// parse checks the live stream's framing: (topic, seq, payload).
func parse(frames [][]byte) (Message, error) {
	if len(frames) != 3 || len(frames[1]) != 8 {
		return Message{}, fmt.Errorf("%w: %d frames", ErrMalformed, len(frames))
	}
	return Message{Topic: frames[0], Seq: binary.BigEndian.Uint64(frames[1]), Payload: frames[2]}, nil
}

// Stats returns what the subscriber has seen so far. Like Next, it belongs
// to the reading goroutine.
func (s *Subscriber) Stats() SubscriberStats { return s.stats }

// Close closes the sockets and waits for the reading goroutines to stop.
// A second Close returns nil; closing a nil Subscriber returns
// ErrInvalid.
func (s *Subscriber) Close() error {
	if s == nil {
		return fmt.Errorf("%w: Close of a nil Subscriber", ErrInvalid)
	}
	var err error
	s.once.Do(func() {
		close(s.done)
		err = closeSocket(s.sub)
		if s.dealer != nil {
			if e := closeSocket(s.dealer); err == nil {
				err = e
			}
		}
		s.wg.Wait()
	})
	return err
}

// Follow reads sub until ctx ends, decoding each batch with a
// kvevents.Stream and handing its numbered events to apply (fleet's
// Index.Apply for this engine's server name, say). A publisher restart
// shows as a gap in the event numbers: the index forgets what the old
// engine held. Malformed messages and
// frames count as lost events (the stream leaves a gap) and do not stop
// it; an error from apply does, as does ctx (Follow then returns
// ctx.Err()). A nil sub or apply is refused with ErrInvalid.
func Follow(ctx context.Context, sub *Subscriber, apply func([]paged.Event) error) error {
	if sub == nil || apply == nil {
		return fmt.Errorf("%w: Follow needs a subscriber and an apply function", ErrInvalid)
	}
	var stream kvevents.Stream
	for {
		m, err := sub.Next(ctx)
		if errors.Is(err, ErrMalformed) {
			continue
		}
		if err != nil {
			return err
		}
		if m.Restarted {
			stream.Restart()
		}
		events, err := stream.Decode(m.Seq, m.Payload)
		if errors.Is(err, kvevents.ErrMalformed) {
			continue
		}
		if err != nil {
			return err
		}
		if len(events) > 0 {
			if err := apply(events); err != nil {
				return fmt.Errorf("zmq: apply batch %d: %w", m.Seq, err)
			}
		}
	}
}
