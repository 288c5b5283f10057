package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests written for the eighty-eighth round of mutation testing (session
// 35, docs/testing.md): fleet's Index. Each kills a mutation the rest of
// the package let survive.

// TestAudit135StaleSnapshotAfterAnyStartIsRefused: a server resynced to
// nil takes any number as its next event; once it took events 5-7, a
// snapshot at event 3 is stale and refused, as after a stream started at
// 1 (M3659 left the any-start mark set after the first event, and the
// stale snapshot was taken).
func TestAudit135StaleSnapshotAfterAnyStartIsRefused(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, x.Resync("a", nil))
	require.NoError(t, x.Apply("a", []paged.Event{stored(5, paged.Device, 1), stored(6, paged.Device, 2), stored(7, paged.Device, 3)}))
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 8, Events: 64})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	m.DrainEvents(nil)
	snap := &paged.Snapshot{}
	require.NoError(t, m.Snapshot(snap))
	require.Less(t, snap.Seq, uint64(7))
	require.ErrorIs(t, x.Resync("a", snap), ErrInvalid)
	sc := lookup(t, x, 1, 2, 3)
	assert.Equal(t, 3, sc[0].Blocks, "the refused snapshot changed nothing")
}

// TestAudit135LateEventsNeverReachTheIDsNewOwner: router X applies a's
// events; a goes silent, and router Y, on the same backend, gives a's
// only ID to b. a's next event through X finds the ID of another life:
// X reads the names again and finds no ID for a (b is alive), and b
// never gets a's block (M3655 took b's state as a's own new one and
// wrote a's event over it, into b's entries).
func TestAudit135LateEventsNeverReachTheIDsNewOwner(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	m := mustMemory(t, 64)
	cfg := Config{Backend: m, MaxServers: 1, TTL: time.Minute, Now: clk.now}
	rx, err := New(cfg)
	require.NoError(t, err)
	ry, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, rx.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(2 * time.Minute)
	id, err := ry.Register("b")
	require.NoError(t, err)
	require.Equal(t, ServerID(0), id)
	err = rx.Apply("a", []paged.Event{stored(2, paged.Device, 9)})
	require.ErrorIs(t, err, ErrTooManyServers)
	for _, r := range []*Index{rx, ry} {
		sc, err := r.Lookup(hs(9), nil)
		require.NoError(t, err)
		assert.Equal(t, []Score{{Server: 0, Name: "b"}}, sc)
	}
}
