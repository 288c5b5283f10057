package zmq

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Audit127 tests close the gaps the eightieth mutation round found in
// the guard (docs/testing.md, "Mutation testing, eightieth round").

// audit127Frame is a frame: short (1-byte size) when it fits, else long.
func audit127Frame(flags byte, n int) []byte {
	if n < 256 && flags&0x02 == 0 {
		return append([]byte{flags, byte(n)}, make([]byte, n)...)
	}
	return append(binary.BigEndian.AppendUint64([]byte{flags | 0x02}, uint64(n)), make([]byte, n)...)
}

// TestAudit127GuardCountsEveryFrameOfAMessage (M3369, M3371): a
// message's frames count together whatever their size field (short
// frames too), each with frameCost (so endless empty frames are bounded),
// and a command inside a message neither counts toward it nor ends it.
// The guard stops where refFrames (FuzzGuard's reference) says, in reads
// of any size; the same frames as one message short of the bound pass.
func TestAudit127GuardCountsEveryFrameOfAMessage(t *testing.T) {
	repeat := func(n int, f []byte, last []byte) []byte {
		var b []byte
		for range n {
			b = append(b, f...)
		}
		return append(b, last...)
	}
	for _, c := range []struct {
		name        string
		limit       int64
		over, under []byte
	}{
		// 264 counted a 200-byte frame: seven fit 2,048, the eighth
		// does not.
		{"short frames", 2048, repeat(8, audit127Frame(0x01, 200), audit127Frame(0x00, 200)),
			repeat(6, audit127Frame(0x01, 200), audit127Frame(0x00, 200))},
		// 64 counted an empty frame: sixteen fit 1,024, the
		// seventeenth does not.
		{"empty frames", 1024, repeat(16, audit127Frame(0x01, 0), audit127Frame(0x00, 0)),
			repeat(15, audit127Frame(0x01, 0), audit127Frame(0x00, 0))},
		// 564 counted for each 500-byte frame: two do not fit 1,100, with
		// a 10-byte command (alone: 74) between them or not.
		{"a command inside a message", 1100,
			append(append(audit127Frame(0x01, 500), audit127Frame(0x04, 10)...), audit127Frame(0x00, 500)...),
			append(append(audit127Frame(0x01, 500), audit127Frame(0x04, 10)...), audit127Frame(0x00, 400)...)},
	} {
		over := append(hostileGreeting(), c.over...)
		want := refFrames(over, c.limit)
		require.Positive(t, want, "%s: the reference refuses", c.name)
		under := append(hostileGreeting(), c.under...)
		require.Equal(t, -1, refFrames(under, c.limit), "%s: the reference passes", c.name)
		for _, chunk := range []int{1, 3, 1 << 20} {
			passed, err := audit127Scan(over, c.limit, chunk)
			assert.Equal(t, want, passed, "%s, chunk %d: the guard stops at the frame over the bound", c.name, chunk)
			assert.ErrorIs(t, err, ErrMalformed, "%s, chunk %d", c.name, chunk)
			passed, err = audit127Scan(under, c.limit, chunk)
			assert.Equal(t, len(under), passed, "%s, chunk %d: a message within the bound passes", c.name, chunk)
			assert.NoError(t, err, "%s, chunk %d", c.name, chunk)
		}
	}
}

// audit127Scan passes in through a guard of the given bound in chunks and
// returns the bytes passed and the guard's error.
func audit127Scan(in []byte, limit int64, chunk int) (int, error) {
	g := &guardConn{limit: limit, greet: greetingLen}
	g.shaken.Store(true)
	passed := 0
	for i := 0; i < len(in); i += chunk {
		b := in[i:min(i+chunk, len(in))]
		k := g.scan(b)
		passed += k
		if k < len(b) {
			return passed, g.err
		}
	}
	return passed, nil
}

// TestAudit127RefusalClosesTheConnection (M3363): the guard closes the
// connection at the frame over the bound, in the handshake (where the
// library would leave it open) and after it, and the read that follows
// returns the error.
func TestAudit127RefusalClosesTheConnection(t *testing.T) {
	const limit = 1024
	ready := audit127Frame(0x04, 10)
	for _, shaken := range []bool{false, true} {
		var chunks [][]byte
		if shaken {
			chunks = [][]byte{hostileGreeting(), ready, audit127Frame(0x00, limit)}
		} else {
			chunks = [][]byte{hostileGreeting(), audit127Frame(0x04, limit)}
		}
		c := &fakeConn{chunks: chunks, err: io.EOF}
		g := newGuardConn(c, limit)
		buf := make([]byte, 4096)
		var err error
		for err == nil {
			_, err = g.Read(buf)
		}
		require.ErrorIs(t, err, ErrMalformed, "shaken %v", shaken)
		assert.Equal(t, shaken, g.shaken.Load())
		assert.True(t, c.closed.Load(), "shaken %v: the guard closed the connection", shaken)
		g.Close()
	}
}

// TestAudit127PublisherBoundsBothPorts (M3354, M3356, M3359): a
// publisher's MaxMessage bounds what peers send to its PUB and its replay
// port, exactly: a command 1 byte over the 1 KiB bound (961 bytes and
// frameCost) ends the connection at its header, on either port, while
// the handshake is still open (not HandshakeTimeout later); the bound is
// MaxMessage itself.
func TestAudit127PublisherBoundsBothPorts(t *testing.T) {
	noLeaks(t)
	const limit = minMessage
	for _, v := range []int64{minMessage, 1500, maxMessageLimit} {
		got, err := maxMessage(v, "Test")
		require.NoError(t, err)
		assert.Equal(t, v, got, "MaxMessage %d is the bound", v)
	}
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback, MaxMessage: limit})
	require.NoError(t, err)
	defer p.Close()
	header := binary.BigEndian.AppendUint64([]byte{0x06}, limit-frameCost+1)
	for _, ep := range []string{p.Endpoint(), p.ReplayEndpoint()} {
		c, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
		require.NoError(t, err)
		_, err = c.Write(append(hostileGreeting(), header...))
		require.NoError(t, err)
		// Under HandshakeTimeout, after which the connection is closed
		// anyway.
		require.NoError(t, c.SetReadDeadline(time.Now().Add(HandshakeTimeout*3/5)))
		_, err = io.ReadAll(c)
		var ne net.Error
		assert.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: the publisher closes the connection at the header over the bound: %v", ep, err)
		c.Close()
	}
}

// TestAudit127TimerSparesAShakenConnection (M3361): the handshake timer
// closes only a connection whose handshake is not through. The timer is
// re-armed to fire at once (its function is the one newGuardConn gave it)
// after the greeting and a whole frame have passed, and fires three
// times; the connection stays open.
func TestAudit127TimerSparesAShakenConnection(t *testing.T) {
	ready := audit127Frame(0x04, 10)
	c := &fakeConn{chunks: [][]byte{append(hostileGreeting(), ready...)}, err: io.EOF}
	g := newGuardConn(c, DefaultMaxMessage)
	defer g.Close()
	buf := make([]byte, 256)
	n, err := g.Read(buf)
	require.NoError(t, err)
	require.Equal(t, greetingLen+len(ready), n)
	require.True(t, g.shaken.Load())
	deadline := time.Now().Add(5 * time.Second)
	g.timer.Reset(time.Millisecond)
	for fired := 0; fired < 3; {
		require.True(t, time.Now().Before(deadline), "the timer fires")
		time.Sleep(time.Millisecond)
		if !g.timer.Reset(time.Millisecond) { // it had fired
			fired++
		}
	}
	g.timer.Stop()
	assert.False(t, c.closed.Load(), "a connection through its handshake stays open")
}
