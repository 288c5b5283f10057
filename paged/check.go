package paged

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// Check verifies every invariant of the manager and returns the first one
// broken. It is O(blocks + tokens) and allocates; call it from tests after
// every operation, not on a serving path.
//
//   - the pool's own conservation and free-list integrity;
//   - a block is in the eviction policy, or on one of a hybrid manager's
//     retention shelves (never both), iff it is unreferenced and holds
//     cached content (with UnifiedFreeQueue: in the policy iff it is
//     unreferenced), and the shelves are well-formed lists;
//   - a block's reference count equals the number of table entries naming
//     it plus the prefix pins holding it (and, in a hybrid manager, the
//     retention pins and pending state checkpoints of its sequences),
//     plus one while it waits for the end of the step because a Copy
//     still has to read it (see Copy), and the pin counts match the live
//     pins;
//   - the prefix index maps a hash only to blocks holding that hash, and
//     every block with cached content is reachable from the index;
//   - every running sequence's table covers its tokens exactly, and its
//     committed blocks hold the hashes it computed; a block is named by
//     the tables of one KV cache group only;
//   - the table of a sequence with a sliding window W names the null block
//     exactly on a prefix (the released entries), and every position the
//     next query may read is backed by a real block: with n tokens of
//     which the last spec are unaccepted drafts, positions
//     [n-spec-W+1, n), the window of the query at the accepted length
//     n-spec (rejecting every draft must leave it readable). A sequence
//     without a window has no released entries;
//   - a State group's table of a running sequence is its state's Pages
//     pages and Pages more per pending draft, every one held by that
//     table alone and never cached, and Stats.StateDraftPages counts the
//     drafts' pages; its spare draft states (only a running sequence's)
//     are Pages pages each, as many in every State group, each held by
//     the spare list alone and never cached, and Stats.StateSparePages
//     counts them.
//   - no swapped-out sequence was swapped out in the step in which it
//     was admitted or swapped in (SwapOut: its host blocks would hold
//     KV that step had not computed).
func (m *Manager) Check() error {
	if err := m.bp.pool.Check(); err != nil {
		return fmt.Errorf("paged: %w", err)
	}
	total := m.bp.pool.Total()
	refs := make([]int32, total)
	var owners []uint8
	if m.hybrid() {
		owners = make([]uint8, total)
	}
	running, drafts, spares, pinned := 0, 0, 0, 0
	for i := range m.seqs {
		s := &m.seqs[i]
		if s.state == seqUnused {
			continue
		}
		n, err := m.checkSpares(i, s, refs, owners)
		if err != nil {
			return err
		}
		spares += n
		if s.state != seqRunning {
			if s.state == seqSwapped && s.outStep != 0 && s.outStep == s.arrived {
				return fmt.Errorf("paged: sequence slot %d was swapped out in step %d, the step it was admitted or swapped in: its host blocks hold KV that step had not computed", i, s.outStep)
			}
			if len(s.blocks) != 0 {
				return fmt.Errorf("paged: waiting sequence slot %d holds %d blocks", i, len(s.blocks))
			}
			for g := range s.ext {
				if len(s.ext[g].blocks) != 0 {
					return fmt.Errorf("paged: waiting sequence slot %d holds %d blocks in group %d", i, len(s.ext[g].blocks), g+1)
				}
			}
			continue
		}
		if err := m.checkGroupsOf(i, s, refs); err != nil {
			return err
		}
		if err := m.checkOwners(i, s, owners); err != nil {
			return err
		}
		if err := m.checkRetentionPins(i, s, refs); err != nil {
			return err
		}
		pinned += len(s.keep.pins)
		if err := m.checkPending(i, s, refs); err != nil {
			return err
		}
		running++
		drafts += m.spages * s.spec
		if want := (len(s.tokens) + m.bs - 1) / m.bs; len(s.blocks) != want {
			return fmt.Errorf("paged: sequence slot %d has %d tokens but %d blocks", i, len(s.tokens), len(s.blocks))
		}
		if s.committed > len(s.hashes) || s.committed > len(s.tokens)/m.bs || s.spec > len(s.tokens) {
			return fmt.Errorf("paged: sequence slot %d: committed %d, hashes %d, tokens %d, spec %d", i, s.committed, len(s.hashes), len(s.tokens), s.spec)
		}
		if err := m.checkWindow(i, s, s.blocks, nullBlock); err != nil {
			return err
		}
		for k, b := range s.blocks {
			if b == nullBlock {
				continue
			}
			if !m.bp.pool.Valid(b) {
				return fmt.Errorf("paged: sequence slot %d entry %d names block %d", i, k, b)
			}
			refs[b]++
			if k < s.committed && (!m.bp.hasContent(b) || m.bp.hash[b] != s.hashes[k] || m.bp.groupOf(b) != 0) {
				return fmt.Errorf("paged: sequence slot %d entry %d: block %d does not hold the committed hash", i, k, b)
			}
		}
	}
	if running != m.nrunning {
		return fmt.Errorf("paged: %d running sequences, counter says %d", running, m.nrunning)
	}
	if drafts != m.draftPages {
		return fmt.Errorf("paged: running sequences hold %d pages for their drafts' states, counter says %d", drafts, m.draftPages)
	}
	if pinned != m.ret.pinned {
		return fmt.Errorf("paged: running sequences hold %d retention pins, counter says %d", pinned, m.ret.pinned)
	}
	if spares != m.sparePages {
		return fmt.Errorf("paged: sequences keep %d spare pages for draft states, counter says %d", spares, m.sparePages)
	}
	if err := m.checkFreeSlots(); err != nil {
		return err
	}
	if err := m.checkParked(refs); err != nil {
		return err
	}
	if err := m.checkPins(refs); err != nil {
		return err
	}
	ncached := 0
	for id := allocator.BlockID(1); int(id) < total; id++ {
		if got := m.bp.pool.RefCount(id); got != refs[id] {
			return fmt.Errorf("paged: block %d has count %d but %d table entries", id, got, refs[id])
		}
		unref := refs[id] == 0
		wantInPolicy := unref && (m.cfg.UnifiedFreeQueue || m.bp.hasContent(id))
		if m.bp.policy.Contains(id) && m.bp.shelves.shelfOf(id) != shelfPolicy {
			return fmt.Errorf("paged: block %d is both in the policy and on shelf %d", id, m.bp.shelves.shelfOf(id))
		}
		if (m.bp.policy.Contains(id) || m.bp.shelves.shelfOf(id) != shelfPolicy) != wantInPolicy {
			return fmt.Errorf("paged: block %d in policy = %v, want %v (count %d, cached %v)", id, !wantInPolicy, wantInPolicy, refs[id], m.bp.hasContent(id))
		}
		if unref && m.bp.pool.IsFree(id) == wantInPolicy {
			return fmt.Errorf("paged: block %d: free = %v but in policy = %v", id, m.bp.pool.IsFree(id), wantInPolicy)
		}
		if m.bp.hasContent(id) {
			ncached++
		}
	}
	if m.bp.policy.Len()+m.bp.shelves.shelved() != m.bp.pool.Cached() {
		return fmt.Errorf("paged: policy holds %d blocks and shelves %d, pool has %d cached", m.bp.policy.Len(), m.bp.shelves.shelved(), m.bp.pool.Cached())
	}
	if err := m.bp.checkShelves(); err != nil {
		return err
	}
	reach := 0
	var broken error
	m.bp.index.each(func(h *Hash, head allocator.BlockID) {
		if broken != nil {
			return
		}
		id := head
		g := m.bp.groupOf(head)
		if got, ok := m.bp.index.getIn(h, groupSalt(g)); !ok || got != head {
			broken = fmt.Errorf("paged: index entry %x of block %d is not keyed by its group %d", h[:6], head, g)
			return
		}
		for {
			if !m.bp.hasContent(id) || m.bp.hash[id] != *h || m.bp.groupOf(id) != g {
				broken = fmt.Errorf("paged: index entry %x names block %d, which holds other content", h[:6], id)
				return
			}
			reach++
			id = m.bp.index.dupNext(id)
			if m.bp.index.dupPrev(id) == allocator.NoBlock || reach > total {
				broken = fmt.Errorf("paged: duplicate list of %x is broken at block %d", h[:6], id)
				return
			}
			if id == head {
				return
			}
		}
	})
	if broken != nil {
		return broken
	}
	if reach != ncached {
		return fmt.Errorf("paged: %d blocks hold cached content but the index reaches %d", ncached, reach)
	}
	if err := m.checkGroupOps(); err != nil {
		return err
	}
	return m.checkTier()
}

// checkOwners records in owners the group (plus one) of every block the
// tables of running sequence slot i name, and reports a block that tables
// of two groups name: each group's kernels write their own KV into it.
// owners is nil for a single-group manager.
func (m *Manager) checkOwners(i int, s *sequence, owners []uint8) error {
	if owners == nil {
		return nil
	}
	for g := range m.ntables() {
		blocks, _, _, _ := s.tableAt(g)
		for k, b := range *blocks {
			if b == nullBlock || !m.bp.pool.Valid(b) {
				continue
			}
			if o := owners[b]; o != 0 && int(o) != g+1 {
				return fmt.Errorf("paged: sequence slot %d group %d entry %d names block %d, which a table of group %d names", i, g, k, b, o-1)
			}
			owners[b] = uint8(g + 1)
		}
	}
	return nil
}

// checkWindow verifies the sliding-window shape of table, the device or host
// table of the sequence in slot i, whose released entries hold null: the
// released entries are exactly a prefix, and none of them holds a position
// that the query at the accepted length reads. It recomputes the positions
// from the definition (the query at p reads [p-W+1, p]) rather than through
// windowStart, so a wrong slide is caught.
func (m *Manager) checkWindow(i int, s *sequence, table []allocator.BlockID, null allocator.BlockID) error {
	w := s.opts.Window
	if (w == 0 && s.released != 0) || s.released > len(table) {
		return fmt.Errorf("paged: sequence slot %d (window %d): %d released entries in a table of %d", i, w, s.released, len(table))
	}
	for k, b := range table {
		if (b == null) != (k < s.released) {
			return fmt.Errorf("paged: sequence slot %d entry %d names block %d, but the released prefix is %d entries", i, k, b, s.released)
		}
	}
	if w == 0 {
		return nil
	}
	accepted := len(s.tokens) - s.spec
	lo := max(0, accepted-w+1)
	for k := lo / m.bs; k*m.bs < len(s.tokens); k++ {
		if table[k] == null {
			return fmt.Errorf("paged: sequence slot %d (window %d, %d tokens, %d unaccepted): entry %d is null, but the query at %d reads positions from %d",
				i, w, len(s.tokens), s.spec, k, accepted, lo)
		}
	}
	return nil
}

// checkFreeSlots checks the free list (unused slots only, each once) and
// spare, the large buffers the free slots keep.
func (m *Manager) checkFreeSlots() error {
	spare, seen := 0, make(map[uint32]bool, len(m.freeSeqs))
	for _, idx := range m.freeSeqs {
		if uint(idx) >= uint(len(m.seqs)) || seen[idx] || m.seqs[idx].state != seqUnused || m.seqs[idx].gen == 0 {
			return fmt.Errorf("paged: free list names slot %d, not a free slot or named twice", idx)
		}
		seen[idx] = true
		if c := cap(m.seqs[idx].tokens); c > keepTokens {
			spare += c
		}
	}
	if spare != m.spare || spare > 2*m.cfg.MaxModelLen {
		return fmt.Errorf("paged: free slots keep %d tokens of large buffers, counter says %d, at most %d", spare, m.spare, 2*m.cfg.MaxModelLen)
	}
	return nil
}

// checkParked counts the parked blocks' references into refs and verifies
// what Copy promises: every live copy of the step (blockPool.live)
// reads a block that is not handed out again (still referenced), no
// block is parked twice. (That no copy of a step's list writes what
// another reads or writes holds for a list taken in its step; a caller
// that leaves copies untaken past EndStep gets them in a longer list.)
func (m *Manager) checkParked(refs []int32) error {
	p := m.bp
	for i, b := range p.parked {
		if !p.pool.Valid(b.id) || b.id == nullBlock {
			return fmt.Errorf("paged: parked entry %d names block %d", i, b.id)
		}
		if slices.ContainsFunc(p.parked[:i], func(o parkedBlock) bool { return o.id == b.id }) {
			return fmt.Errorf("paged: block %d is parked twice", b.id)
		}
		refs[b.id]++
	}
	for _, c := range p.named {
		if !p.live(c) {
			continue // moot
		}
		if p.pool.RefCount(c.Src) == 0 {
			return fmt.Errorf("paged: copy %d -> %d of the step reads block %d, which is free", c.Src, c.Dst, c.Src)
		}
	}
	return nil
}
