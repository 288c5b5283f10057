package paged

import (
	"slices"
	"testing"
)

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
		// A's two blocks per table, C's one.
		A, err := m.Add([]int32{1, 2, 3}, nil)
		must(t, err)
		_, err = m.Admit(A)
		must(t, err)
		C, err := m.Add([]int32{100}, nil)
		must(t, err)
		ids[i] = C
		_, err = m.Admit(C)
		must(t, err)
		m.TakeCopies(nil)
		// One step: B copies A's partly filled last blocks and fills
		// (commits) its copies; A and B go, A's last blocks parked for
		// the copies (their destinations are cached, so still live).
		B, err := m.Fork(A)
		must(t, err)
		must(t, m.Append(B, 4))
		must(t, m.Free(A))
		must(t, m.Free(B))
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
