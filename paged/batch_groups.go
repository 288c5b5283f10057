package paged

import (
	"slices"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// The tables and slot mappings of KV cache groups 1 and up (Config.Groups)
// in a Batch: one table and one slot mapping per group, rows in the order
// of Batch.Seqs, of the same Stride as Batch.Tables. Rows persist from step
// to step as group 0's do: a row is extended by the blocks its sequence
// gained and has the entries its window released set to the null block,
// so a step costs O(changed entries + scheduled sequences) per group.

// groupRow is the persistent state of one row of a group's table.
type groupRow struct {
	id      SeqID
	version uint32
	// filled entries are written; released leading ones are null.
	filled, released int
}

// checkGroupsBatch validates what fill does not: in every window or
// chunked group, the query of the first new token (the one that reads
// furthest back) must read no released block: the window W-1 positions
// before it, the chunk from its start. It changes nothing.
func (m *Manager) checkGroupsBatch(sched []Scheduled) error {
	if !m.anyLocal {
		return nil
	}
	for _, sc := range sched {
		s, err := m.running(sc.ID, "BuildBatch")
		if err != nil {
			return err
		}
		first := len(s.tokens) - sc.NewTokens
		if first < 0 {
			continue // fill refuses the entry
		}
		for g := range s.ext {
			if k := m.kinds[g+1]; k.local() && k.live(first) < s.ext[g].released {
				return errorf(ErrInvalid, "BuildBatch: %v: the query at %d reads positions group %d (%v) released (its first %d blocks)",
					sc.ID, first, g+1, m.cfg.Groups[g+1].Kind, s.ext[g].released)
			}
		}
	}
	return nil
}

// groupView returns the entries of group g of s and how many leading ones
// are released. g is a group that holds blocks: a Shared group's view is
// its target's (groupKind.target).
func groupView(s *sequence, g int) ([]allocator.BlockID, int) {
	if g == 0 {
		return s.blocks, s.released
	}
	return s.ext[g-1].blocks, s.ext[g-1].released
}

// fillGroups writes the rows and slots of groups 1 and up for sched, which
// fill has validated and written for group 0.
func (m *Manager) fillGroups(b *Batch, sched []Scheduled) {
	G := len(m.cfg.Groups) - 1
	if m.anyState {
		m.fillDrafts(b, sched)
	}
	n, stride := len(sched), b.Stride
	if b.groupStride != stride || len(b.GroupTables) != G {
		// First use, or a new width: every row is rewritten.
		b.groupStride = stride
		b.GroupTables, b.GroupSlots, b.groupRows = resize(b.GroupTables, G), resize(b.GroupSlots, G), resize(b.groupRows, G)
		for g := range G {
			clear(b.GroupTables[g][:cap(b.GroupTables[g])])
			b.GroupTables[g] = b.GroupTables[g][:0]
			b.groupRows[g] = b.groupRows[g][:0]
		}
	}
	for g := range G {
		pages, src := m.kinds[g+1].pages(), m.kinds[g+1].target(g+1)
		width := stride
		if pages > 0 {
			width = pages
		}
		tab := b.GroupTables[g]
		if need := n * width; cap(tab) < need {
			t := make([]int32, need, need+need/2)
			copy(t, tab[:cap(tab)])
			tab = t
		} else {
			tab = tab[:need]
		}
		rows := b.groupRows[g]
		for len(rows) < n {
			rows = append(rows, groupRow{})
		}
		if pages > 0 {
			// A state is read and updated whole: no slots.
			m.fillState(b, g, sched, tab, rows, pages)
			b.GroupTables[g], b.groupRows[g] = tab, rows
			continue
		}
		slots := b.GroupSlots[g][:0]
		for i, sc := range sched {
			idx, _ := sc.ID.parts()
			s := &m.seqs[idx]
			blocks, released := groupView(s, src)
			nb := len(blocks)
			row := tab[i*width : (i+1)*width]
			r := &rows[i]
			if r.id != sc.ID || r.version != s.version || r.filled > nb || r.released > released {
				clear(row)
				*r = groupRow{id: sc.ID, version: s.version}
			}
			for k := r.released; k < min(released, r.filled); k++ {
				row[k] = int32(nullBlock)
			}
			for k := r.filled; k < nb; k++ {
				row[k] = int32(blocks[k])
			}
			r.filled, r.released = nb, released
			ntok := len(s.tokens)
			for p := ntok - sc.NewTokens; p < ntok; p++ {
				k, off := m.split(p)
				slots = append(slots, int64(row[k])*int64(m.bs)+int64(off))
			}
		}
		b.GroupTables[g], b.groupRows[g], b.GroupSlots[g] = tab, rows, slots
	}
}

// fillState writes the rows of State group g+1 for sched into tab, Pages
// wide (a row is rewritten when its sequence's version changed: its state
// moved), and the pages of its drafts' states into StateDrafts (see
// groups_ops.go, "State drafts").
func (m *Manager) fillState(b *Batch, g int, sched []Scheduled, tab []int32, rows []groupRow, pages int) {
	drafts := b.StateDrafts[g][:0]
	rows = rows[:len(sched)]
	for i, sc := range sched {
		s := &m.seqs[uint32(sc.ID)]
		blocks := s.ext[g].blocks
		if r := &rows[i]; r.id != sc.ID || r.version != s.version || r.filled != pages {
			putIDs(tab[i*pages:(i+1)*pages], blocks[:pages])
			*r = groupRow{id: sc.ID, version: s.version, filled: pages}
		}
		if s.spec > 0 {
			more := blocks[pages:]
			k := len(drafts)
			drafts = slices.Grow(drafts, len(more))[:k+len(more)]
			putIDs(drafts[k:], more)
		}
	}
	b.StateDrafts[g] = drafts
}

// fillDrafts writes b's DraftStart and StateRead for sched, and sizes
// StateDrafts, for a manager with State groups (fillState fills it).
func (m *Manager) fillDrafts(b *Batch, sched []Scheduled) {
	n := len(sched)
	b.StateDrafts = resize(b.StateDrafts, len(m.cfg.Groups)-1)
	b.DraftStart, b.StateRead = resize(b.DraftStart, n+1), resize(b.StateRead, n)
	start, read := b.DraftStart[1:n+1], b.StateRead[:n]
	b.DraftStart[0] = 0
	d := int32(0)
	for i, sc := range sched {
		if spec := m.seqs[uint32(sc.ID)].spec; spec > 0 {
			d += int32(spec)
			// The first new token follows len-NewTokens tokens, of
			// which len-spec are accepted: past them, it reads a
			// draft's state.
			start[i], read[i] = d, int32(max(0, spec-sc.NewTokens))
		} else {
			start[i], read[i] = d, 0
		}
	}
}

// putIDs writes the block IDs src into dst, a batch's int32 entries, in
// one copy: a BlockID is an int32 (the index below fails to compile
// otherwise). The row of a state and its drafts' states are
// hundreds of entries (a Qwen3-Next-like layout names 408 per sequence
// with three drafts), which a loop converting each costs several
// instructions apiece.
func putIDs(dst []int32, src []allocator.BlockID) {
	_ = [1]int{}[unsafe.Sizeof(allocator.BlockID(0))-unsafe.Sizeof(int32(0))]
	copy(dst, unsafe.Slice((*int32)(unsafe.SliceData(src)), len(src)))
}
