package paged

import (
	"errors"
	"fmt"
	"testing"
)

// reads returns the positions the query at p reads in a group of kind k
// (an independent model of the kernels, written from GroupKind's docs):
// a full group reads [0, p], a window of w reads [p-w+1, p], a chunk of c
// reads [p-p%c, p].
func reads(g Group, p int) (lo, hi int) {
	switch g.Kind {
	case SlidingWindow:
		return max(0, p-g.Window+1), p
	case ChunkedLocal:
		return p - p%g.Chunk, p
	}
	return 0, p
}

// checkBatchReads checks b, built for sched, against what a kernel reads:
// for every scheduled sequence and group, each new token's slot lies in
// the block the sequence's table names for its position, and every
// position the new tokens' queries read lies in a block the row names
// (never the null block) that is the sequence's own table entry. A State
// group's row is its pages; a Shared group's is its target's.
func checkBatchReads(m *Manager, b *Batch, sched []Scheduled) error {
	groups := m.cfg.Groups
	if len(groups) == 0 {
		groups = []Group{{Kind: FullAttention}}
	}
	bs := m.bs
	start := 0
	for i, sc := range sched {
		if b.Seqs[i] != sc.ID || int(b.QueryLens[i]) != sc.NewTokens || int(b.QueryStart[i]) != start {
			return fmt.Errorf("entry %d: seq %v qlen %d qstart %d", i, b.Seqs[i], b.QueryLens[i], b.QueryStart[i])
		}
		n := int(b.SeqLens[i])
		groups := groups
		if sq, _ := m.seq(sc.ID); sq.opts.Window > 0 {
			// A windowed sequence of a single-group manager.
			groups = []Group{{Kind: SlidingWindow, Window: sq.opts.Window}}
		}
		for g, grp := range groups {
			tab, err := m.TableGroup(sc.ID, g)
			if err != nil {
				return err
			}
			var row []int32
			var slots []int64
			if g == 0 {
				row, slots = b.Tables[i*b.Stride:(i+1)*b.Stride], b.Slots
			} else {
				width := b.Stride
				if grp.Kind == State {
					width = grp.Pages
				}
				row, slots = b.GroupTables[g-1][i*width:(i+1)*width], b.GroupSlots[g-1]
			}
			if grp.Kind == State {
				for k := range grp.Pages {
					if row[k] != int32(tab[k]) || tab[k] == nullBlock {
						return fmt.Errorf("entry %d group %d: page %d is %d, table %v", i, g, k, row[k], tab)
					}
				}
				// Its drafts' states: the table's pages after the state's.
				sq, _ := m.seq(sc.ID)
				lo, hi := int(b.DraftStart[i])*grp.Pages, int(b.DraftStart[i+1])*grp.Pages
				if hi-lo != sq.spec*grp.Pages || len(tab) != grp.Pages+hi-lo || int(b.StateRead[i]) != max(0, sq.spec-sc.NewTokens) {
					return fmt.Errorf("entry %d group %d with %d drafts: DraftStart %v, StateRead %v, table %v", i, g, sq.spec, b.DraftStart, b.StateRead, tab)
				}
				for k, d := range b.StateDrafts[g-1][lo:hi] {
					if d != int32(tab[grp.Pages+k]) {
						return fmt.Errorf("entry %d group %d: draft page %d is %d, table %v", i, g, k, d, tab)
					}
				}
				continue
			}
			kind := grp
			if grp.Kind == Shared {
				kind = groups[grp.Target]
			}
			for k := range row {
				if k >= len(tab) && row[k] != int32(nullBlock) {
					return fmt.Errorf("entry %d group %d: padding entry %d names %d", i, g, k, row[k])
				}
			}
			for q := n - sc.NewTokens; q < n; q++ {
				if want := int64(tab[q/bs])*int64(bs) + int64(q%bs); slots[start+q-(n-sc.NewTokens)] != want || tab[q/bs] == nullBlock {
					return fmt.Errorf("entry %d group %d: the slot of position %d is %d, want %d (table %v)", i, g, q, slots[start+q-(n-sc.NewTokens)], want, tab)
				}
				lo, hi := reads(kind, q)
				for p := lo; p <= hi; p++ {
					if row[p/bs] == int32(nullBlock) || row[p/bs] != int32(tab[p/bs]) {
						return fmt.Errorf("entry %d group %d (%v): the query at %d reads position %d in row entry %d = %d (table %v)", i, g, kind.Kind, q, p, p/bs, row[p/bs], tab)
					}
				}
			}
		}
		start += sc.NewTokens
	}
	return nil
}

// TestBuildBatchRefusesReadsOfReleasedBlocks: BuildBatch refuses new
// tokens whose first query reads a position a hybrid sequence's window or
// chunk released (as it does for a windowed single-group sequence), or
// builds a batch whose every read is backed. It checked only the block of
// the first new token: a window's query reads W-1 positions before it,
// and a chunk's from the chunk's start, which may lie in a released block.
func TestBuildBatchRefusesReadsOfReleasedBlocks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		group   Group
		prompt  int
		appends int
	}{
		// bs 4, window 4: at 12 tokens the window released blocks 0 and
		// 1; the query at 9 reads [6, 9].
		{"window", Group{Kind: SlidingWindow, Window: 4}, 9, 3},
		// bs 4, chunk 6: at 21 tokens blocks 0 to 3 are released; the
		// query at 17 reads [12, 17].
		{"chunked", Group{Kind: ChunkedLocal, Chunk: 6}, 9, 12},
		// A single-group manager's windowed sequence (SeqOptions.Window).
		{"windowed sequence", Group{}, 9, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, opts := Config{BlockSize: 4, NumBlocks: 32, Groups: []Group{{Kind: FullAttention}, tc.group}}, (*SeqOptions)(nil)
			if tc.group == (Group{}) {
				cfg.Groups, opts = nil, &SeqOptions{Window: 4}
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			pr := make([]int32, tc.prompt)
			for i := range pr {
				pr[i] = int32(i)
			}
			id, _, err := m.Create(pr, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.appends {
				if err := m.Append(id, int32(100+i)); err != nil {
					t.Fatal(err)
				}
			}
			n := tc.prompt + tc.appends
			var b Batch
			refused := 0
			for q := 1; q <= n; q++ {
				sched := []Scheduled{{ID: id, NewTokens: q}}
				backed := tableReads(m, sched[0])
				if err := m.BuildBatch(&b, sched); err != nil {
					if !errors.Is(err, ErrInvalid) || backed == nil {
						t.Fatalf("%d new tokens, every read backed (%v): %v", q, backed, err)
					}
					refused++
					continue
				}
				if err := checkBatchReads(m, &b, sched); err != nil {
					t.Fatalf("%d new tokens of %d: %v", q, n, err)
				}
			}
			if refused == 0 {
				t.Fatalf("setup: no number of new tokens reads a released position")
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// tableReads reports an error when a position the queries of sc's new
// tokens read lies in a null entry of its sequence's tables.
func tableReads(m *Manager, sc Scheduled) error {
	s, err := m.running(sc.ID, "test")
	if err != nil {
		return err
	}
	n := len(s.tokens)
	groups := m.cfg.Groups
	if s.opts.Window > 0 {
		groups = []Group{{Kind: SlidingWindow, Window: s.opts.Window}}
	}
	for g, grp := range groups {
		if grp.Kind == State {
			continue
		}
		tab, _ := m.TableGroup(sc.ID, g)
		kind := grp
		if grp.Kind == Shared {
			kind = groups[grp.Target]
		}
		for q := n - sc.NewTokens; q < n; q++ {
			lo, hi := reads(kind, q)
			for p := lo; p <= hi; p++ {
				if tab[p/m.bs] == nullBlock {
					return fmt.Errorf("group %d: the query at %d reads %d, released", g, q, p)
				}
			}
		}
	}
	return nil
}

// TestCheckCatchesGroupCorruption corrupts a hybrid manager's state
// through its unexported fields, one way per case, each keeping every
// reference count consistent, and requires Check to report it.
func TestCheckCatchesGroupCorruption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		group   Group
		corrupt func(m *Manager, s *sequence)
	}{
		// Group 1's tail entry names group 0's tail block: two groups
		// would write their KV into one block.
		{"block in two groups", Group{Kind: FullAttention}, func(m *Manager, s *sequence) {
			t1 := &s.ext[0]
			k := len(t1.blocks) - 1
			m.bp.release(t1.blocks[k])
			m.bp.pool.Ref(s.blocks[k])
			t1.blocks[k] = s.blocks[k]
		}},
		// After a fork, whose tails are shared (copy-on-write): the
		// child's group 1 tail names group 0's.
		{"forked tail in two groups", Group{Kind: FullAttention}, func(m *Manager, s *sequence) {
			id, err := m.Fork(makeSeqID(0, s.gen))
			if err != nil {
				t.Fatal(err)
			}
			c, _ := m.seq(id)
			t1 := &c.ext[0]
			k := len(t1.blocks) - 1
			m.bp.release(t1.blocks[k])
			m.bp.pool.Ref(c.blocks[k])
			t1.blocks[k] = c.blocks[k]
		}},
		{"state page in group 0", Group{Kind: State, Pages: 2}, func(m *Manager, s *sequence) {
			t1 := &s.ext[0]
			m.bp.release(t1.blocks[0])
			last := s.blocks[len(s.blocks)-1]
			m.bp.pool.Ref(last)
			t1.blocks[0] = last
		}},
		{"window entry released but named", Group{Kind: SlidingWindow, Window: 4}, func(m *Manager, s *sequence) {
			s.ext[0].released++
		}},
		{"window group misses a block", Group{Kind: SlidingWindow, Window: 4}, func(m *Manager, s *sequence) {
			t1 := &s.ext[0]
			k := len(t1.blocks) - 1
			m.bp.release(t1.blocks[k])
			t1.blocks = t1.blocks[:k]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: []Group{{Kind: FullAttention}, tc.group}})
			if err != nil {
				t.Fatal(err)
			}
			pr := make([]int32, 10)
			for i := range pr {
				pr[i] = int32(i)
			}
			id, _, err := m.Create(pr, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			s, _ := m.seq(id)
			tc.corrupt(m, s)
			if err := m.Check(); err == nil {
				t.Fatalf("Check passes a manager whose %s", tc.name)
			} else {
				t.Log(err)
			}
		})
	}
}
