package paged

import "github.com/pagedkv/pagedkv/allocator"

// A new prompt's prefix lookup, done while Add hashes the prompt.
//
// Hashing a long prompt with SHA-256 is a chain of dependent rounds, one
// block after another, that leaves most of the core's issue slots idle;
// the warm lookup after it is a walk over every hit (the stored hash, the
// cached and head flags, the allocator state) that no hashing hides when
// it runs on its own. Add therefore walks the cached prefix in the same
// pass: after hashing block k it looks up block k-1. One block behind,
// because the hash just stored is still on its way to the cache, and a
// load of it would wait for the store (measured: at no lag the walk cost
// more than the separate one). The hashes are still computed for every
// block; the walk stops at the first miss, as the lookup does, and gives
// exactly its answer (the same hits and evictable count): it takes the
// block after the previous hit where blockPool.guess would, else probes
// the index.
//
// The answer is kept for the sequence's next admission plan (CanAdmit,
// Admit), which takes it instead of walking again only if nothing it
// depends on changed since: the same sequence, no hashing of any sequence
// since (chain.calls: a waiting sequence's hashes change only by
// extending them), the same hit limit (which a truncation changes), no
// device index change (blockPool.gen: every commit and uncache), and no
// allocator transition between held and cached (its Allocs and Releases
// counters). Anything else, and the plan looks up as before. So the
// walk saves its cost when a prompt is admitted in the same scheduling
// pass it is added in (Create, or Add then CanAdmit or Admit); between
// engine steps blocks are committed and the plan walks again.
//
// Not walked (the plan looks up as before): managers with several KV cache
// groups or a host tier (whose index changes are not all counted),
// windowed sequences, and managers without prefix caching.

// promptWalk is the walk in progress and then its kept answer.
type promptWalk struct {
	bp *blockPool
	// on: still walking (no miss, fewer than max hits).
	on  bool
	max int
	// next is the block after the previous device hit, the guess for the
	// next one (<= nullBlock: no guess, as after a host hit).
	next      allocator.BlockID
	hits      []allocator.BlockID
	evictable int

	// What the answer holds for (see answers).
	valid    bool
	idx, gen uint32
	hashed   uint64 // chain.calls
	index    uint64 // blockPool.gen
	pool     uint64 // the allocator's Allocs + Releases

	off bool // tests: never walk, so the plan always looks up
}

// start begins a walk of at most max blocks over bp.
func (w *promptWalk) start(bp *blockPool, max int) {
	w.bp, w.valid = bp, false
	w.on, w.max = max > 0, max
	w.next = nullBlock // no guess for the first block
	w.hits = w.hits[:0]
	w.evictable = 0
}

// catchUp looks up blocks len(w.hits) to n-1, whose hashes are in hashes,
// while the walk goes on.
func (w *promptWalk) catchUp(hashes []Hash, n int) {
	for w.on && len(w.hits) < n {
		w.probe(&hashes[len(w.hits)])
	}
}

// probe looks up the next block, whose hash is h, as blockPool.lookup
// does: the block after the previous hit if it answers as the index
// would (blockPool.guess), else the index; a miss ends the walk. (There
// is no host tier to look in: see walks.)
func (w *promptWalk) probe(h *Hash) {
	p := w.bp
	id, ok := p.guess(w.next, h, 0)
	if !ok {
		if id, ok = p.index.get(h); !ok {
			w.on = false
			return
		}
	}
	if p.pool.IsCached(id) {
		w.evictable++
	}
	w.hits = append(w.hits, id)
	w.next = id + 1
	w.on = len(w.hits) < w.max
}

// stamp records what the answer, now complete, holds for: sequence slot
// idx, whose hashes the walk covered.
func (w *promptWalk) stamp(m *Manager, idx uint32, s *sequence) {
	w.valid = true
	w.idx, w.gen = idx, s.gen
	w.hashed = m.chain.calls
	w.index = m.bp.gen
	w.pool = poolStamp(m.bp.pool)
}

// poolStamp changes whenever a block passes between held and cached, the
// state a hit's evictable count reads (Claim counts an alloc,
// ReleaseToCache a release).
func poolStamp(p *allocator.Pool) uint64 {
	st := p.Stats()
	return st.Allocs + st.Releases
}

// answers reports whether the kept answer is the lookup of the first max
// blocks of s, a waiting sequence, now. The slot's generation tells a
// sequence that took the slot since (AddHashed, which hashes nothing).
func (w *promptWalk) answers(m *Manager, s *sequence, max int) bool {
	return w.valid && int(w.idx) < len(m.seqs) && &m.seqs[w.idx] == s && s.gen == w.gen &&
		max == w.max && m.chain.calls == w.hashed && m.bp.gen == w.index &&
		poolStamp(m.bp.pool) == w.pool
}

// walks reports whether the prompt of s is walked while it is hashed
// (see the comment at the top of the file).
func (m *Manager) walks(s *sequence) bool {
	return !m.walk.off && m.hashing && !m.hybrid() && m.bp.host == nil && m.bp.blockGroup == nil && s.opts.Window == 0
}

// hashPrompt sets the hashes of new sequence s (slot idx) to those of its
// first k blocks, appended to dst (empty), and walks its cached prefix
// meanwhile when it can.
func (m *Manager) hashPrompt(idx uint32, s *sequence, dst []Hash, k int) {
	m.stats.hashed += uint64(k)
	w := &m.walk
	w.valid = false
	if !m.walks(s) {
		s.hashes = m.chain.extend(dst, s.tokens, &s.opts, 0, k)
		return
	}
	n := len(s.tokens)
	max := (n - 1) / m.bs
	if s.opts.AllowFullHit {
		max = n / m.bs
	}
	w.start(&m.bp, min(max, k))
	s.hashes = m.chain.extendWalk(dst, s.tokens, &s.opts, 0, k, w)
	w.max = max
	w.stamp(m, idx, s)
}

// lookupPrompt is the lookup of the first max blocks of waiting sequence
// s for its admission plan: the answer kept from hashing its prompt if it
// still holds, else a lookup.
func (m *Manager) lookupPrompt(s *sequence, max int) (hits []allocator.BlockID, evictable, host int) {
	if w := &m.walk; w.answers(m, s, max) {
		return append(m.hits[:0], w.hits...), w.evictable, 0
	}
	return m.lookup(m.hits[:0], s.hashes, max)
}
