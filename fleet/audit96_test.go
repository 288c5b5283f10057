package fleet

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The fiftieth mutation round (docs/testing.md, session 33): the Index's
// registry, retries and writes.

// a96Backend is Memory with faults set by a test: lose makes the next
// Update answer ErrIndexLost after replacing the index with an empty one
// (a Redis flushed or restarted); alwaysLost makes every call after the
// first Attach answer ErrIndexLost; failServers makes the next registry
// reads fail, failUpdates the next Updates (plain errors, neither a
// conflict nor a loss); badID makes Register answer the ID before the
// one it gave (another server's, as the registry lists it). updates
// counts the Updates asked for. unapplied makes the failed Updates not
// reach the index.
type a96Backend struct {
	*Memory
	t                                  *testing.T
	lose, alwaysLost, badID, unapplied bool
	failServers, failUpdates           int
	updates                            int
}

var errA96 = errors.New("a96: backend write failed")

func (b *a96Backend) Update(server ServerID, old, next StreamState, clear bool, events []paged.Event) (StreamState, error) {
	b.updates++
	switch {
	case b.alwaysLost:
		return StreamState{}, ErrIndexLost
	case b.lose:
		b.lose, b.Memory = false, mustMemory(b.t, 64)
		return StreamState{}, ErrIndexLost
	case b.failUpdates > 0:
		b.failUpdates--
		// The write may or may not have reached the index: here it did,
		// unless unapplied.
		if !b.unapplied {
			b.Memory.Update(server, old, next, clear, events)
		}
		return StreamState{}, errA96
	}
	return b.Memory.Update(server, old, next, clear, events)
}

func (b *a96Backend) Servers(dst []ServerRecord) ([]ServerRecord, error) {
	if b.failServers > 0 {
		b.failServers--
		return nil, errA96
	}
	return b.Memory.Servers(dst)
}

func (b *a96Backend) Register(name string, init StreamState) (ServerID, StreamState, error) {
	id, st, err := b.Memory.Register(name, init)
	if b.badID && err == nil && id > 0 {
		return id - 1, st, nil // another server's
	}
	return id, st, err
}

func a96Index(t *testing.T, b *a96Backend, clk *fakeClock) *Index {
	t.Helper()
	b.t = t
	if b.Memory == nil {
		b.Memory = mustMemory(t, 64)
	}
	x, err := New(Config{Backend: b, Now: clk.now, TTL: time.Minute})
	require.NoError(t, err)
	return x
}

func a96Servers(t *testing.T, x *Index) map[string]ServerStatus {
	t.Helper()
	st, err := x.Servers(nil)
	require.NoError(t, err)
	m := make(map[string]ServerStatus)
	for _, s := range st {
		if s.Name != "" {
			m[s.Name] = s
		}
	}
	return m
}

// TestAudit96IndexLossKeepsTheServers: after the backend loses its index,
// the next call attaches again and registers the servers the router knew,
// partial, stamped seen now, with their layouts; a failed registry read
// on the way keeps them for the call after (M2153-M2155, M2160).
func TestAudit96IndexLossKeepsTheServers(t *testing.T) {
	for _, failRead := range []bool{false, true} {
		clk := &fakeClock{t: time.Unix(1000, 0)}
		b := &a96Backend{}
		x := a96Index(t, b, clk)
		layout := LayoutOf(paged.Config{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}})
		require.NoError(t, x.SetLayout("a", layout))
		require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}))
		clk.t = clk.t.Add(10 * time.Second)
		b.lose = true
		if failRead {
			b.failServers = 1
			require.ErrorIs(t, x.Apply("b", []paged.Event{stored(2, paged.Device, 2)}), errA96)
			clk.t = clk.t.Add(time.Second)
			require.NoError(t, x.Heartbeat("b"))
		} else {
			require.NoError(t, x.Apply("b", []paged.Event{stored(2, paged.Device, 2)}))
		}
		got := a96Servers(t, x)
		require.Contains(t, got, "a", "failRead %v", failRead)
		require.Contains(t, got, "b")
		assert.True(t, got["a"].Partial)
		assert.Equal(t, layout.String(), got["a"].Layout, "failRead %v", failRead)
		assert.Equal(t, clk.t, got["a"].LastSeen, "failRead %v: a is stamped when registered again", failRead)
		assert.EqualValues(t, 1, x.Stats().Losses)
	}
}

// TestAudit96LostIsRetriedOnce: a backend that answers every call with
// ErrIndexLost is attached again once per call, not once per attempt
// (M2150).
func TestAudit96LostIsRetriedOnce(t *testing.T) {
	b := &a96Backend{}
	x := a96Index(t, b, &fakeClock{t: time.Unix(1000, 0)})
	b.alwaysLost = true
	require.ErrorIs(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}), ErrIndexLost)
	assert.EqualValues(t, 2, x.Stats().Losses)
	assert.Equal(t, 2, b.updates)
}

// TestAudit96OwnerChangedIsRetried: a write that finds the server's ID
// given to a new life (another router unregistered and reclaimed it under
// the same name) reads the registry again and applies the events on the
// new life (M2151).
func TestAudit96OwnerChangedIsRetried(t *testing.T) {
	b := &otherRouter{Memory: mustMemory(t, 64)}
	x, err := New(Config{Backend: b})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	b.server, b.write = 0, func(st StreamState) StreamState { st.Life++; return st }
	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}))
	assert.Equal(t, 1, lookup(t, x, 2)[0].Blocks)
	assert.EqualValues(t, 1, x.Stats().Conflicts)
}

// TestAudit96RegisterChecksTheRegistry: a backend that answers an ID its
// registry does not list is refused, not believed (M2162).
func TestAudit96RegisterChecksTheRegistry(t *testing.T) {
	b := &a96Backend{}
	x := a96Index(t, b, &fakeClock{t: time.Unix(1000, 0)})
	_, err := x.Register("a")
	require.NoError(t, err)
	b.badID = true
	_, err = x.Register("b")
	assert.ErrorContains(t, err, "which the registry does not list")
}

// TestAudit96RegistryAndCounts: Register stamps a new server seen; a
// server another router registered can be unregistered here, which marks
// its ID expired; Stats counts the blocks applied (M2168-M2170, M2179).
func TestAudit96RegistryAndCounts(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	m := mustMemory(t, 64)
	x, err := New(Config{Backend: m, Now: clk.now})
	require.NoError(t, err)
	y, err := New(Config{Backend: m, Now: clk.now}) // another router
	require.NoError(t, err)
	_, err = x.Register("a")
	require.NoError(t, err)
	assert.Equal(t, clk.t, a96Servers(t, x)["a"].LastSeen)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2, 3)}))
	assert.EqualValues(t, 3, x.Stats().Blocks)

	require.NoError(t, y.Apply("b", []paged.Event{stored(1, paged.Device, 4)}))
	require.NoError(t, x.Unregister("b"))
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Empty(t, st[1].Name)
	assert.True(t, st[1].Expired, "a freed ID is expired")
}

// TestAudit96FailedWriteMakesTheServerUnsure: a write that failed (neither
// a conflict nor a loss) may have reached the index or not: the next
// write of the server clears it first and marks it partial (M2177,
// M2180).
func TestAudit96FailedWriteMakesTheServerUnsure(t *testing.T) {
	b := &a96Backend{}
	x := a96Index(t, b, &fakeClock{t: time.Unix(1000, 0)})
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	b.failUpdates = 1
	require.ErrorIs(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}), errA96)
	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}))
	assert.True(t, a96Servers(t, x)["a"].Partial)
	// The failed write had reached the index (its state moved on): the
	// retry finds its events applied and adds none after the clear.
	assert.Equal(t, 0, lookup(t, x, 1)[0].Blocks, "cleared")
	assert.Equal(t, 0, lookup(t, x, 2)[0].Blocks, "cleared")
}

// TestAudit96HeartbeatOfASilentServer: a server silent past its TTL that
// sends a heartbeat has its blocks cleared (they may be gone), is marked
// partial and counts as expired (M2181, M2182).
func TestAudit96HeartbeatOfASilentServer(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x := a96Index(t, &a96Backend{}, clk)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(2 * time.Minute)
	require.NoError(t, x.Heartbeat("a"))
	assert.Equal(t, 0, lookup(t, x, 1)[0].Blocks)
	assert.True(t, a96Servers(t, x)["a"].Partial)
	assert.EqualValues(t, 1, x.Stats().Expired)
}

// a96Counting counts the Updates an Index asks of an otherRouter.
type a96Counting struct {
	*otherRouter
	updates int
}

func (b *a96Counting) Update(server ServerID, old, next StreamState, clear bool, events []paged.Event) (StreamState, error) {
	b.updates++
	return b.otherRouter.Update(server, old, next, clear, events)
}

// TestAudit96RetryOfArrivedEventsWritesNothing: a write that conflicts
// because its events reached the index meanwhile (the state the backend
// has is past them, stamped just now) is not written again on the retry
// (M2176).
func TestAudit96RetryOfArrivedEventsWritesNothing(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := &a96Counting{otherRouter: &otherRouter{Memory: mustMemory(t, 64)}}
	x, err := New(Config{Backend: b, Now: clk.now, TTL: time.Minute})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	b.updates = 0
	b.server, b.write = 0, func(st StreamState) StreamState {
		st.Last, st.Seen = 2, clk.t.UnixNano()
		return st
	}
	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}))
	assert.Equal(t, 1, b.updates, "the retry found its events applied")
	assert.EqualValues(t, 1, x.Stats().Duplicates)
}
