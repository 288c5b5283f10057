package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The sixteenth mutation round (docs/testing.md, session 28): tests of
// the Index's lookup, expiry and registry that the round found missing.
// Each names the mutations it catches.

// a62Backend is Memory with its lookups' answers altered: lost answers
// ErrIndexLost; otherLife reports server 0's state one Life on (its ID
// given to another name by another router between the lookup and the
// registry read that follows it).
type a62Backend struct {
	*Memory
	lost, otherLife bool
}

func (b *a62Backend) alter(dst []uint64, states []StreamState, err error) ([]uint64, []StreamState, error) {
	if b.lost {
		return dst, states, ErrIndexLost
	}
	if err == nil && b.otherLife && len(states) > 0 {
		states[0].Life++
	}
	return dst, states, err
}

func (b *a62Backend) Lookup(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error) {
	return b.alter(b.Memory.Lookup(hashes, words, dst, states))
}

func (b *a62Backend) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error) {
	return b.alter(b.Memory.LookupAll(hashes, words, dst, states))
}

// TestAudit62StaleLifeScoresNothing: the holder sets a lookup reads
// belong to the Life its states show; a server whose ID changed hands
// again by the time the registry is read counts as holding nothing, and
// is partial (M850, M851).
func TestAudit62StaleLifeScoresNothing(t *testing.T) {
	b := &a62Backend{Memory: mustMemory(t, 64)}
	x, err := New(Config{Backend: b})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1, 2)}))
	b.otherLife = true
	sc := lookup(t, x, 1, 2)
	assert.Equal(t, 0, sc[0].Blocks, "bits of another life")
	assert.Equal(t, 0, sc[0].Device)
	assert.True(t, sc[0].Partial)
	assert.Equal(t, 2, sc[1].Blocks, "b is not touched")
	assert.False(t, sc[1].Partial)
}

// TestAudit62DirtyLayoutServerHasNoAffinity: a server read dirty scores
// nothing, and its Affinity, which a layout's scoring would set, is its
// (zero) run too (M856).
func TestAudit62DirtyLayoutServerHasNoAffinity(t *testing.T) {
	b := &otherRouter{Memory: mustMemory(t, 64)}
	x, err := New(Config{Backend: b})
	require.NoError(t, err)
	layout := LayoutOf(paged.Config{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}})
	require.NoError(t, x.SetLayout("a", layout))
	ev := func(seq uint64, g int) paged.Event {
		return paged.Event{Seq: seq, Kind: paged.BlockStored, Hashes: hs(1, 2), Tokens: make([]int32, 4), BlockSize: 2, Group: g}
	}
	require.NoError(t, x.Apply("a", []paged.Event{ev(1, 0), ev(2, 1)}))
	sc := lookup(t, x, 1, 2)
	require.Equal(t, 2, sc[0].Blocks)
	require.Equal(t, 2, sc[0].Affinity)
	b.server, b.dirty = 0, true
	sc = lookup(t, x, 1, 2)
	assert.Equal(t, 0, sc[0].Blocks)
	assert.Equal(t, 0, sc[0].Affinity, "a dirty server's affinity")
	assert.True(t, sc[0].Partial)
}

// TestAudit62LostIndexMarksEveryServerPartial: when the backend's content
// is lost, Lookup answers every server with nothing known and partial,
// without an error, and counts the loss (M861).
func TestAudit62LostIndexMarksEveryServerPartial(t *testing.T) {
	b := &a62Backend{Memory: mustMemory(t, 64)}
	x, err := New(Config{Backend: b})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}))
	b.lost = true
	sc := lookup(t, x, 1)
	require.Len(t, sc, 2)
	for i, s := range sc {
		assert.Equal(t, ServerID(i), s.Server)
		assert.Zero(t, s.Blocks)
		assert.True(t, s.Partial, "server %d", i)
	}
	assert.Equal(t, uint64(1), x.Stats().Losses)
}

// TestAudit62ManyServersHostAndHoles: past 64 servers (several words per
// holder set), a host block extends a run as a device block does, and a
// device block after a server's run ended is not counted (M862, M863).
func TestAudit62ManyServersHostAndHoles(t *testing.T) {
	const n = 130
	x, err := New(Config{MaxServers: n})
	require.NoError(t, err)
	for s := range n {
		evs := []paged.Event{stored(1, paged.Device, 0, 2)}
		if s%2 == 1 {
			evs = append(evs, stored(2, paged.Host, 1))
		}
		require.NoError(t, x.Apply(fmt.Sprint("s", s), evs))
	}
	sc := lookup(t, x, 0, 1, 2)
	for s := range n {
		if s%2 == 1 {
			assert.Equal(t, 3, sc[s].Blocks, "server %d: device, host, device", s)
			assert.Equal(t, 2, sc[s].Device, "server %d", s)
		} else {
			assert.Equal(t, 1, sc[s].Blocks, "server %d: a hole at hash 1", s)
			assert.Equal(t, 1, sc[s].Device, "server %d: the block after the hole", s)
		}
	}
}

// TestAudit62ExpiryRetriesAConflict: a server silent past the TTL is
// expired by the lookup even when another router's write (one that does
// not refresh Seen) makes the first expiry write conflict: the Index
// retries from the state it is given (M872).
func TestAudit62ExpiryRetriesAConflict(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := &otherRouter{Memory: mustMemory(t, 64)}
	x, err := New(Config{Backend: b, TTL: time.Minute, Now: clk.now})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(2 * time.Minute)
	b.server, b.write = 0, func(st StreamState) StreamState { return st }
	sc := lookup(t, x, 1)
	assert.Nil(t, b.write, "the other router wrote")
	assert.Equal(t, 0, sc[0].Blocks, "expired")
	assert.True(t, sc[0].Partial)
	assert.Equal(t, uint64(1), x.Stats().Expired)
	assert.Positive(t, x.Stats().Conflicts)
}

// TestAudit62ServersReportDirtyAndNeverSeen: Servers reports a server
// whose recorded state is dirty (another router's write half done) as
// partial, and an ID freed by Unregister (whose state says it was never
// seen) with a zero LastSeen, not 1970 (M875, M876).
func TestAudit62ServersReportDirtyAndNeverSeen(t *testing.T) {
	b := mustMemory(t, 64)
	x, err := New(Config{Backend: b})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	_, err = x.Register("b")
	require.NoError(t, err)
	require.NoError(t, x.Unregister("b"))
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.False(t, st[0].Partial)
	assert.Empty(t, st[1].Name, "a freed ID")
	assert.True(t, st[1].LastSeen.IsZero(), "a freed ID has not been seen: %v", st[1].LastSeen)

	// Another router's write of a's entries, half done.
	recs, err := b.Servers(nil)
	require.NoError(t, err)
	cur := recs[0].State
	next := cur
	next.Gen, next.Dirty = cur.Gen+1, true
	_, err = b.Update(0, cur, next, false, nil)
	require.NoError(t, err)
	st, err = x.Servers(nil)
	require.NoError(t, err)
	assert.True(t, st[0].Partial, "a dirty server")
}
