package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Affinity follows the server through the index's life cycle: a server
// with a state layout holding group-0 blocks it cannot hit has Affinity
// over Blocks; removals shorten it; once unregistered, the next server
// given its ID (without a layout) inherits neither its layout nor its
// run; a resync rebuilds it.
func TestAudit20AffinityThroughLifeCycle(t *testing.T) {
	cfg := paged.Config{BlockSize: 4, NumBlocks: 64, Events: 1024, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{MaxServers: 1})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("a", fleet.LayoutOf(cfg)))
	prompt := tokens(100, 21)
	id, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	evs := m.DrainEvents(nil)
	require.NoError(t, x.Apply("a", evs))
	hs, err := m.BlockHashes(nil, prompt, nil)
	require.NoError(t, err)
	// A longer request of the family: its branch point is past the
	// checkpoint the first request took at its own end (if any).
	long := append(append([]paged.Hash{}, hs...), paged.Hash{9})
	sc, err := x.Lookup(long, nil)
	require.NoError(t, err)
	require.Equal(t, len(hs), sc[0].Affinity)
	require.LessOrEqual(t, sc[0].Blocks, sc[0].Affinity)

	// Group 0 loses its third block: the run stops there.
	require.NoError(t, x.Apply("a", []paged.Event{{Kind: paged.BlockRemoved, Hashes: hs[2:3], Seq: evs[len(evs)-1].Seq + 1}}))
	sc, err = x.Lookup(long, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, sc[0].Affinity)

	// A resync from the manager rebuilds it (the removal was the
	// test's, not the manager's: start over).
	var snap paged.Snapshot
	m.Snapshot(&snap)
	require.NoError(t, x.Resync("a", nil))
	require.NoError(t, x.Resync("a", &snap))
	sc, err = x.Lookup(long, nil)
	require.NoError(t, err)
	assert.Equal(t, len(hs), sc[0].Affinity)
	assert.False(t, sc[0].Partial)

	// Unregistered, its ID goes to b, which holds the first block.
	require.NoError(t, x.Unregister("a"))
	require.NoError(t, x.Apply("b", []paged.Event{{Kind: paged.BlockStored, Hashes: hs[:1], BlockSize: 4, Tokens: prompt[:4]}}))
	sc, err = x.Lookup(long, nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	assert.Equal(t, "b", sc[0].Name)
	assert.Equal(t, 1, sc[0].Blocks, "b has no layout: its run is its hit")
	assert.Equal(t, 1, sc[0].Affinity)
	require.NoError(t, m.Free(id))
}

// A vLLM engine's groups come in its layers' order: Gemma 3's first
// layer is a sliding window, so its group 0 is the window and its full
// attention group comes after (vLLM's _get_kv_cache_groups_uniform_page_size
// groups layers by spec in the order they appear; LayoutLearner learns
// "window:W full"). Affinity is the run of the full-attention group
// there: the window group's leading blocks are the first to go, and a
// server holding the whole family in its full group, its window blocks
// evicted, was reported an Affinity of 0 (under a hit of 8 before
// that), so the routers' gain never kept such a family together.
func TestAudit20AffinityIsTheFullGroupsRun(t *testing.T) {
	m, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	fleettest.CheckAffinityOfFullGroup(t, "", m)
}
