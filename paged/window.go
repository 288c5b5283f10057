package paged

import (
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// Sliding-window attention (SeqOptions.Window = W): the query at position p
// reads the keys of positions [p-W+1, p] only. Once every token before
// position c is computed and the next one to compute is c, the blocks
// wholly before c-W+1 are dead: they are released (their cached content
// stays hittable for other sequences) and their table entries name the null
// block 0, so tables keep their length and kernels index them as before,
// as in vLLM. A windowed sequence holds about W/BlockSize+1 blocks however
// long it grows.
//
// Rolling back (Truncate, AcceptSpeculative) never reaches past released
// blocks, as vLLM's sliding-window manager never does: the window slides
// from the accepted length (speculative drafts do not count, so rejecting
// every draft leaves their window readable), and Truncate to a length whose
// next query would read a released position is refused with ErrInvalid,
// changing nothing. Check verifies that the positions the query at the
// accepted length reads are all backed by real blocks.

// windowStart returns the first block still needed when the next position
// to compute is c, under window w.
func (m *Manager) windowStart(w, c int) int { return windowStart(w, c, m.bs) }

// windowStart is the first block of bs tokens that the window w of the
// query at position c reaches.
func windowStart(w, c, bs int) int {
	if c-w+1 <= 0 {
		return 0
	}
	return (c - w + 1) / bs
}

// present finds content in the device index, else the host index.
func (m *Manager) present(h *Hash) (allocator.BlockID, bool) {
	if id, ok := m.bp.index.get(h); ok {
		return id, true
	}
	return m.hostHit(h)
}

// lookupWindow is lookup for a windowed sequence: a hit of h blocks only
// needs the blocks that the window of position h*BlockSize reaches, so it
// searches right to left for the longest h whose needed blocks are all
// cached (vLLM's sliding-window manager does the same). The entries before
// the needed run are null blocks.
func (m *Manager) lookupWindow(dst []allocator.BlockID, hashes []Hash, max, w int) []allocator.BlockID {
	if !m.hashing {
		return dst
	}
	max = min(max, len(hashes))
	end := -1
	for i := max - 1; i >= 0; i-- {
		if _, ok := m.present(&hashes[i]); !ok {
			end = -1
			continue
		}
		if end < 0 {
			end = i + 1
		}
		if i > m.windowStart(w, end*m.bs) {
			continue
		}
		for range i {
			dst = append(dst, nullBlock)
		}
		for j := i; j < end; j++ {
			id, _ := m.present(&hashes[j])
			dst = append(dst, id)
		}
		return dst
	}
	return dst
}

// slideFrom is the position the window of s slides from when tokens are
// appended: its accepted length, every token before which the caller has
// computed. Unaccepted drafts do not move it, since AcceptSpeculative may
// roll them back. For drafts (spec) it is one less: a speculative step
// appends the token sampled last (Append) and the drafts after it
// (AppendSpeculative) and computes them together, so the last accepted
// token's query, which reads the window before it, is still to run (vLLM
// slides from num_computed_tokens, the same position).
func slideFrom(s *sequence, spec bool) int {
	c := len(s.tokens) - s.spec
	if spec {
		c--
	}
	return c
}

// minTruncate returns the shortest length s may be truncated to: the query
// at that position must read no released entry.
func (m *Manager) minTruncate(s *sequence) int {
	if s.released == 0 {
		return 1
	}
	return s.released*m.bs + s.opts.Window - 1
}

// slidable counts the blocks that sliding s to next position c frees for
// allocation (sole references), for Append's availability check.
func (m *Manager) slidable(s *sequence, c int) int {
	if s.opts.Window == 0 {
		return 0
	}
	n := 0
	to := m.windowStart(s.opts.Window, c)
	for k := s.released; k < to; k++ {
		if m.bp.frees(s.blocks[k]) {
			n++
		}
	}
	if n > 0 && len(m.bp.parked) > 0 {
		// A parked copy source whose copies write only blocks the slide
		// frees goes with them.
		n += m.bp.unparks(func(d allocator.BlockID) bool {
			i := slices.Index(s.blocks[s.released:to], d)
			return i >= 0 && m.bp.frees(d)
		})
	}
	return n
}

// slide releases the blocks of s that the window of position c no longer
// reaches, tail first, and points their entries at the null block.
func (m *Manager) slide(s *sequence, c int) {
	if s.opts.Window == 0 {
		return
	}
	to := m.windowStart(s.opts.Window, c)
	if to <= s.released {
		return
	}
	m.bp.releaseTail(s.blocks[:to], s.released)
	for k := s.released; k < to; k++ {
		s.blocks[k] = nullBlock
	}
	s.released = to
	// Released blocks were full and hashed, hence committed; a sequence
	// whose hashes stop early (AddFromHashes) counts them as done too.
	s.committed = max(s.committed, min(to, len(s.hashes)))
	s.version++
}
