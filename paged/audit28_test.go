package paged

import (
	"slices"
	"testing"
)

// parkForkedCopySources admits A, of a block and a half (BlockSize 2),
// and ends the step; then, in one step, B forks A, copies A's partly
// filled last block(s) and fills (commits) its copies, and A and B go:
// A's last blocks are parked for the copies (their destinations are
// cached, so the copies stay live), B's blocks and A's first ones
// evictable, oldest first B's copy of group 0.
func parkForkedCopySources(t *testing.T, m *Manager) {
	t.Helper()
	A, err := m.Add([]int32{1, 2, 3}, nil)
	must(t, err)
	_, err = m.Admit(A)
	must(t, err)
	m.TakeCopies(nil)
	B, err := m.Fork(A)
	must(t, err)
	must(t, m.Append(B, 4))
	must(t, m.Free(A))
	must(t, m.Free(B))
}

// TestStartPairPrunesBetweenItsBlocks: startPair's decode case takes its
// two blocks with direct bp.alloc calls, where the general path
// (growGroups, allocBlock per block) drops the copies into each block as
// it is handed out before taking the next. Handing out a copy's cached
// destination makes the copy moot and releases its parked source (an
// uncached block, to the free list without UnifiedFreeQueue), which the
// general path then takes as the window group's block; dropping the
// copies only after both allocations, startPair evicted a cached block
// instead (another table, one eviction more, a prefix lost).
func TestStartPairPrunesBetweenItsBlocks(t *testing.T) {
	cfg := Config{BlockSize: 2, NumBlocks: 9, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 8}}}
	var twins [2]*Manager
	var ids [2]SeqID
	for i := range twins {
		m, err := New(cfg)
		must(t, err)
		twins[i] = m
		// C's one block per table, then A's two.
		C, err := m.Add([]int32{100}, nil)
		must(t, err)
		ids[i] = C
		_, err = m.Admit(C)
		must(t, err)
		parkForkedCopySources(t, m)
		must(t, m.Append(C, 101))
		if st := m.Stats(); st.FreeBlocks != 0 || len(m.bp.parked) != 2 {
			t.Fatalf("%d free blocks, %d parked; want 0 and 2: the test no longer builds the case", st.FreeBlocks, len(m.bp.parked))
		}
		// C starts a block in each table: the fast path (startPair) on
		// twins[0], the general one on twins[1].
		if i == 0 {
			must(t, m.Append(C, 102))
		} else {
			must(t, m.appendTokens(C, []int32{102}, false))
		}
		must(t, m.Check())
	}
	f, g := twins[0], twins[1]
	for grp := range 2 {
		sf, _ := f.seq(ids[0])
		sg, _ := g.seq(ids[1])
		if tf, tg := f.table(sf, grp), g.table(sg, grp); !slices.Equal(tf, tg) {
			t.Fatalf("group %d: C's table %v, general path %v", grp, tf, tg)
		}
	}
	if sf, sg := f.Stats(), g.Stats(); sf != sg {
		t.Fatalf("stats %+v\ngeneral path %+v", sf, sg)
	}
}

// TestAllocBlocksPrunesBetweenBlocks: an admission takes its blocks in
// one run (allocBlocks, blockPool.allocRun), each as allocBlock takes
// one. Handing out a copy's cached destination makes the copy moot and
// releases its parked source, uncached, to the free list (no
// UnifiedFreeQueue): the next block of the run is that one. Dropping the
// run's copies only after the run, the admission evicted a cached block
// instead (A's first block, a prefix a later request would hit).
func TestAllocBlocksPrunesBetweenBlocks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []Group
		nb     int
		evicts uint64 // B's copies, each releasing A's block it read
	}{
		{"plain", nil, 4, 1},
		{"groups", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 8}}, 7, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 2, NumBlocks: tc.nb, Groups: tc.groups})
			must(t, err)
			parkForkedCopySources(t, m)
			if st := m.Stats(); st.FreeBlocks != 0 || len(m.bp.parked) == 0 {
				t.Fatalf("%d free blocks, %d parked: the test no longer builds the case", st.FreeBlocks, len(m.bp.parked))
			}
			// D's first block evicts B's copy (the LRU's oldest), which
			// releases A's parked last block: D's second block.
			parked := m.bp.parked[0].id
			D, err := m.Add([]int32{50, 51, 52}, nil)
			must(t, err)
			_, err = m.Admit(D)
			must(t, err)
			must(t, m.Check())
			tb, err := m.Table(D)
			must(t, err)
			if st := m.Stats(); len(tb) != 2 || tb[1] != parked || st.Evictions != tc.evicts {
				t.Fatalf("D's table %v, %d evictions; want its second block %d (A's, parked), %d evictions", tb, st.Evictions, parked, tc.evicts)
			}
		})
	}
}
