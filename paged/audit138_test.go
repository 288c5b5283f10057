package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// ckpt138 builds a manager over groups, caches a checkpoint after the 16
// tokens of seqOf(1, 16) (two sequences branching there) and frees them.
func ckpt138(t *testing.T, cfg paged.Config) *paged.Manager {
	t.Helper()
	m, err := paged.New(cfg)
	require.NoError(t, err)
	var ids []paged.SeqID
	for _, tail := range []int32{1000, 2000} {
		id, _, err := m.Create(append(seqOf(1, 16), tail, tail+1, tail+2, tail+3, tail+4), nil)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Len(t, m.TakeCheckpoints(nil), len(cfg.Groups)-1, "one checkpoint per state group")
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	m.TakeCopies(nil)
	require.NoError(t, m.Check())
	return m
}

// TestAudit138TwoStateGroupsFromTheHost: a checkpoint of two state groups
// of different sizes, offloaded to the host, is onboarded page by page
// into its own group at its own index, and is then a device hit: the next
// sequence sharing the prefix onboards nothing and copies each group's
// pages into its own state pages, in order.
func TestAudit138TwoStateGroupsFromTheHost(t *testing.T) {
	groups := []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.State, Pages: 3}}
	m := ckpt138(t, paged.Config{BlockSize: 4, NumBlocks: 61, HostBlocks: 64, Groups: groups})
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	m.TakeSwaps(nil)
	hit := func(tail int32) (paged.SeqID, map[allocator.BlockID]allocator.BlockID) {
		id, err := m.Add(append(seqOf(1, 16), tail), nil)
		require.NoError(t, err)
		cached, err := m.Admit(id)
		require.NoError(t, err)
		require.Equal(t, 16, cached)
		require.NoError(t, m.Check())
		copies := map[allocator.BlockID]allocator.BlockID{}
		for _, c := range m.TakeCopies(nil) {
			copies[c.Dst] = c.Src
		}
		return id, copies
	}
	var onboarded [3][]allocator.BlockID
	c, _ := hit(3000)
	for _, d := range m.TakeSwaps(nil) {
		if d.Kind == paged.Onboard {
			onboarded[d.Group] = append(onboarded[d.Group], d.Dst)
		}
	}
	for g, want := range []int{4, 2, 3} {
		require.Len(t, onboarded[g], want, "group %d's onboards", g)
	}
	require.NoError(t, m.Free(c))
	d, copies := hit(4000)
	for _, s := range m.TakeSwaps(nil) {
		assert.NotEqual(t, paged.Onboard, s.Kind, "the checkpoint is on the device now")
	}
	for g := 1; g <= 2; g++ {
		own, err := m.TableGroup(d, g)
		require.NoError(t, err)
		require.Len(t, own, groups[g].Pages)
		for j, b := range own {
			assert.Equal(t, onboarded[g][j], copies[b], "group %d's page %d is copied from the block it was onboarded into", g, j)
		}
	}
}

// TestAudit138ReadmissionAsksNoCheckpointOfItsOwn: a sequence that shared
// nothing at its first admission (its branch point is 0) has no checkpoint
// to ask for; readmitted after a preemption, its lookup stops at a miss
// past its own cached blocks, which is no branch point: no checkpoint is
// asked there.
func TestAudit138ReadmissionAsksNoCheckpointOfItsOwn(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 24,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	id, cached, err := m.Create(seqOf(1, 17), nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	require.Empty(t, m.TakeCheckpoints(nil), "nothing shared, no branch point")
	require.NoError(t, m.Append(id, seqOf(100, 8)...))
	require.Empty(t, m.TakeCheckpoints(nil))
	require.NoError(t, m.Preempt(id))
	// Another sequence takes the free blocks and one more: the evicted
	// block is the sequence's last, so the lookup stops at a miss inside
	// its own blocks.
	st := m.Stats()
	b, _, err := m.Create(seqOf(1000, 4*(st.FreeBlocks-2)+1), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(b))
	cached, err = m.Admit(id)
	require.NoError(t, err)
	require.Zero(t, cached, "no checkpoint of its own, so no hit")
	assert.Empty(t, m.TakeCheckpoints(nil), "a readmission's own blocks are no branch point")
	require.NoError(t, m.Check())
}

// TestAudit138CheckpointOnBothTiersListedOnce: a checkpoint of two state
// groups whose second group's page the host gave up is taken again, and
// the first group's pages, still on the host, are committed on the device
// too; a snapshot lists each group's checkpoint once, on the device, as
// the events say (a BlockStored for one, a BlockMoved back for the
// other), not again for the host copy of page 0.
func TestAudit138CheckpointOnBothTiersListedOnce(t *testing.T) {
	groups := []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.State, Pages: 1}}
	m := ckpt138(t, paged.Config{BlockSize: 4, NumBlocks: 41, HostBlocks: 3, Events: 4096, Groups: groups})
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	// One more full block through the host: it gives up the oldest page,
	// group 2's.
	id, _, err := m.Create(seqOf(int(next), 5), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	next += 10
	flushDevice(t, m, &next)
	for g, want := range map[int]int{1: 2, 2: 0} {
		st, err := m.TierStatsGroup(g)
		require.NoError(t, err)
		require.Equal(t, want, st.HostCached, "group %d on the host", g)
	}
	m.DrainEvents(nil)
	for _, tail := range []int32{5000, 6000} {
		_, _, err := m.Create(append(seqOf(1, 16), tail, tail+1, tail+2, tail+3, tail+4), nil)
		require.NoError(t, err)
	}
	require.Len(t, m.TakeCheckpoints(nil), 2, "taken again: group 2's is missing")
	st, err := m.TierStatsGroup(1)
	require.NoError(t, err)
	require.Equal(t, 2, st.HostCached, "group 1's pages are on both tiers")
	var snap paged.Snapshot
	require.NoError(t, m.Snapshot(&snap))
	media := map[int][]paged.Medium{}
	for _, b := range snap.Blocks {
		if b.Group > 0 {
			media[b.Group] = append(media[b.Group], b.Medium)
		}
	}
	assert.Equal(t, map[int][]paged.Medium{1: {paged.Device}, 2: {paged.Device}}, media, "each checkpoint once, on the device")
	require.NoError(t, m.Check())
}

// TestAudit138CheckpointViewsAreClipped: each Checkpoint's Pages is a view
// of its own pages only: appending to one (the caller's own use of the
// slice) does not write into the next checkpoint's pages.
func TestAudit138CheckpointViewsAreClipped(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.State, Pages: 1}}})
	require.NoError(t, err)
	for _, tail := range []int32{1000, 2000} {
		_, _, err := m.Create(append(seqOf(1, 16), tail, tail+1, tail+2, tail+3, tail+4), nil)
		require.NoError(t, err)
	}
	cks := m.TakeCheckpoints(nil)
	require.Len(t, cks, 2)
	second := append([]allocator.BlockID(nil), cks[1].Pages...)
	_ = append(cks[0].Pages, 0)
	assert.Equal(t, second, cks[1].Pages, "appending to the first view wrote into the second")
}
