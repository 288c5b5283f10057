package paged

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// groupKind is what the manager asks of a KV cache group's attention kind:
// one small type per kind (fullKind, windowKind, chunkedKind, stateKind,
// sharedKind) answers it, built once in initGroups (Manager.kinds). The
// manager coordinates: lookup order, allocation order and vLLM-compatible
// semantics stay in groups.go, the per-kind rules live here.
type groupKind interface {
	// need is the number of blocks the group holds for a running
	// sequence of n tokens (released entries included).
	need(n int) int
	// local reports whether the group releases blocks as a sequence grows.
	local() bool
	// dead is how many leading blocks no query reads once the next
	// position to compute is c, for a table whose first committed blocks
	// are committed: vLLM's remove_skipped_blocks rule for the kind.
	dead(c, committed int) int
	// slides reports whether the next position c releases blocks of a
	// table with released null entries: dead(c, committed) > released,
	// cheaper where the kind allows (it runs for every decode token).
	slides(c, released, committed int) bool
	// live is the first block the query at position n reads.
	live(n int) int
	// readsFrom is the least position whose query reads none of the first
	// r blocks (a local kind's truncation floor).
	readsFrom(r int) int
	// commits reports whether the group's blocks hold content of blocks
	// of tokens, committed to the prefix index.
	commits() bool
	// pages is the fixed number of pages of a state (0: not a state).
	pages() int
	// target is the group whose table group g reads (g itself but for a
	// Shared group).
	target(g int) int
	// hit finds the longest prefix hit of groups (the groups of one
	// class, all of this kind and size) within the first limit blocks of
	// s, which are cached in every full-attention group, fills their
	// lookup rows and returns the hit in blocks. Every prefix of at most
	// limit blocks that is a hit of the groups is at most the answer
	// (Manager.cutHit relies on it).
	hit(m *Manager, s *sequence, limit int, groups []int) int
	// check verifies the kind's rules on table t (group g of sequence
	// slot i), whose next query is at position n.
	check(i, g int, t *groupTable, n int) error
}

// newGroupKind returns the kind of group k for blocks of bs tokens.
func newGroupKind(k Group, bs int) groupKind {
	switch k.Kind {
	case SlidingWindow:
		return windowKind{newAttention(bs), k.Window}
	case ChunkedLocal:
		return chunkedKind{newAttention(bs), k.Chunk}
	case State:
		return stateKind{n: k.Pages}
	case Shared:
		return sharedKind{to: k.Target}
	}
	return fullKind{attention: newAttention(bs)}
}

// attention is the part of a kind that keeps a block per block of tokens
// of bs tokens, committed to the prefix index. shift is log2(bs) when bs
// is a power of two, else -1: a decode step that starts a block asks a
// window group's need and dead blocks, and a shift is cheaper than a
// division by a variable.
type attention struct{ bs, shift int }

func newAttention(bs int) attention {
	a := attention{bs: bs, shift: -1}
	if bits.OnesCount(uint(bs)) == 1 {
		a.shift = bits.TrailingZeros(uint(bs))
	}
	return a
}

// div is n/bs for n >= 0.
func (a attention) div(n int) int {
	if a.shift >= 0 {
		return n >> a.shift
	}
	return n / a.bs
}

func (a attention) need(n int) int { return a.div(n + a.bs - 1) }
func (attention) commits() bool    { return true }
func (attention) pages() int       { return 0 }
func (attention) target(g int) int { return g }

// notLocal is the part of a kind that never releases blocks.
type notLocal struct{}

func (notLocal) local() bool                     { return false }
func (notLocal) dead(c, committed int) int       { return 0 }
func (notLocal) slides(c, r, committed int) bool { return false }
func (notLocal) live(n int) int                  { return 0 }
func (notLocal) readsFrom(r int) int             { return 0 }

// checkKept is a kind's check that never releases an entry.
func checkKept(kind GroupKind, i, g int, t *groupTable) error {
	if t.released != 0 {
		return fmt.Errorf("paged: sequence slot %d %v group %d has %d released entries", i, kind, g, t.released)
	}
	return nil
}

// fullKind is a FullAttention group: a block per block of tokens, all kept.
type fullKind struct {
	attention
	notLocal
}

func (fullKind) hit(m *Manager, s *sequence, limit int, groups []int) int { return limit }

func (fullKind) check(i, g int, t *groupTable, n int) error {
	return checkKept(FullAttention, i, g, t)
}

// checkLocal is a local kind's check: every position the next query reads
// is backed.
func checkLocal(k groupKind, i, g int, t *groupTable, n int) error {
	if live := k.live(n); t.released > live {
		return fmt.Errorf("paged: sequence slot %d group %d released %d blocks, its next query reads blocks from %d", i, g, t.released, live)
	}
	return nil
}

// windowKind is a SlidingWindow group of window w.
type windowKind struct {
	attention
	w int
}

func (windowKind) local() bool { return true }

func (k windowKind) dead(c, committed int) int { return k.start(c) }
func (k windowKind) live(n int) int            { return k.start(n) }

// start is windowStart(k.w, c, k.bs), the first block the query at c
// reads, with a shift for the division where the block size allows.
func (k windowKind) start(c int) int {
	if c-k.w+1 <= 0 {
		return 0
	}
	return k.div(c - k.w + 1)
}

// slides is start(c) > released without the division.
func (k windowKind) slides(c, released, committed int) bool {
	return c-k.w+1 >= (released+1)*k.bs
}

func (k windowKind) readsFrom(r int) int { return r*k.bs + k.w - 1 }

func (k windowKind) check(i, g int, t *groupTable, n int) error { return checkLocal(k, i, g, t, n) }

// hit finds the window groups' hit right to left (the first run of
// ceil((W-1)/BlockSize) cached blocks from the right; failing that, the
// run from block 0), fills their m.ghits rows (null before the run) and
// returns its length in blocks.
func (k windowKind) hit(m *Manager, s *sequence, limit int, groups []int) int {
	need := (k.w - 1 + k.bs - 1) / k.bs
	run, end := 0, -1
	// With one window group (the common layout) the scan keeps the blocks
	// it finds and guesses each (see sibling), then from the last one
	// found (see predecessor), before it probes the index.
	one := 0
	if m.sib != nil {
		one = m.oneLocal // then groups is {one}
	}
	if one > 0 {
		m.wids = slices.Grow(m.wids[:0], limit)[:limit]
	}
	if limit < need {
		// No run of need blocks fits, so the right-to-left scan would end
		// with the run from block 0: find it left to right, stopping at
		// the first miss instead of probing every block of the limit.
		end = k.leading(m, s, limit, one, groups)
		m.hitRows(s, groups, 0, end, one)
		return end
	}
	next := allocator.NoBlock
	for i := limit - 1; i >= 0; i-- {
		if one > 0 {
			h, f := &s.hashes[i], m.hits[i]
			id, ok := allocator.NoBlock, false
			if f > nullBlock {
				id, ok = m.sibling(f, h, one)
			}
			if !ok {
				id, ok = m.bp.predecessor(next, h, one)
			}
			if !ok {
				id, ok = m.findWindow(f, h, one)
			}
			if !ok {
				run, next = 0, allocator.NoBlock
				continue
			}
			m.wids[i], next = id, id
		} else if !m.cachedIn(&s.hashes[i], groups) {
			run = 0
			continue
		}
		run++
		if run >= need {
			end = i + run
			break
		}
	}
	start := 0
	if end < 0 {
		// No run long enough: the run from block 0 is the hit.
		end = run
	} else {
		start = end - run
	}
	m.hitRows(s, groups, start, end, one)
	return end
}

// leading is the number of leading blocks of the first limit of s cached
// in every group of groups, each block of group one (one > 0) kept in m.wids,
// guessed (see sibling), then guessed from the one before (see
// blockPool.guess), before the index is probed.
func (windowKind) leading(m *Manager, s *sequence, limit, one int, groups []int) int {
	if one <= 0 {
		for i := range limit {
			if !m.cachedIn(&s.hashes[i], groups) {
				return i
			}
		}
		return limit
	}
	hits, hashes, wids := m.hits[:limit], s.hashes[:limit], m.wids[:limit]
	// Each block is guessed where blockPool.guess would stand, the test
	// written out here: the index is settled once (a lookup changes
	// nothing in it), and a head is cached (uncache takes a block out of
	// the settled index).
	m.bp.index.settle()
	meta, held, sib := m.bp.index.meta, m.bp.hash, m.sib
	g := uint8(one)
	prev := allocator.NoBlock
	for i, f := range hits {
		h := &hashes[i]
		id := allocator.NoBlock
		if f > nullBlock {
			id = sib[f] // see sibling; a block ID of the pool, or 0
		}
		if id <= nullBlock || !meta[id].head || meta[id].group != g || !equal(&held[id], h) {
			// The block after the one before (see blockPool.guess).
			id = prev + 1
			if prev <= nullBlock || int(id) >= len(meta) || !meta[id].head || meta[id].group != g || !equal(&held[id], h) {
				var ok bool
				if id, ok = m.findWindow(f, h, one); !ok {
					return i
				}
			}
		}
		wids[i], prev = id, id
	}
	return limit
}

// sibling guesses the block of the one window group one holding content
// h, whose group-0 block (a hit of the lookup) is f: the block findWindow
// last found there for f (m.sib). A chain's window blocks are scattered,
// since a window releases them one at a time as it slides, so guessing
// each from the one before mostly fails; but the same prefixes are looked
// up again and again (a waiting request's at every step), and the guess
// saves the second probe of the index each such block costs. It stands
// only where the index would name the block (see blockPool.guess).
// REQUIRES: f is a device block (f > nullBlock).
func (m *Manager) sibling(f allocator.BlockID, h *Hash, one int) (allocator.BlockID, bool) {
	return m.bp.guess(m.sib[f], h, one)
}

// findWindow looks content h up in group one and keeps what it finds for
// sibling's guesses from group-0 block f.
func (m *Manager) findWindow(f allocator.BlockID, h *Hash, one int) (allocator.BlockID, bool) {
	id, ok := m.bp.findIn(h, one)
	if ok && f > nullBlock {
		m.sib[f] = id
	}
	return id, ok
}

// hitRows fills the lookup rows of groups anew: null before start, then
// the cached blocks of [start, end); group one's blocks are m.wids
// (one <= 0: none).
func (m *Manager) hitRows(s *sequence, groups []int, start, end, one int) {
	for _, g := range groups {
		if g == one && start == 0 {
			// The scan's blocks are the row: the two buffers trade
			// places instead of copying.
			m.ghits[g-1], m.wids = m.wids[:end], m.ghits[g-1][:0]
			continue
		}
		row := m.ghits[g-1][:0]
		for range start {
			row = append(row, nullBlock)
		}
		if g == one {
			row = append(row, m.wids[start:end]...)
		} else {
			for k := start; k < end; k++ {
				id, _ := m.bp.findIn(&s.hashes[k], g)
				row = append(row, id)
			}
		}
		m.ghits[g-1] = row
	}
}

// chunkedKind is a ChunkedLocal group of chunk c.
type chunkedKind struct {
	attention
	c int
}

func (chunkedKind) local() bool { return true }

// live is the first block of n's chunk.
func (k chunkedKind) live(n int) int { return n / k.c * k.c / k.bs }

func (k chunkedKind) dead(c, committed int) int {
	first := k.live(c)
	if committed > 0 {
		// As vLLM, keep the last cached block.
		first = min(first, committed-1)
	}
	return first
}

func (k chunkedKind) slides(c, released, committed int) bool {
	return k.dead(c, committed) > released
}

func (k chunkedKind) readsFrom(r int) int { return (r*k.bs + k.c - 1) / k.c * k.c }

func (k chunkedKind) check(i, g int, t *groupTable, n int) error { return checkLocal(k, i, g, t, n) }

// hit needs the blocks of the hit point's chunk: those before it are not
// needed (null), those of the chunk must be cached, left to right. As
// vLLM's rule it takes the chunk of limit and the cached run from its
// first block; a run that stops short is a hit only if its end's own chunk
// starts in that block, which a chunk that is not a multiple of the block
// size breaks, so the end is checked as a limit in turn (L decreases).
func (k chunkedKind) hit(m *Manager, s *sequence, limit int, groups []int) int {
	for L := limit; ; {
		start := k.live(L * k.bs)
		end := start
		for end < L && m.cachedIn(&s.hashes[end], groups) {
			end++
		}
		if end == L {
			m.hitRows(s, groups, start, end, 0)
			return end
		}
		L = end
	}
}

// stateKind is a State group of n pages per sequence.
type stateKind struct {
	notLocal
	n int
}

func (k stateKind) need(int) int   { return k.n }
func (stateKind) commits() bool    { return false }
func (k stateKind) pages() int     { return k.n }
func (stateKind) target(g int) int { return g }

// hit is the checkpoint lookup: vLLM's MambaManager caches no state;
// checkpoints do (checkpoint.go).
func (stateKind) hit(m *Manager, s *sequence, limit int, groups []int) int {
	return m.lookupState(s, limit)
}

func (stateKind) check(i, g int, t *groupTable, n int) error {
	if err := checkKept(State, i, g, t); err != nil {
		return err
	}
	if t.committed != 0 {
		return fmt.Errorf("paged: sequence slot %d state group %d has committed pages", i, g)
	}
	return nil
}

// sharedKind is a Shared group reading group to's table.
type sharedKind struct {
	notLocal
	to int
}

func (sharedKind) need(int) int     { return 0 }
func (sharedKind) commits() bool    { return false }
func (sharedKind) pages() int       { return 0 }
func (k sharedKind) target(int) int { return k.to }

func (sharedKind) hit(m *Manager, s *sequence, limit int, groups []int) int { return limit }

func (sharedKind) check(i, g int, t *groupTable, n int) error {
	return checkKept(Shared, i, g, t)
}
