package zmq

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// hostileGreeting is a ZMTP 3.0 greeting with the NULL mechanism.
func hostileGreeting() []byte {
	g := make([]byte, greetingLen)
	g[0], g[9], g[10] = 0xff, 0x7f, 3
	copy(g[12:], "NULL")
	return g
}

// hugeFrame is a frame header announcing 2^45 bytes (a long command
// frame), with no body.
func hugeFrame() []byte {
	return binary.BigEndian.AppendUint64([]byte{0x06}, 1<<45)
}

// TestAudit11HostilePeersDoNotStopThePublisher runs the hostile peers of
// TestAudit11HostileChild in a child process: before the guard, 73 bytes
// to the replay or PUB port killed the process (the transport allocated
// the 32 TiB a frame header announced: "fatal error: runtime: out of
// memory", which no recover catches), and one idle connection kept every
// later subscriber from connecting.
func TestAudit11HostilePeersDoNotStopThePublisher(t *testing.T) {
	if os.Getenv("PAGEDKV_AUDIT11_CHILD") != "" {
		t.Skip("in the child")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestAudit11HostileChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "PAGEDKV_AUDIT11_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAudit11HostileChild") {
		lines := strings.Split(string(out), "\n")
		t.Fatalf("child: %v\n%s", err, strings.Join(lines[:min(len(lines), 12)], "\n"))
	}
}

// TestAudit11HostileChild is the child's part (skipped unless run by
// TestAudit11HostilePeersDoNotStopThePublisher).
func TestAudit11HostileChild(t *testing.T) {
	if os.Getenv("PAGEDKV_AUDIT11_CHILD") == "" {
		t.Skip("runs as the child of TestAudit11HostilePeersDoNotStopThePublisher")
	}
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback})
	require.NoError(t, err)
	defer p.Close()
	dial := func(endpoint string) net.Conn {
		c, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "tcp://"))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	// A frame announcing 32 TiB, to the replay port and to the PUB port.
	for _, ep := range []string{p.ReplayEndpoint(), p.Endpoint()} {
		c := dial(ep)
		_, err := c.Write(append(hostileGreeting(), hugeFrame()...))
		require.NoError(t, err)
	}
	// A connection that never greets, and one whose greeting the library
	// refuses: both are closed after HandshakeTimeout (the library closed
	// neither, and handshook in its accept loop: the silent one kept every
	// later subscriber out).
	silent, garbage := dial(p.Endpoint()), dial(p.Endpoint())
	_, err = garbage.Write(make([]byte, greetingLen))
	require.NoError(t, err)
	// (The library handshakes one connection at a time: the second is
	// closed a HandshakeTimeout after the first.)
	for _, c := range []net.Conn{silent, garbage} {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(4*HandshakeTimeout)))
		_, err := io.ReadAll(c)
		require.NoError(t, err, "the publisher closes the connection")
	}

	// A subscriber still connects and gets a batch.
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint(), CatchUp: true})
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*HandshakeTimeout)
	defer cancel()
	require.NoError(t, p.AwaitSubscriber(ctx))
	_, err = p.Publish([]paged.Event{{Seq: 1, Kind: paged.AllBlocksCleared}})
	require.NoError(t, err)
	m, err := s.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(0), m.Seq)

	// A publisher that sends the same frame to a subscriber dialing it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(append(hostileGreeting(), hugeFrame()...))
			defer c.Close()
		}
	}()
	s2, err := NewSubscriber(SubscriberConfig{Endpoint: "tcp://" + l.Addr().String()})
	if err == nil { // the dial may fail or the socket redial: either way, no crash
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err = s2.Next(ctx)
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		require.NoError(t, s2.Close())
	}
}

// TestAudit11GuardBoundsMessages: the guard passes frames up to the
// message bound, counting a multi-frame message whole, and ends the
// connection at the header of the frame that would go over, before the
// library reads its size.
func TestAudit11GuardBoundsMessages(t *testing.T) {
	frame := func(flags byte, n int) []byte {
		if n < 256 && flags&0x02 == 0 {
			return append([]byte{flags, byte(n)}, make([]byte, n)...)
		}
		return append(binary.BigEndian.AppendUint64([]byte{flags | 0x02}, uint64(n)), make([]byte, n)...)
	}
	const limit = 2048
	ok := [][]byte{
		frame(0x04, 40),                     // a command
		frame(0x01, 1000), frame(0x00, 900), // one message of two frames
		frame(0x00, limit-frameCost),                // one frame at the bound
		frame(0x01, 0), frame(0x01, 0), frame(0, 0), // empty frames
	}
	var in []byte
	in = append(in, hostileGreeting()...)
	for _, f := range ok {
		in = append(in, f...)
	}
	good := len(in)
	in = append(in, frame(0x01, 1000)...)
	in = append(in, frame(0x00, 1000)...)        // the message goes over here
	for _, chunk := range []int{1, 7, 1 << 20} { // reads of any size
		server, client := net.Pipe()
		g := newGuardConn(server, limit)
		// The writer closes its end when done and the read has a deadline,
		// so a guard that bounds nothing reads to io.EOF and the test
		// fails at once (audit 50: it waited forever for a refusal, 4
		// minutes under M380, until the binary's time limit).
		require.NoError(t, server.SetReadDeadline(time.Now().Add(10*time.Second)))
		go func() {
			defer client.Close()
			for i := 0; i < len(in); i += chunk {
				if _, err := client.Write(in[i:min(i+chunk, len(in))]); err != nil {
					return
				}
			}
		}()
		var got []byte
		buf := make([]byte, 4096)
		var err error
		for err == nil {
			var n int
			n, err = g.Read(buf)
			got = append(got, buf[:n]...)
		}
		client.Close()
		require.ErrorIs(t, err, ErrMalformed, "chunk %d: the guard ends the connection at the frame over the bound, not at the peer's end (%d bytes passed of %d)", chunk, len(got), len(in))
		require.Equal(t, in[:len(got)], got, "chunk %d: passed bytes are the peer's", chunk)
		require.Greater(t, len(got), good+1000, "chunk %d: the frames within the bound pass", chunk)
		require.Less(t, len(got), good+1000+frameCost+9, "chunk %d: the frame over the bound does not", chunk)
	}
}

// TestAudit11MaxMessageOutOfRange: MaxMessage below 1 KiB (the handshake
// would not fit), above 2^50 or negative is refused with ErrInvalid.
func TestAudit11MaxMessageOutOfRange(t *testing.T) {
	for _, v := range []int64{-1, 1, 1023, 1<<50 + 1} {
		_, err := NewPublisher(PublisherConfig{Endpoint: loopback, MaxMessage: v})
		require.ErrorIs(t, err, ErrInvalid, "publisher %d", v)
		_, err = NewSubscriber(SubscriberConfig{Endpoint: loopback, MaxMessage: v})
		require.ErrorIs(t, err, ErrInvalid, "subscriber %d", v)
	}
}

// refFrames parses a peer's bytes whole (greeting, then frames) and
// returns the offset of the last size byte of the first frame that takes
// its message over limit, or -1 if none does (counting as guardConn's doc
// says: a multi-frame message whole, frameCost a frame, a command alone).
func refFrames(b []byte, limit int64) int {
	i := greetingLen
	var msg uint64
	for i < len(b) {
		flags := b[i]
		n := 1
		if flags&0x02 != 0 {
			n = 8
		}
		if i+1+n > len(b) {
			return -1 // the header is cut: nothing announced yet
		}
		var size uint64
		for _, c := range b[i+1 : i+1+n] {
			size = size<<8 | uint64(c)
		}
		base := msg
		if flags&0x04 != 0 {
			base = 0
		}
		if size > uint64(limit) || base+size+frameCost > uint64(limit) {
			return i + n
		}
		if flags&0x04 == 0 {
			if flags&0x01 != 0 {
				msg += size + frameCost
			} else {
				msg = 0
			}
		}
		if size > uint64(len(b)) {
			return -1
		}
		i += 1 + n + int(size)
	}
	return -1
}

// FuzzGuard: whatever a peer sends, in reads of any size, the guard passes
// exactly the bytes before the size byte that completes the first header
// over the bound (all of them when there is none), then fails with
// ErrMalformed, and never panics.
func FuzzGuard(f *testing.F) {
	f.Add([]byte{0x01, 0x05, 1, 2, 3, 4, 5, 0x00, 0x02, 9, 9}, uint16(1024), uint8(3))
	f.Add(append([]byte{0x04, 0x10}, make([]byte, 16)...), uint16(1100), uint8(1))
	f.Add(hugeFrame(), uint16(4096), uint8(0))
	f.Add([]byte{0x03, 0, 0, 0, 0, 0, 0, 0x03, 0xf0, 0x00, 0x00}, uint16(1024), uint8(5))
	// Messages near the bound: two of 600 bytes (each fits), a message of
	// two 480-byte frames then one of 600 (both fit), one of 500 then 500 (does not), a
	// command beside a message.
	long := func(flags byte, n int) []byte {
		return append(binary.BigEndian.AppendUint64([]byte{flags | 0x02}, uint64(n)), make([]byte, n)...)
	}
	f.Add(append(long(0, 600), long(0, 600)...), uint16(1024), uint8(200))
	f.Add(append(append(long(1, 480), long(0, 480)...), long(0, 600)...), uint16(1100), uint8(255))
	f.Add(append(long(1, 500), long(0, 500)...), uint16(1100), uint8(9))
	f.Add(append(long(1, 500), append(long(4, 900), long(0, 400)...)...), uint16(1100), uint8(64))
	f.Fuzz(func(t *testing.T, frames []byte, limit16 uint16, chunk uint8) {
		limit := int64(limit16)
		in := append(hostileGreeting(), frames...)
		want := refFrames(in, limit)
		g := &guardConn{limit: limit, greet: greetingLen}
		g.shaken.Store(true)
		step := int(chunk) + 1
		var passed int
		var err error
		for i := 0; i < len(in) && err == nil; i += step {
			b := in[i:min(i+step, len(in))]
			k := g.scan(b)
			passed += k
			if k < len(b) {
				err = g.err
			}
		}
		if want < 0 {
			if err != nil || passed != len(in) {
				t.Fatalf("no frame over %d: passed %d of %d, err %v", limit, passed, len(in), err)
			}
			return
		}
		if !errors.Is(err, ErrMalformed) || passed != want {
			t.Fatalf("frame over %d at %d: passed %d, err %v", limit, want, passed, err)
		}
	})
}
