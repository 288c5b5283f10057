package paged

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// Fork, truncation, speculative tokens and swapping with KV cache groups.
//
// Fork shares every attention group's blocks (null entries of a window
// included) and copies the first write into a shared, partly filled block,
// group by group, as with one group. A State group's pages are the one
// exception: a state is rewritten in place by every step of its sequence,
// so the child gets pages of its own at once, filled by Copy directives
// (Batch.Copies), and two forks never write one state. Fork with a State
// group therefore allocates, and returns ErrNoSpace when the pool cannot
// give the pages.
//
// Truncate and AcceptSpeculative follow the single-group window rule in
// every local group: drafts do not slide a window or a chunk (they slide
// from the accepted length), and a rollback whose next query would read a
// block a window or chunk has released is refused with ErrInvalid,
// changing nothing. A state has absorbed every token it saw and cannot be
// rolled back (the manager keeps no per-step copy of a running sequence's
// state), so with a State group a running sequence refuses Truncate below
// its length, and AppendSpeculative is refused (drafts could not be
// rejected); Preempt, after which admission computes the state anew,
// remains the way back.
//
// SwapOut and SwapIn move every group's blocks, state pages included, to
// host tables of their own and back; a block shared inside the swapped
// set stays shared in its group, and SwapIn reclaims committed blocks the
// device index still holds under their (hash, group) key. Each directive
// names its group (Swap.Group), and TierStatsGroup counts per group.

// tableAt returns group g's device table of s, how many of its leading
// entries are released, its committed mark and its host table. A Shared
// group's tables are empty: its target holds the blocks.
func (s *sequence) tableAt(g int) (blocks *[]allocator.BlockID, released, committed int, host *[]allocator.BlockID) {
	if g == 0 {
		return &s.blocks, s.released, s.committed, &s.host
	}
	t := &s.ext[g-1]
	return &t.blocks, t.released, t.committed, &t.host
}

// ntables is the number of tables a sequence keeps, one per group.
func (m *Manager) ntables() int { return max(1, len(m.cfg.Groups)) }

// isState reports whether group g is a State group.
func (m *Manager) isState(g int) bool {
	return g > 0 && m.kinds[g].pages() > 0
}

// forkPages is the number of blocks a Fork allocates: the child's copy of
// every State group's pages.
func (m *Manager) forkPages() int {
	if !m.anyState {
		return 0
	}
	n := 0
	for g := 1; g < len(m.cfg.Groups); g++ {
		n += m.kinds[g].pages()
	}
	return n
}

// forkGroups gives child c the tables of groups 1 and up of its parent p:
// shared blocks, and fresh copies of the state pages (a Copy each).
// REQUIRES: forkPages() blocks available.
func (m *Manager) forkGroups(p, c *sequence) {
	for g := range p.ext {
		pt, ct := &p.ext[g], &c.ext[g]
		ct.released, ct.committed = pt.released, pt.committed
		if m.isState(g + 1) {
			for _, b := range pt.blocks {
				d := m.allocBlock()
				m.copies = append(m.copies, Copy{Src: b, Dst: d})
				m.stats.copies++
				ct.blocks = append(ct.blocks, d)
			}
			continue
		}
		ct.blocks = append(ct.blocks, pt.blocks...)
		for _, b := range ct.blocks[ct.released:] {
			m.bp.pool.Ref(b)
		}
	}
	m.notePeak()
	p.gslow, c.gslow = true, true
}

// tailCopies counts the copy-on-write copies appending at position t0
// makes: the partly filled last blocks of s, in any group, that another
// sequence shares.
func (m *Manager) tailCopies(s *sequence, t0 int) int {
	if !s.gslow || t0%m.bs == 0 {
		return 0
	}
	n := 0
	for g := range m.ntables() {
		blocks, _, _, _ := s.tableAt(g)
		if len(*blocks) > 0 && !m.isState(g) && m.bp.pool.RefCount((*blocks)[len(*blocks)-1]) > 1 {
			n++
		}
	}
	return n
}

// ownTails makes the partly filled last block of every group of s, about
// to be written from position t0 on, the sequence's own and uncached: a
// shared one is copied (copy-on-write), cached content of an own one (left
// by a truncation) leaves the index. REQUIRES: tailCopies(s, t0) blocks
// available.
func (m *Manager) ownTails(s *sequence, t0 int) {
	if !s.gslow || t0%m.bs == 0 {
		return
	}
	for g := range m.ntables() {
		blocks, _, _, _ := s.tableAt(g)
		if len(*blocks) == 0 || m.isState(g) {
			continue
		}
		k := len(*blocks) - 1
		last := (*blocks)[k]
		switch {
		case m.bp.pool.RefCount(last) > 1:
			d := m.allocBlock()
			m.copies = append(m.copies, Copy{Src: last, Dst: d})
			m.bp.release(last)
			(*blocks)[k] = d
			s.version++
			m.stats.copies++
		case m.bp.cached[last]:
			m.bp.forget(last)
		}
	}
}

// checkTruncateGroups refuses a Truncate of s to n tokens that a group
// cannot follow: a local group whose next query at n would read a block it
// released, or a State group of a running sequence (a state cannot be
// rolled back).
func (m *Manager) checkTruncateGroups(s *sequence, id SeqID, n int) error {
	for g := range s.ext {
		k := m.kinds[g+1]
		r := s.ext[g].released
		switch {
		case k.pages() > 0 && s.state == seqRunning && n < len(s.tokens):
			return errorf(ErrInvalid, "Truncate %v to %d tokens: state group %d has absorbed all %d tokens and cannot be rolled back (Preempt recomputes it)", id, n, g+1, len(s.tokens))
		case k.local() && r > 0 && k.live(n) < r:
			return errorf(ErrInvalid, "Truncate %v to %d tokens: %v group %d released its first %d positions, which the query at %d would read; truncate to at least %d",
				id, n, m.cfg.Groups[g+1].Kind, g+1, r*m.bs, n, k.readsFrom(r))
		}
	}
	return nil
}

// truncateGroups cuts the tables of groups 1 and up of running s to n
// tokens, releasing each tail first. Their cut last blocks may hold cached
// content, so the next append takes the general path.
func (m *Manager) truncateGroups(s *sequence, n int) {
	keep := (n + m.bs - 1) / m.bs
	for g := range s.ext {
		if !m.kinds[g+1].commits() {
			continue
		}
		t := &s.ext[g]
		m.bp.releaseTail(t.blocks, keep)
		t.blocks = t.blocks[:keep]
		t.committed = min(t.committed, n/m.bs)
	}
	s.gslow = true
}

// checkSpeculative refuses drafts on a manager whose State group could not
// roll them back.
func (m *Manager) checkSpeculative(id SeqID) error {
	if m.anyState {
		return errorf(ErrInvalid, "AppendSpeculative to %v: a state group cannot roll drafts back", id)
	}
	return nil
}

// checkGroupOps verifies what forks, truncation and swapping rely on: a
// state page is never shared, and the partly filled last block of every
// group of a running sequence on the one-token fast path (gslow unset) is
// its own and uncached.
func (m *Manager) checkGroupOps() error {
	if !m.hybrid() {
		return nil
	}
	for i := range m.seqs {
		s := &m.seqs[i]
		if s.state != seqRunning {
			continue
		}
		for g := range m.ntables() {
			blocks, _, _, _ := s.tableAt(g)
			if m.isState(g) {
				for _, b := range *blocks {
					if c := m.bp.pool.RefCount(b); c != 1 {
						return fmt.Errorf("paged: sequence slot %d state group %d page %d has %d references", i, g, b, c)
					}
				}
				continue
			}
			if s.gslow || len(s.tokens)%m.bs == 0 || len(*blocks) == 0 {
				continue
			}
			if last := (*blocks)[len(*blocks)-1]; m.bp.pool.RefCount(last) != 1 || m.bp.cached[last] {
				return fmt.Errorf("paged: sequence slot %d group %d: last block %d is shared (%d references) or cached (%v) but appends write it in place",
					i, g, last, m.bp.pool.RefCount(last), m.bp.cached[last])
			}
		}
	}
	return nil
}

// checkHostGroups verifies the host tables of groups 1 and up of the
// sequence in slot i: empty unless it is swapped out, else one entry per
// device entry it had, NoBlock exactly on the released prefix, each named
// host block counted into refs.
func (m *Manager) checkHostGroups(i int, s *sequence, refs []int32) error {
	for g := range s.ext {
		t := &s.ext[g]
		if s.state != seqSwapped {
			if len(t.host) != 0 {
				return fmt.Errorf("paged: sequence slot %d in state %d has a host table in group %d", i, s.state, g+1)
			}
			continue
		}
		if want := m.groupNeed(g+1, len(s.tokens)); len(t.host) != want {
			return fmt.Errorf("paged: swapped-out sequence slot %d group %d has %d host blocks for %d tokens, want %d", i, g+1, len(t.host), len(s.tokens), want)
		}
		if live := m.liveStart(g+1, len(s.tokens)-s.spec); m.kinds[g+1].local() && t.released > live {
			return fmt.Errorf("paged: swapped-out sequence slot %d group %d released %d blocks, its next query reads blocks from %d", i, g+1, t.released, live)
		}
		for k, b := range t.host {
			if (k < t.released) != (b == allocator.NoBlock) {
				return fmt.Errorf("paged: swapped-out sequence slot %d group %d entry %d names host block %d, released %d", i, g+1, k, b, t.released)
			}
			if b == allocator.NoBlock {
				continue
			}
			if !m.tier.pool.Valid(b) {
				return fmt.Errorf("paged: swapped-out sequence slot %d group %d entry %d names host block %d", i, g+1, k, b)
			}
			refs[b]++
		}
	}
	return nil
}
