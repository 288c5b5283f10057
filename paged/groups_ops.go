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
// rolled back past its accepted tokens (the manager keeps no per-step copy
// of a running sequence's state), so with a State group a running sequence
// refuses Truncate below its accepted length (its length less its
// drafts); Preempt, after which admission computes the state anew,
// remains the way back.
//
// State drafts. Drafts (AppendSpeculative) can be rejected, so a State
// group keeps one state per candidate position, as later vLLM releases
// do for Mamba layers (a MambaSpec's num_speculative_blocks: the kernel
// writes the state after each draft position into a block of its own,
// and the state of the last accepted position is kept). With k drafts
// pending, the group's table of a running sequence is k+1 states of Pages
// pages each, (k+1)*Pages entries:
//
//   - entries [0, Pages): the sequence's state, the state after its
//     accepted tokens (its length less its drafts), updated in place by
//     the tokens before the drafts, as without drafts;
//   - entries [j*Pages, (j+1)*Pages), j = 1..k: the state after its j-th
//     draft, which the kernel writes when it computes that draft.
//
// The verdict permutes page IDs and moves no page: AcceptSpeculative(n)
// keeps the state after the n-th draft, whose pages become entries
// [0, Pages), and the old state's pages and every other draft's become
// the sequence's spare draft states (groupTable.spare, sequence.spares
// of them, the same number in every State group; n = 0 keeps the old
// state), as vLLM keeps a Mamba group's speculative blocks; Truncate
// makes spares of the states of the drafts it cuts. AppendSpeculative of
// k tokens takes spares first (a spare's old content is overwritten by
// the kernel that computes the draft), and allocates the rest, k*Pages
// pages per State group at most, from the shared pool with the attention
// groups' blocks, all or nothing (ErrNoSpace, nothing changed; ErrNever
// when the sequence alone could never hold them). So a steady
// speculative loop takes and returns no state page. Spares go back to the
// pool:
//
//   - when the first AppendSpeculative of a step asks fewer drafts than
//     the sequence keeps spares (the surplus; a plain Append keeps them:
//     the common cycle is verdict, the sampled token, the next drafts);
//   - at Preempt, SwapOut (spares are not swapped: SwapIn gives none) and
//     Free; a Fork's child gets none (the parent keeps its own);
//   - whenever an allocation needs them: they count as available
//     (Manager.available), and an allocation that finds no block free or
//     evictable first reclaims every sequence's spares (reclaimSpares),
//     so spares never make another request wait or fail. Evictable
//     cached blocks go first, as vLLM, which never gives its speculative
//     blocks back before the request ends, would have them go: a pool
//     kept full by the prefix cache does not strip the spares (and bring
//     the churn back) at every step.
//
// A state page, spare or not, is the sequence's own (a fork copies all of
// a table's, its drafts' included), never cached, so never shared, and
// it returns to the pool the moment it is released. A batch names them
// per State group (Batch.StateDrafts, DraftStart, StateRead); spares are
// named nowhere. A state
// checkpoint is never taken from a draft's state (TakeCheckpoints drops
// one whose position lies inside the drafts of the step that computes it).
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

// forkPages is the number of blocks a Fork of p allocates: the child's
// copy of every State group's pages, its drafts' included.
func (m *Manager) forkPages(p *sequence) int {
	return m.spages * (1 + p.spec)
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
				m.queueCopy(b, d)
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
	m.draftPages += m.spages * p.spec
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
			m.queueCopy(last, d)
			m.bp.release(last)
			(*blocks)[k] = d
			s.version++
			m.stats.copies++
		case m.bp.hasContent(last):
			m.bp.forget(last)
		}
	}
}

// checkTruncateGroups refuses a Truncate of s to n tokens that a group
// cannot follow: a local group whose next query at n would read a block it
// released, or a State group of a running sequence cut below the tokens
// its state has absorbed (absorbed: a state cannot be rolled back; its
// drafts' states can go).
func (m *Manager) checkTruncateGroups(s *sequence, id SeqID, n int) error {
	a := m.absorbed(s)
	for g := range s.ext {
		k := m.kinds[g+1]
		r := s.ext[g].released
		switch {
		case k.pages() > 0 && s.state == seqRunning && n < a:
			return errorf(ErrInvalid, "Truncate %v to %d tokens: state group %d has absorbed %d tokens and cannot be rolled back (Preempt recomputes it); truncate to at least %d", id, n, g+1, a, a)
		case k.local() && r > 0 && k.live(n) < r:
			return errorf(ErrInvalid, "Truncate %v to %d tokens: %v group %d released its first %d positions, which the query at %d would read; truncate to at least %d",
				id, n, m.cfg.Groups[g+1].Kind, g+1, r*m.bs, n, k.readsFrom(r))
		}
	}
	return nil
}

// absorbed is how many tokens of running s the states of its State
// groups have taken in: its accepted tokens (its length less its drafts),
// or fewer, the position Uncompute named, while its record is live and
// was set in the step being built (dropNow): that step has not run, so
// no state took in a token from there.
func (m *Manager) absorbed(s *sequence) int {
	n := len(s.tokens) - s.spec
	if s.dropNow && m.redoLive(s) && uint64(s.redo-1) < uint64(n) {
		n = int(s.redo - 1)
	}
	return n
}

// truncateGroups cuts the tables of groups 1 and up of running s to n
// tokens, releasing each tail first, spec of them drafts (at most s.spec):
// a State group keeps the states of those drafts. Their cut last blocks
// may hold cached content, so the next append takes the general path.
func (m *Manager) truncateGroups(s *sequence, n, spec int) {
	keep := (n + m.bs - 1) / m.bs
	for g := range s.ext {
		k := m.kinds[g+1]
		t := &s.ext[g]
		if p := k.pages(); p > 0 {
			// The states of the drafts cut become spares.
			t.spare = append(t.spare, t.blocks[p*(1+spec):]...)
			t.blocks = t.blocks[:p*(1+spec)]
			continue
		}
		if !k.commits() {
			continue
		}
		m.bp.releaseTail(t.blocks, keep)
		t.blocks = t.blocks[:keep]
		t.committed = min(t.committed, n/m.bs)
	}
	if m.anyState {
		s.spares += int32(s.spec - spec)
		m.sparePages += m.spages * (s.spec - spec)
		m.unspareRead(s)
	}
	m.draftPages -= m.spages * (s.spec - spec)
	s.gslow = true
}

// acceptStates makes the state after the n-th pending draft of running s
// (n > 0, its last draft: the others are cut) its state in every State
// group: its pages move to the table's head, and the old state's pages
// and those of the drafts before become spares. No page changes hands.
func (m *Manager) acceptStates(s *sequence, n int) {
	for g := range s.ext {
		p := m.kinds[g+1].pages()
		if p == 0 {
			continue
		}
		t := &s.ext[g]
		t.spare = append(t.spare, t.blocks[:n*p]...)
		copy(t.blocks, t.blocks[n*p:(n+1)*p])
		t.blocks = t.blocks[:p]
	}
	s.spares += int32(n)
	m.sparePages += m.spages * n
	m.draftPages -= m.spages * n
	s.version++ // the state's row of a batch names other pages now
	m.unspareRead(s)
}

// unspareRead returns the spare draft states of s to the pool (dropSpares)
// when a page among them is the source of a copy of the step still to
// run: a Fork in the step copied the state or draft state it held before
// the verdict or Truncate made it a spare. Spares count as available
// (Manager.available), but such a page, released, is parked until the
// step ends (blockPool.park) and frees nothing; released now, the
// sequence keeps no spare the count would overstate. O(spares x copies),
// and nothing without copies in the step.
func (m *Manager) unspareRead(s *sequence) {
	if len(m.bp.named) == 0 || s.spares == 0 {
		return
	}
	for g := range s.ext {
		for _, b := range s.ext[g].spare {
			if m.bp.read(b) {
				m.dropSpares(s)
				return
			}
		}
	}
}

// takeSpares moves up to k spare draft states of running s into every
// State group's table, after its pending drafts' states, for its next
// drafts, and reports how many it moved.
func (m *Manager) takeSpares(s *sequence, k int) int {
	u := min(k, int(s.spares))
	if u == 0 {
		return 0
	}
	for g := range s.ext {
		p := m.kinds[g+1].pages()
		if p == 0 {
			continue
		}
		t := &s.ext[g]
		from := len(t.spare) - u*p
		t.blocks = append(t.blocks, t.spare[from:]...)
		t.spare = t.spare[:from]
	}
	s.spares -= int32(u)
	m.sparePages -= m.spages * u
	return u
}

// dropSpares returns every spare draft state of s to the pool, the last
// first.
func (m *Manager) dropSpares(s *sequence) {
	if s.spares == 0 {
		return
	}
	for g := range s.ext {
		t := &s.ext[g]
		m.bp.releaseTail(t.spare, 0)
		t.spare = t.spare[:0]
	}
	m.sparePages -= m.spages * int(s.spares)
	s.spares = 0
}

// reclaimSpares returns every sequence's spare draft states to the pool:
// an allocation needs them (allocBlock).
func (m *Manager) reclaimSpares() {
	for i := range m.seqs {
		m.dropSpares(&m.seqs[i])
	}
}

// checkSpares verifies the spare draft states of the sequence in slot i
// (live): only a running sequence keeps them, s.spares states of Pages
// pages in every State group and none elsewhere, each page held by that
// list alone (counted into refs and owners) and never cached. It returns
// the pages it counted.
func (m *Manager) checkSpares(i int, s *sequence, refs []int32, owners []uint8) (int, error) {
	if s.spares < 0 || (s.spares > 0 && s.state != seqRunning) {
		return 0, fmt.Errorf("paged: sequence slot %d in state %d keeps %d spare draft states", i, s.state, s.spares)
	}
	n := 0
	for g := range s.ext {
		t := &s.ext[g]
		if want := m.kinds[g+1].pages() * int(s.spares); len(t.spare) != want {
			return 0, fmt.Errorf("paged: sequence slot %d group %d keeps %d spare pages for %d spare states, want %d", i, g+1, len(t.spare), s.spares, want)
		}
		for _, b := range t.spare {
			if !m.bp.pool.Valid(b) || b == nullBlock {
				return 0, fmt.Errorf("paged: sequence slot %d group %d spare names block %d", i, g+1, b)
			}
			refs[b]++
			if c := m.bp.pool.RefCount(b); c != 1 || m.bp.hasContent(b) {
				return 0, fmt.Errorf("paged: sequence slot %d state group %d spare page %d has %d references (cached %v)", i, g+1, b, c, m.bp.hasContent(b))
			}
			if owners != nil {
				if o := owners[b]; o != 0 {
					return 0, fmt.Errorf("paged: sequence slot %d group %d spare page %d is named by a table of group %d", i, g+1, b, o-1)
				}
				owners[b] = uint8(g + 2)
			}
			n++
		}
	}
	return n, nil
}

// checkSpeculative refuses k drafts for s that the pool could never hold:
// the pages of every state and its drafts' states, with the blocks the
// full-attention groups would hold, exceed the pool's usable blocks, so
// the append could not succeed even with s alone in the pool (ErrNever
// rather than an ErrNoSpace that preempting others never cures). Window
// and chunked groups, which release blocks, are not counted: the bound
// never refuses what could succeed.
func (m *Manager) checkSpeculative(s *sequence, id SeqID, k int) error {
	if m.spages == 0 {
		return nil
	}
	t1 := len(s.tokens) + k
	// In 64 bits: where int is 32, the pages of millions of drafts'
	// states wrap it (and every later product of them, which this bound
	// keeps below the pool's blocks, would too).
	need := int64(m.spages) * int64(1+s.spec+k)
	for g, grp := range m.cfg.Groups {
		if grp.Kind == FullAttention && (g > 0 || !s.windowed) {
			need += int64(m.ceilBlocks(t1))
		}
	}
	if need > int64(m.bp.pool.Usable()) {
		return errorf(ErrNever, "AppendSpeculative to %v: %d drafts would hold at least %d blocks with their states (%d pages each), more than the pool's %d", id, s.spec+k, need, m.spages, m.bp.pool.Usable())
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
				// The state's pages and its drafts': the sequence's own,
				// never cached (Fork copies them, nothing commits them).
				for _, b := range *blocks {
					if c := m.bp.pool.RefCount(b); c != 1 || m.bp.hasContent(b) {
						return fmt.Errorf("paged: sequence slot %d state group %d page %d has %d references (cached %v)", i, g, b, c, m.bp.hasContent(b))
					}
				}
				continue
			}
			if s.gslow || len(s.tokens)%m.bs == 0 || len(*blocks) == 0 {
				continue
			}
			if last := (*blocks)[len(*blocks)-1]; m.bp.pool.RefCount(last) != 1 || m.bp.hasContent(last) {
				return fmt.Errorf("paged: sequence slot %d group %d: last block %d is shared (%d references) or cached (%v) but appends write it in place",
					i, g, last, m.bp.pool.RefCount(last), m.bp.hasContent(last))
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
		if want := m.tableLen(s, g+1); len(t.host) != want {
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
