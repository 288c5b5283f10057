package zmq

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// DefaultMaxMessage bounds the bytes of one message a Publisher or
// Subscriber accepts from a peer when the config's MaxMessage is 0:
// 64 MiB, far above a KV event batch (a batch of 10,000 16-token blocks
// with 32-byte hashes is about 1.3 MB).
const DefaultMaxMessage = 64 << 20

// HandshakeTimeout bounds the ZeroMQ handshake of every connection: a
// connection whose handshake is not through within it is closed (a peer
// that does not greet, or whose greeting the library refused: the library
// leaves such connections open).
const HandshakeTimeout = 5 * time.Second

// frameCost is what each frame of a message counts against the message
// bound besides its bytes (the frame's slice and allocation), so a
// message of endless empty frames is bounded too.
const frameCost = 64

// greetingLen is the size of the ZMTP 3 greeting that opens a connection.
const greetingLen = 64

// The transport the go-zeromq library uses reads whatever length a
// peer's frame header announces and allocates it in one piece, and does
// the handshake of a new connection in its accept loop without a
// deadline: 73 bytes to a Publisher's PUB or replay port made it allocate
// 32 TiB (a fatal, unrecoverable out-of-memory error), and one idle
// connection stopped every later subscriber from connecting. guarded
// endpoints go through a transport whose connections check each frame
// header before the library sees it and give the handshake a deadline.

var (
	guardMu    sync.Mutex
	guardNames = map[string]bool{}
)

// guard rewrites a tcp:// or ipc:// endpoint to go through a transport
// whose connections refuse messages over limit bytes and bound the
// handshake. Other endpoints (inproc://) are returned as they are.
func guard(endpoint string, limit int64) (string, error) {
	scheme, addr, ok := strings.Cut(endpoint, "://")
	if !ok {
		return endpoint, nil // the library reports the bad address
	}
	var network string
	switch scheme {
	case "tcp":
		network = "tcp"
	case "ipc":
		network = "unix"
	default:
		return endpoint, nil
	}
	// The library finds a transport by the endpoint's scheme: one
	// registration per network and bound.
	name := fmt.Sprintf("pagedkv-%s-%d", scheme, limit)
	guardMu.Lock()
	defer guardMu.Unlock()
	if !guardNames[name] {
		if err := zmq4.RegisterTransport(name, guardTransport{inner: transport.New(network), limit: limit}); err != nil {
			return "", fmt.Errorf("zmq: register transport: %w", err)
		}
		guardNames[name] = true
	}
	return name + "://" + addr, nil
}

// minMessage and maxMessageLimit bound MaxMessage: below 1 KiB the
// handshake's own commands may not fit; 1 PiB is beyond any batch.
const (
	minMessage      = 1 << 10
	maxMessageLimit = 1 << 50
)

// guardEndpoints checks a config's MaxMessage (named what) and guards
// its endpoint and replay endpoint (when not empty).
func guardEndpoints(maxMsg int64, what, endpoint, replay string) (string, string, error) {
	limit, err := maxMessage(maxMsg, what)
	if err != nil {
		return "", "", err
	}
	if endpoint, err = guard(endpoint, limit); err != nil {
		return "", "", err
	}
	if replay != "" {
		if replay, err = guard(replay, limit); err != nil {
			return "", "", err
		}
	}
	return endpoint, replay, nil
}

// maxMessage returns the bound a config's MaxMessage asks for.
func maxMessage(v int64, what string) (int64, error) {
	switch {
	case v != 0 && (v < minMessage || v > maxMessageLimit):
		return 0, fmt.Errorf("%w: %s.MaxMessage %d must be 0 or in [2^10, 2^50]", ErrInvalid, what, v)
	case v == 0:
		return DefaultMaxMessage, nil
	}
	return v, nil
}

type guardTransport struct {
	inner transport.Transport
	limit int64
}

func (t guardTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := t.inner.Dial(ctx, d, addr)
	if err != nil {
		return nil, err
	}
	return newGuardConn(c, t.limit), nil
}

func (t guardTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := t.inner.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return guardListener{Listener: l, limit: t.limit}, nil
}

func (t guardTransport) Addr(ep string) (string, error) { return t.inner.Addr(ep) }

type guardListener struct {
	net.Listener
	limit int64
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGuardConn(c, l.limit), nil
}

// guardConn passes a peer's bytes through a ZMTP frame parser: the
// greeting, then frames of a flags byte, a 1- or 8-byte size and a body.
// A size that would take the current message (its frames so far, each
// counted with frameCost) over limit ends the connection before the size
// reaches the library. A timer closes the connection unless the greeting
// and the first frame (the handshake's READY command) are through within
// HandshakeTimeout.
type guardConn struct {
	net.Conn
	limit int64
	timer *time.Timer

	greet     int         // greeting bytes still to pass
	framed    bool        // a frame header after the greeting was read
	shaken    atomic.Bool // the handshake is through: the timer stopped
	flags     byte        // the current frame's flags, while its header is read
	have      int         // header bytes read of the current frame (0: none)
	need      int         // header bytes of the current frame: 1 + size bytes
	size      uint64      // the size read so far
	body      uint64      // body bytes of the current frame still to pass
	msg       int64       // what the current message's earlier frames count
	err       error       // the error every later read returns
	closeOnce sync.Once
}

func newGuardConn(c net.Conn, limit int64) *guardConn {
	g := &guardConn{Conn: c, limit: limit, greet: greetingLen}
	g.timer = time.AfterFunc(HandshakeTimeout, func() {
		if !g.shaken.Load() {
			g.close()
		}
	})
	return g
}

func (c *guardConn) close() { c.closeOnce.Do(func() { c.Conn.Close() }) }

// Close closes the connection and stops the handshake timer.
func (c *guardConn) Close() error {
	if c.timer != nil {
		c.timer.Stop()
	}
	var err error
	c.closeOnce.Do(func() { err = c.Conn.Close() })
	return err
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if k := c.scan(p[:n]); k < n {
		c.close()
		return k, nil // the error comes with the next read
	}
	if err != nil && !c.shaken.Load() {
		c.close() // the library does not close a connection whose handshake failed
	}
	return n, err
}

// scan follows the frames in b and returns how many bytes of b may pass:
// len(b), or the offset of the last size byte of a frame over the bound
// (c.err is then set).
func (c *guardConn) scan(b []byte) int {
	for i := 0; i < len(b); {
		switch {
		case c.greet > 0:
			k := min(c.greet, len(b)-i)
			c.greet -= k
			i += k
		case c.body > 0:
			k := min(c.body, uint64(len(b)-i))
			c.body -= k
			i += int(k)
		case c.have == 0: // a frame's flags
			c.flags, c.have, c.size, c.need = b[i], 1, 0, 2
			if c.flags&0x02 != 0 { // long frame: 8-byte size
				c.need = 9
			}
			i++
		default: // a size byte
			c.size = c.size<<8 | uint64(b[i])
			if c.have++; c.have < c.need {
				i++
				continue
			}
			// A frame joins the earlier frames of its message; a command
			// stands alone.
			base := c.msg
			if c.flags&0x04 != 0 {
				base = 0
			}
			if c.size > uint64(c.limit) || uint64(base)+c.size+frameCost > uint64(c.limit) {
				c.err = fmt.Errorf("%w: a peer sent a %d-byte frame, over the %d-byte message bound (MaxMessage)", ErrMalformed, c.size, c.limit)
				if c.shaken.Load() {
					// As a read error of the connection (a net.Error, no
					// timeout), so the library drops it and a subscriber
					// redials: any other error left the socket without a
					// connection for good. Not in the handshake, whose
					// failure the library would redial inside the dial.
					c.err = &net.OpError{Op: "read", Err: c.err}
				}
				return i
			}
			c.body, c.have, c.framed = c.size, 0, true
			switch {
			case c.flags&0x04 != 0: // command
			case c.flags&0x01 != 0: // more frames follow
				c.msg += int64(c.size) + frameCost
			default:
				c.msg = 0
			}
			i++
		}
		if c.framed && c.have == 0 && c.body == 0 && !c.shaken.Load() {
			// The greeting and a whole frame are through.
			c.shaken.Store(true)
			if c.timer != nil {
				c.timer.Stop()
			}
		}
	}
	return len(b)
}
