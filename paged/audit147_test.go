package paged_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// Tests of the ninety-ninth mutation round (docs/testing.md): the KV
// cache groups' tables, lookup and checks (paged/groups.go); the internal
// ones are in audit147_internal_test.go.

// a147HighestFirst is an eviction policy that gives up its highest block
// first: the blocks a pool hands out in order to a fresh manager's first
// admission, group by group, are given up last group first.
type a147HighestFirst struct{ ids []allocator.BlockID }

func (p *a147HighestFirst) Insert(id allocator.BlockID) { p.ids = append(p.ids, id) }
func (p *a147HighestFirst) Remove(id allocator.BlockID) {
	if k := slices.Index(p.ids, id); k >= 0 {
		p.ids = slices.Delete(p.ids, k, k+1)
	}
}
func (p *a147HighestFirst) Victim() (allocator.BlockID, bool) {
	if len(p.ids) == 0 {
		return 0, false
	}
	id := slices.Max(p.ids)
	p.Remove(id)
	return id, true
}
func (p *a147HighestFirst) Len() int                           { return len(p.ids) }
func (p *a147HighestFirst) Contains(id allocator.BlockID) bool { return slices.Contains(p.ids, id) }

// TestAudit147WindowHitAsksEveryGroupOfItsClass: two window groups of one
// window form one class, whose hit needs each block in both. A's blocks
// are cached when it finishes (group 1's first two on the low retention
// shelf, as group 2's, the last two in the policy); C's admission takes
// the shelf's four and, from the policy, group 2's last two only, so a
// second A, allowed a full hit, finds group 1's window blocks but not
// group 2's: a miss, every block its own, not a hit of four blocks whose
// group-2 row names blocks the pool no longer holds.
func TestAudit147WindowHitAsksEveryGroupOfItsClass(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 13,
		Policy: func(int) eviction.Policy { return &a147HighestFirst{} },
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.SlidingWindow, Window: 8}}})
	require.NoError(t, err)
	prompt := seqOf(1, 16)
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	var tables [3][]allocator.BlockID
	for g := range 3 {
		tables[g], err = m.TableGroup(a, g)
		require.NoError(t, err)
		tables[g] = slices.Clone(tables[g])
	}
	require.NoError(t, m.Free(a))
	m.EndStep()
	c, _, err := m.Create(seqOf(1000, 8), nil)
	require.NoError(t, err)
	var taken []allocator.BlockID
	for g := range 3 {
		tb, err := m.TableGroup(c, g)
		require.NoError(t, err)
		taken = append(taken, tb...)
	}
	require.Subset(t, taken, tables[2], "C took every block of A's group 2")
	require.NotContains(t, taken, tables[1][2])
	require.NotContains(t, taken, tables[1][3])
	require.NoError(t, m.Free(c))
	m.EndStep()
	b, cached, err := m.Create(prompt, &paged.SeqOptions{AllowFullHit: true})
	require.NoError(t, err)
	require.Zero(t, cached, "group 2 holds none of the window's blocks: a miss")
	for g := range 3 {
		tb, err := m.TableGroup(b, g)
		require.NoError(t, err)
		require.Len(t, tb, 4, "group %d", g)
		require.NotContains(t, tb, allocator.BlockID(0), "group %d: a miss computes every block", g)
	}
	require.NoError(t, m.Check())
}
