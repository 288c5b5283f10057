package zmq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// DefaultBuffer is how many batches a Publisher keeps for replay when
// PublisherConfig.Buffer is 0 (vLLM's buffer_steps default).
const DefaultBuffer = 10_000

// DefaultHWM is the PUB socket's high-water mark when PublisherConfig.HWM
// is 0 (vLLM's hwm default).
const DefaultHWM = 100_000

// endSeq ends a replay: the sequence number -1, as 8 big-endian bytes.
var endSeq = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Endpoint is the address the PUB socket binds, such as
	// "tcp://127.0.0.1:5557" (port 0 picks a free port; see
	// Publisher.Endpoint). Required.
	Endpoint string
	// ReplayEndpoint is the address the ROUTER socket for replay requests
	// binds; empty means no replay.
	ReplayEndpoint string
	// Topic is the first frame of every message (vLLM's default is empty).
	// llm-d's vLLM adapter reads "kv@<pod>@<model>" from it to name the
	// pod and model the events belong to.
	Topic string
	// Buffer is how many past batches are kept for replay; 0 means
	// DefaultBuffer.
	Buffer int
	// HWM is how many batches the PUB socket queues before it drops new
	// ones (subscribers then see a gap and ask for a replay); 0 means
	// DefaultHWM.
	HWM int
	// Encoder configures how events become frames.
	Encoder kvevents.EncoderConfig
	// MaxMessage bounds the bytes of one message a peer may send to the
	// PUB or replay socket (subscriptions and replay requests are a few
	// bytes); a peer that announces more is disconnected before anything
	// is allocated. 0 means DefaultMaxMessage; otherwise at least 1 KiB.
	MaxMessage int64
}

// Publisher publishes a paged manager's events the way vLLM's
// ZmqEventPublisher does (vllm/distributed/kv_events.py): each batch is a
// three-frame message on a PUB socket, (topic, 8-byte big-endian batch
// sequence number from 0, msgpack KVEventBatch), and a ROUTER socket
// answers replay requests from its buffer of recent batches.
//
// Events the manager dropped (a gap in paged.Event.Seq) have no batch to
// replay: the publisher skips a batch number for them, so a subscriber
// sees a gap that replay cannot fill and treats the state as lost, as it
// must.
//
// Publish is safe for concurrent use; batches are numbered in the order
// Publish calls take the publisher's lock.
type Publisher struct {
	pub, replay zmq4.Socket
	enc         *kvevents.Encoder
	topic       []byte
	schemes     [2]string // of Endpoint and ReplayEndpoint, as configured

	mu        sync.Mutex
	seq       uint64
	lastEvent uint64
	buffer    int     // PublisherConfig.Buffer: the ring's bound
	ring      []entry // the last buffer batches, oldest at head
	head      int
	closed    bool
	drop      func(seq uint64) bool // test hook: record but do not send

	done chan struct{} // closed by Close, before the sockets
	wg   sync.WaitGroup
}

type entry struct {
	seq     uint64
	payload []byte
}

// NewPublisher binds the sockets and starts serving replay requests.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("%w: PublisherConfig.Endpoint is empty", ErrInvalid)
	}
	if cfg.Buffer < 0 || cfg.HWM < 0 {
		return nil, fmt.Errorf("%w: PublisherConfig.Buffer %d or HWM %d is negative", ErrInvalid, cfg.Buffer, cfg.HWM)
	}
	if cfg.HWM == 0 {
		cfg.HWM = DefaultHWM
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = DefaultBuffer
	}
	endpoint, replayEndpoint, err := guardEndpoints(cfg.MaxMessage, "PublisherConfig", cfg.Endpoint, cfg.ReplayEndpoint)
	if err != nil {
		return nil, err
	}
	enc, err := kvevents.NewEncoder(cfg.Encoder)
	if err != nil {
		return nil, fmt.Errorf("zmq: %w", err)
	}
	// The ring grows as batches come, up to Buffer: a large Buffer costs
	// nothing until the batches exist.
	p := &Publisher{enc: enc, topic: []byte(cfg.Topic), buffer: cfg.Buffer, done: make(chan struct{})}
	p.schemes[0], _, _ = strings.Cut(cfg.Endpoint, "://")
	p.schemes[1], _, _ = strings.Cut(cfg.ReplayEndpoint, "://")
	p.pub = zmq4.NewPub(context.Background())
	if err := p.pub.SetOption(zmq4.OptionHWM, cfg.HWM); err != nil {
		p.pub.Close()
		return nil, fmt.Errorf("zmq: publisher: %w", err)
	}
	if err := p.pub.Listen(endpoint); err != nil {
		p.pub.Close()
		return nil, fmt.Errorf("zmq: publisher: %w", err)
	}
	if cfg.ReplayEndpoint != "" {
		p.replay = zmq4.NewRouter(context.Background())
		if err := p.replay.Listen(replayEndpoint); err != nil {
			p.replay.Close()
			p.pub.Close()
			return nil, fmt.Errorf("zmq: replay: %w", err)
		}
		p.wg.Add(1)
		go p.serveReplay()
	}
	return p, nil
}

// Endpoint returns the address subscribers dial: the configured
// endpoint's scheme (tcp, ipc) with the address the PUB socket actually
// bound (the port it picked for port 0).
func (p *Publisher) Endpoint() string { return p.schemes[0] + "://" + p.pub.Addr().String() }

// ReplayEndpoint returns the address of the replay socket, or "" without
// one.
func (p *Publisher) ReplayEndpoint() string {
	if p.replay == nil {
		return ""
	}
	return p.schemes[1] + "://" + p.replay.Addr().String()
}

// AwaitSubscriber waits until at least one subscriber's subscription has
// reached the PUB socket, or ctx ends, or the publisher is closed
// (ErrClosed). Messages published before then are lost to that subscriber
// (ZeroMQ's slow joiner), so a publisher whose first batches matter waits
// here, or its subscribers use CatchUp.
func (p *Publisher) AwaitSubscriber(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for len(p.pub.(zmq4.Topics).Topics()) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return ErrClosed
		case <-tick.C:
		}
	}
	return nil
}

// Publish sends events (one DrainEvents worth, say) as one batch stamped
// with the current time and returns its sequence number. Publishing no
// events sends nothing. An event vLLM cannot express yields an error
// wrapping kvevents.ErrInvalid and sends nothing.
func (p *Publisher) Publish(events []paged.Event) (uint64, error) {
	return p.PublishAt(float64(time.Now().UnixNano())/1e9, events)
}

// PublishAt is Publish with the batch's timestamp given (seconds since the
// epoch), for replays of recorded traces. A timestamp that is not a finite
// number yields an error wrapping kvevents.ErrInvalid and sends nothing.
func (p *Publisher) PublishAt(ts float64, events []paged.Event) (uint64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	payload, err := p.enc.AppendBatch(make([]byte, 0, sizeHint(events)), ts, events)
	if err != nil {
		return 0, fmt.Errorf("zmq: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	// Events the source dropped leave a hole in the batch numbers.
	if first := events[0].Seq; first != 0 && first > p.lastEvent+1 {
		p.seq++
	}
	if last := events[len(events)-1].Seq; last != 0 {
		p.lastEvent = last
	}
	seq := p.seq
	p.seq++
	e := entry{seq: seq, payload: payload}
	if len(p.ring) < p.buffer {
		p.ring = append(p.ring, e)
	} else {
		p.ring[p.head] = e
		p.head = (p.head + 1) % len(p.ring)
	}
	if p.drop != nil && p.drop(seq) {
		return seq, nil
	}
	seqFrame := binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
	if err := p.pub.Send(zmq4.NewMsgFrom(p.topic, seqFrame, payload)); err != nil {
		return seq, fmt.Errorf("zmq: publish batch %d: %w", seq, err)
	}
	return seq, nil
}

// sizeHint bounds a batch's encoded size from above for common events
// (hashes as 34-byte bins, tokens at most 5 bytes, 64 bytes of field
// names and scalars per event), so encoding allocates once. The payload is
// allocated per batch because the replay buffer and the PUB socket's
// queue keep it.
func sizeHint(events []paged.Event) int {
	n := 64
	for i := range events {
		n += 64 + 34*(len(events[i].Hashes)+1) + 5*len(events[i].Tokens)
	}
	return n
}

// serveReplay answers replay requests until the socket closes. A request
// is (identity, empty, 8-byte start); the answer is every buffered batch
// from start on as (identity, empty, seq, payload), then (identity, empty,
// -1, empty), as vLLM's _service_replay sends them.
func (p *Publisher) serveReplay() {
	defer p.wg.Done()
	var batch []entry
	for {
		msg, err := p.replay.Recv()
		if err != nil {
			// A client that went away is a receive error; the socket
			// serves the others.
			if !pause(p.done) {
				return
			}
			continue
		}
		if len(msg.Frames) != 3 || len(msg.Frames[2]) != 8 {
			continue // vLLM ignores malformed requests too
		}
		id := msg.Frames[0]
		start := binary.BigEndian.Uint64(msg.Frames[2])
		batch = batch[:0]
		p.mu.Lock()
		for i := range p.ring {
			if e := p.ring[(p.head+i)%len(p.ring)]; e.seq >= start {
				batch = append(batch, e)
			}
		}
		p.mu.Unlock()
		for _, e := range batch {
			seq := binary.BigEndian.AppendUint64(make([]byte, 0, 8), e.seq)
			if p.replay.Send(zmq4.NewMsgFrom(id, nil, seq, e.payload)) != nil {
				break // the client is gone; ROUTER drops the rest anyway
			}
		}
		_ = p.replay.Send(zmq4.NewMsgFrom(id, nil, endSeq, nil))
	}
}

// Close closes the sockets and waits for the replay server to stop.
// Batches not yet on the wire may be lost, as with vLLM's linger of 0.
// Closing twice returns nil; closing a nil Publisher returns ErrInvalid.
func (p *Publisher) Close() error {
	if p == nil {
		return fmt.Errorf("%w: Close of a nil Publisher", ErrInvalid)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	err := closeSocket(p.pub)
	if p.replay != nil {
		if e := closeSocket(p.replay); err == nil {
			err = e
		}
	}
	p.wg.Wait()
	return err
}

// closeSocket closes a socket. zmq4 reports connections the peer or its
// reaper closed first as net.ErrClosed; those are closed all the same.
func closeSocket(s zmq4.Socket) error {
	if err := s.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("zmq: close: %w", err)
	}
	return nil
}
