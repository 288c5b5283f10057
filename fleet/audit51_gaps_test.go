package fleet

import (
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests for the two survivors the sixth round of mutation testing left
// open (M527, M530; docs/testing.md). Both need a second router's write,
// which one Memory backend (one Index) cannot make: otherRouter wraps a
// Memory and makes that write itself, through the Backend interface, as
// a router sharing a Redis would.

// otherRouter is a Backend whose next Update of server `server` is
// preceded by another router's write of `write` applied to the state it
// finds (so the Index's compare-and-set fails with ErrConflict), and
// whose Lookup reports that server's state with `dirty` set (another
// router's split write in progress).
type otherRouter struct {
	*Memory
	server ServerID
	write  func(StreamState) StreamState // nil: no write
	dirty  bool
}

func (b *otherRouter) Update(server ServerID, old, next StreamState, clear bool, events []paged.Event) (StreamState, error) {
	if w := b.write; w != nil && server == b.server {
		b.write = nil
		recs, err := b.Memory.Servers(nil)
		if err != nil {
			return StreamState{}, err
		}
		cur := recs[server].State
		theirs := w(cur)
		theirs.Gen = cur.Gen + 1
		if _, err := b.Memory.Update(server, cur, theirs, false, nil); err != nil {
			return StreamState{}, err
		}
	}
	return b.Memory.Update(server, old, next, clear, events)
}

func (b *otherRouter) Lookup(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error) {
	return b.dirtied(len(states))(b.Memory.Lookup(hashes, words, dst, states))
}

func (b *otherRouter) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error) {
	return b.dirtied(len(states))(b.Memory.LookupAll(hashes, words, dst, states))
}

// dirtied returns a function that marks the server's state dirty in a
// lookup's answer (states appended from base), when b.dirty is set.
func (b *otherRouter) dirtied(base int) func([]uint64, []StreamState, error) ([]uint64, []StreamState, error) {
	return func(dst []uint64, states []StreamState, err error) ([]uint64, []StreamState, error) {
		if err == nil && b.dirty && base+int(b.server) < len(states) {
			states[base+int(b.server)].Dirty = true
		}
		return dst, states, err
	}
}

// heartbeatAfterOtherWrite builds an Index with a 60 s TTL over an
// otherRouter, has server "a" send an event, and 45 s later a heartbeat
// before which the other router writes a's state with write(clk) (a
// compare-and-set conflict for the heartbeat's first write).
func heartbeatAfterOtherWrite(t *testing.T, write func(*fakeClock) func(StreamState) StreamState) (*fakeClock, *otherRouter, *Index) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := &otherRouter{Memory: mustMemory(t, 64)}
	x, err := New(Config{TTL: time.Minute, Now: clk.now, Backend: b})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(45 * time.Second)
	b.server, b.write = 0, write(clk)
	require.NoError(t, x.Heartbeat("a"))
	require.Nil(t, b.write, "the other router's write was made")
	return clk, b, x
}

// TestAudit51HeartbeatAfterAnOldStampWritesIt (M527): a heartbeat whose
// write fails because another router changed the server's state without
// refreshing its stamp (a clear, a layout: Seen kept as it was) writes
// again when that stamp is older than half the TTL, so the server does
// not expire a little later though it beat in time. The other router's
// stamp here is 45 s old under a 60 s TTL: under M527 (skip the write
// until a whole TTL has passed) the heartbeat returned without writing,
// and 20 s later the server was expired, 65 s after a stamp it had
// refreshed 20 s before.
func TestAudit51HeartbeatAfterAnOldStampWritesIt(t *testing.T) {
	// Another router rewrites a's state keeping its 45 s old stamp.
	clk, b, x := heartbeatAfterOtherWrite(t, func(clk *fakeClock) func(StreamState) StreamState {
		return func(st StreamState) StreamState { return st }
	})
	recs, err := b.Memory.Servers(nil)
	require.NoError(t, err)
	assert.Equal(t, clk.t.UnixNano(), recs[0].State.Seen,
		"the heartbeat's stamp is in the backend (another router's Index reads it)")
	clk.t = clk.t.Add(20 * time.Second)
	sc := lookup(t, x, 1)
	assert.Equal(t, 1, sc[0].Blocks, "a beat 20 s ago: not expired")
	assert.False(t, sc[0].Partial)
	assert.Equal(t, uint64(0), x.Stats().Expired)
}

// TestAudit51HeartbeatAfterAFreshStampSkipsTheWrite: the other side of
// the rule M527 moves: a stamp another router wrote within half the TTL
// is left as it is (a write would only fail that router's next write).
func TestAudit51HeartbeatAfterAFreshStampSkipsTheWrite(t *testing.T) {
	var fresh int64
	_, b, _ := heartbeatAfterOtherWrite(t, func(clk *fakeClock) func(StreamState) StreamState {
		fresh = clk.t.Add(-10 * time.Second).UnixNano()
		return func(st StreamState) StreamState { st.Seen = fresh; return st }
	})
	recs, err := b.Memory.Servers(nil)
	require.NoError(t, err)
	assert.Equal(t, fresh, recs[0].State.Seen, "a stamp 10 s old is not written again")
}

// TestAudit51DirtyServerScoresNothing (M530): a server whose state reads
// dirty at the lookup (another router's split write in progress, or left
// by a router that died mid-write) may have entries whose removals are
// not written yet: its score claims no block, and it is partial. The
// other server, read clean in the same lookup, keeps its score. Under
// M530 a's score claimed the 2 blocks of its half-written entries.
func TestAudit51DirtyServerScoresNothing(t *testing.T) {
	b := &otherRouter{Memory: mustMemory(t, 64)}
	x, err := New(Config{Backend: b})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1, 2)}))
	sc := lookup(t, x, 1, 2)
	require.Equal(t, 2, sc[0].Blocks)
	require.Equal(t, 2, sc[1].Blocks)

	b.server, b.dirty = 0, true
	sc = lookup(t, x, 1, 2)
	assert.Equal(t, 0, sc[0].Blocks, "a read dirty: no block claimed")
	assert.Equal(t, 0, sc[0].Device)
	assert.Zero(t, sc[0].Value)
	assert.True(t, sc[0].Partial, "a read dirty is partial")
	assert.Equal(t, 2, sc[1].Blocks, "b read clean keeps its run")
	assert.False(t, sc[1].Partial)

	b.dirty = false
	sc = lookup(t, x, 1, 2)
	assert.Equal(t, 2, sc[0].Blocks, "the write completed: a scores again")
}
