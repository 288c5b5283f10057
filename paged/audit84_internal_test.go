package paged

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// Internal tests of the thirty-eighth mutation round (docs/testing.md):
// windows and the retention shelves.

// a84Shelved returns a manager whose low shelf holds blocks (a finished
// windowed sequence's blocks no hit needs) and the first of them.
func a84Shelved(t *testing.T) (*Manager, allocator.BlockID) {
	t.Helper()
	m := shelfManager(t, Group{Kind: SlidingWindow, Window: 2})
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	r := &m.bp.shelves
	require.Positive(t, r.n[shelfLow], "nothing shelved: the test checks nothing")
	require.NoError(t, m.Check())
	return m, r.next[r.sentinel(shelfLow)]
}

// TestAudit84CheckFindsBrokenShelves: Check verifies the shelves' links,
// marks, contents and counts; the exported API builds no broken shelf, so
// each of its tests is shown here on a shelf broken by hand (M1718-M1721:
// a count, a referenced block, a mark, a cycle).
func TestAudit84CheckFindsBrokenShelves(t *testing.T) {
	for _, c := range []struct {
		name    string
		corrupt func(m *Manager, id allocator.BlockID)
		want    string
	}{
		{"count", func(m *Manager, id allocator.BlockID) { m.bp.shelves.n[shelfLow]++ }, "counts"},
		{"claimed", func(m *Manager, id allocator.BlockID) { m.bp.pool.Claim(id) }, "holds no cached content or is referenced"},
		{"mark", func(m *Manager, id allocator.BlockID) { m.bp.shelves.where[id] = shelfHigh }, "badly linked"},
		{"back link", func(m *Manager, id allocator.BlockID) {
			r := &m.bp.shelves
			r.prev[id] = id
		}, "badly linked"},
		{"cycle", func(m *Manager, id allocator.BlockID) {
			r := &m.bp.shelves
			r.next[id], r.prev[id] = id, id
		}, "broken"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, id := a84Shelved(t)
			c.corrupt(m, id)
			done := make(chan error, 1)
			go func() { done <- m.bp.checkShelves() }()
			select {
			case err := <-done:
				require.ErrorContains(t, err, c.want)
			case <-time.After(time.Minute):
				t.Fatal("checkShelves did not return: it follows a cycle for good")
			}
		})
	}
}

// TestAudit84WindowAsLongAsThePositions: once the next position is c =
// W, the window reads positions [1, W]: with one-token blocks block 0 is
// dead and released, with larger blocks it still holds position 1
// (M1690 kept block 0 until c passed W).
func TestAudit84WindowAsLongAsThePositions(t *testing.T) {
	for _, c := range []struct{ w, c, bs, want int }{
		{2, 2, 1, 1}, {3, 3, 1, 1}, {4, 4, 2, 0}, {3, 2, 1, 0}, {3, 4, 1, 2}, {4, 9, 2, 3},
	} {
		require.Equal(t, c.want, windowStart(c.w, c.c, c.bs), "window %d at %d, blocks of %d", c.w, c.c, c.bs)
	}
	m, err := New(Config{BlockSize: 1, NumBlocks: 16})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2}, &SeqOptions{Window: 2})
	require.NoError(t, err)
	require.NoError(t, m.Append(id, 3))
	tab, err := m.Table(id)
	require.NoError(t, err)
	require.Equal(t, nullBlock, tab[0], "block 0 outlived the window: %v", tab)
	require.NotEqual(t, nullBlock, tab[1])
	require.NoError(t, m.Check())
}

// TestAudit84ShelfVictimIsForgotten: a block taken from a shelf for
// reuse was never in the policy (here an LRU that records its Forget
// calls, audit 58's), so a policy that keeps history of
// content outside its set (eviction.Forgetter: LFU's counts, ARC's ghosts)
// must be told its content is gone, or the history carries over to the
// block's next content (M1717).
func TestAudit84ShelfVictimIsForgotten(t *testing.T) {
	var rec *a58Forgets
	m, err := New(Config{BlockSize: 2, NumBlocks: 64,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2}},
		Policy: func(capacity int) eviction.Policy {
			rec = &a58Forgets{Policy: eviction.NewLRU(capacity)}
			return rec
		}})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	r := &m.bp.shelves
	require.Positive(t, r.n[shelfLow], "nothing shelved: the test checks nothing")
	want := r.next[r.sentinel(shelfLow)]
	got, ok := m.bp.victim()
	require.True(t, ok)
	require.Equal(t, want, got, "the low shelf goes first")
	require.Contains(t, rec.forgot, got)
	require.NotContains(t, rec.forgot[:len(rec.forgot)-1], got, "forgotten before it was the victim")
}
