package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

func memory(t *testing.T, capacity int) *fleet.Memory {
	m, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: capacity})
	require.NoError(t, err)
	return m
}

func TestMemoryMatchesModel(t *testing.T) {
	for seed := range uint64(5) {
		fleettest.CheckAgainstModel(t, memory(t, 64), seed, 2000)
	}
}

func TestMemoryCountsCopies(t *testing.T) { fleettest.CheckCopies(t, memory(t, 8)) }

func TestMemoryLayouts(t *testing.T) { fleettest.CheckLayouts(t, memory(t, 8), "layouts") }

// TestResyncFromSnapshotIsExact: a server whose events were lost is
// partial until its manager's snapshot rebuilds it; then its scores are
// those of an index that saw every event, and the events the manager
// queued before the snapshot are skipped as replays.
func TestResyncFromSnapshotIsExact(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 4, Events: 256})
	require.NoError(t, err)
	lossy, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	ref, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	feed := func(drop bool) {
		evs := m.DrainEvents(nil)
		require.NoError(t, ref.Apply("gpu", evs))
		if !drop {
			require.NoError(t, lossy.Apply("gpu", evs))
		}
	}
	run := func(first int32, n int) {
		tokens := make([]int32, 4*n+1)
		for i := range tokens {
			tokens[i] = first + int32(i)
		}
		id, _, err := m.Create(tokens, nil) // admitted
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
	}
	run(0, 3)
	feed(false)
	run(100, 3) // these events are lost on the way to lossy
	feed(true)
	run(0, 5)
	feed(false)
	prompt := func(first int32, n int) []paged.Hash {
		tokens := make([]int32, 4*n)
		for i := range tokens {
			tokens[i] = first + int32(i)
		}
		hs, err := m.BlockHashes(nil, tokens, nil)
		require.NoError(t, err)
		return hs
	}
	sc, err := lossy.Lookup(prompt(100, 3), nil)
	require.NoError(t, err)
	assert.True(t, sc[0].Partial)
	assert.Zero(t, sc[0].Blocks)

	run(200, 6) // queued, not drained, when the snapshot is taken
	var snap paged.Snapshot
	m.Snapshot(&snap)
	require.NoError(t, lossy.Resync("gpu", &snap))
	feed(false) // replays for lossy
	for _, p := range [][]paged.Hash{prompt(0, 5), prompt(100, 3), prompt(200, 6)} {
		want, err := ref.Lookup(p, nil)
		require.NoError(t, err)
		got, err := lossy.Lookup(p, nil)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	require.ErrorIs(t, lossy.Resync("gpu", &paged.Snapshot{}), fleet.ErrInvalid, "a snapshot without a block size")
}

// A snapshot of a manager that has emitted no event yet (Seq 0) resyncs a
// server whose stream starts at 1: a first event numbered later means the
// events before it were lost, and the server is partial. Before, the
// index took any number after such a snapshot and claimed to be exact
// while missing the lost events' blocks (or keeping blocks they removed).
func TestResyncAtSeqZeroDetectsLostFirstEvents(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 8, Events: 64})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	var snap paged.Snapshot
	m.Snapshot(&snap)
	require.Zero(t, snap.Seq)
	require.NoError(t, x.Resync("gpu", &snap))
	lost, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
	require.NoError(t, err)
	require.NotEmpty(t, m.DrainEvents(nil)) // lost on the way
	seen, _, err := m.Create([]int32{7, 8, 9}, nil)
	require.NoError(t, err)
	require.NoError(t, x.Apply("gpu", m.DrainEvents(nil)))
	hs, err := m.BlockHashes(nil, []int32{1, 2, 3, 4}, nil)
	require.NoError(t, err)
	sc, err := x.Lookup(hs, nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	assert.True(t, sc[0].Partial, "events 1.. were lost: %+v", sc[0])
	assert.Equal(t, uint64(1), x.Stats().Gaps)
	require.NoError(t, m.Free(lost))
	require.NoError(t, m.Free(seen))
}

// TestResyncRefusesStaleSnapshot: a router that resyncs from a snapshot
// older than the events already applied (a lagging router, while another
// applied the newer events to the shared index) would roll the server
// back to blocks those events removed, and lookups would claim them, not
// marked partial, until the next event showed a gap. It is refused and
// changes nothing; a current snapshot still resyncs.
func TestResyncRefusesStaleSnapshot(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 8, Events: 64})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	tokens := []int32{1, 2, 3, 4, 5}
	hs, err := m.BlockHashes(nil, tokens[:4], nil)
	require.NoError(t, err)
	id, _, err := m.Create(tokens, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	var stale paged.Snapshot
	m.Snapshot(&stale) // holds the prompt's two blocks
	require.NoError(t, x.Apply("gpu", m.DrainEvents(nil)))
	require.NoError(t, m.ResetCache()) // removes them
	require.NoError(t, x.Apply("gpu", m.DrainEvents(nil)))
	before, err := x.Lookup(hs, nil)
	require.NoError(t, err)
	require.Zero(t, before[0].Blocks)

	err = x.Resync("gpu", &stale)
	require.ErrorIs(t, err, fleet.ErrInvalid)
	after, err := x.Lookup(hs, nil)
	require.NoError(t, err)
	assert.Equal(t, before, after, "a refused resync changes nothing")

	var current paged.Snapshot
	m.Snapshot(&current)
	require.NoError(t, x.Resync("gpu", &current))
	sc, err := x.Lookup(hs, nil)
	require.NoError(t, err)
	assert.Zero(t, sc[0].Blocks)
	assert.False(t, sc[0].Partial)
}
