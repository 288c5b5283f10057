package paged

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// The prefix index maps a chain hash to the blocks holding that content.
// Duplicates are allowed (two sequences may fill blocks with the same
// content independently, and tables are append-only), so each hash heads a
// circular list threaded through the index's blockLinks in insertion order,
// and a lookup takes the first-inserted block, as vLLM does.

// lookup appends to dst the blocks of the longest run of leading hashes
// present in the index (or the host tier), at most max of them, and
// counts the evictable and the host hits (blockPool.lookup); nothing
// without prefix caching.
func (m *Manager) lookup(dst []allocator.BlockID, hashes []Hash, max int) (hits []allocator.BlockID, evictable, host int) {
	if !m.hashing {
		return dst, 0, 0
	}
	return m.bp.lookup(dst, hashes, max)
}

// claim takes a reference to a block found by lookup (blockPool.claim).
func (m *Manager) claim(id allocator.BlockID) { m.bp.claim(id) }

// commit records that block id holds the content named by *h for KV
// cache group g, at depth in s's chain after block parent: in the pool,
// then, where there are events, a host tier or a hinting policy, the
// chain hash before it for snapshots, the tier's priorities and the
// policy's hints (noteCommit). The hash is passed by pointer and the rare
// part kept out of line, so that the common commit, the pool's alone,
// copies nothing and tests three fields.
func (m *Manager) commit(id allocator.BlockID, h *Hash, g, depth int, parent allocator.BlockID, s *sequence) {
	m.bp.commit(id, h, g)
	m.stats.stored++
	if m.bp.parent != nil || m.tier != nil || m.bp.hinter != nil {
		m.noteCommit(id, h, g, depth, parent, s)
	}
}

// noteCommit is commit's part for events, the host tier and a hinting
// policy: the content takes the retention of the sequence committing it.
func (m *Manager) noteCommit(id allocator.BlockID, h *Hash, g, depth int, parent allocator.BlockID, s *sequence) {
	level, until := eviction.DefaultPriority, int64(0)
	if r := s.opts.Retention; r != nil {
		level = r.Priority
		if r.Ticks > 0 {
			until = expiry(m.now, r.Ticks)
		}
	}
	m.noteCommitAt(id, h, g, depth, parent, s, level, until)
}

// noteCommitAt is noteCommit with the content's retention given: level
// until the tick until (0: for good), then the default.
func (m *Manager) noteCommitAt(id allocator.BlockID, h *Hash, g, depth int, parent allocator.BlockID, s *sequence, level int, until int64) {
	if m.bp.parent != nil {
		prev := &m.chain.root
		if depth > 0 {
			prev = &s.hashes[depth-1]
		}
		m.bp.parent[id] = *prev
	}
	if t := m.tier; t != nil {
		// The retention the offload floor reads (hostTier.priority).
		t.prio[id], t.expires[id] = int8(level), until
	}
	if m.bp.hinter != nil {
		m.bp.hinter.Hint(id, eviction.Hint{
			Key:      binary.LittleEndian.Uint64(h[:8]) ^ uint64(groupSalt(g)),
			Depth:    int32(depth),
			Parent:   parent,
			Priority: level,
			Expires:  until,
		})
	}
}

// retainHits passes s's retention promise (SeqOptions.Retention), if it
// made one, to a policy that keeps promises (eviction.Retainer) for every
// device block s's admission just claimed through a hit, in every group:
// a reused block keeps the highest level that a request in force asked
// for. Without a promise it costs one test, so the common admission is
// not slowed (it inlines; the rest is out of line).
func (m *Manager) retainHits(s *sequence) {
	if s.opts.Retention != nil {
		m.promiseHits(s)
	}
}

// promiseHits is retainHits for a sequence with a Retention. The host
// tier's offload floor (Config.OffloadPriority) reads a retention too, so
// a reuse raises what the tier knows as well (raiseOffload).
func (m *Manager) promiseHits(s *sequence) {
	rt, _ := m.bp.policy.(eviction.Retainer)
	if rt == nil && m.tier == nil {
		return
	}
	n := m.promiseRow(rt, m.hits, s.opts.Retention)
	for _, row := range m.ghits {
		n += m.promiseRow(rt, row, s.opts.Retention)
	}
	m.stats.retained += n + m.promiseRow(rt, m.ret.hitPages, s.opts.Retention)
}

// promiseRow passes r to rt (if not nil) and the host tier (if any) for
// the device blocks of row, and returns how many it passed to rt.
func (m *Manager) promiseRow(rt eviction.Retainer, row []allocator.BlockID, r *Retention) (n uint64) {
	var until int64
	if r.Ticks > 0 {
		until = expiry(m.now, r.Ticks)
	}
	for _, b := range row {
		if b <= nullBlock { // a window's null entry or a host hit
			continue
		}
		if rt != nil {
			rt.Retain(b, r.Priority, until)
			n++
		}
		if m.tier != nil {
			raiseOffload(m.tier, b, r.Priority, until, m.now)
		}
	}
	return n
}

// raiseOffload lifts the retention the host tier keeps for device block b
// (Manager.noteCommitAt: one level until a tick, then the default) to a
// reuse's promise. The tier keeps one step, so while a promise above the
// default is recorded, the two merge upwards as the priority policy's
// steps do: the higher level until the later tick, which offloads for
// longer than promised, never shorter; a promise at or below the default
// changes nothing then. Otherwise a higher promise replaces what is
// recorded.
func raiseOffload(t *hostTier, b allocator.BlockID, priority int, until, now int64) {
	cur := t.priority(b, now)
	if cur <= eviction.DefaultPriority {
		if priority > cur {
			t.prio[b], t.expires[b] = int8(priority), until
		}
		return
	}
	if priority <= eviction.DefaultPriority {
		return
	}
	end := t.expires[b] // in the future: cur is in force
	if end != 0 && (until == 0 || until > end) {
		end = until
	}
	t.prio[b], t.expires[b] = int8(max(cur, priority)), end
}

// expiry returns now+ticks, saturated: a priority meant to last very long
// must not wrap around into the past.
func expiry(now, ticks int64) int64 {
	if ticks > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + ticks
}

// hashFull extends s.hashes over every full, non-speculative block whose
// tokens are known. More than one block at a time (tokens appended in a
// chunk, or again after a truncation) goes through the hash memo, if
// there is one; a decode step's block is new content, which the memo
// cannot know.
func (m *Manager) hashFull(s *sequence) {
	if !m.hashing {
		return
	}
	limit := min(m.fullBlocks(len(s.tokens)-s.spec), s.hashLimit)
	if s.pend != nil && len(s.pend.hashes) > 0 {
		m.reusePending(s, limit)
	}
	if k := len(s.hashes); k < limit {
		if m.bp.memo != nil && limit-k > 1 {
			var recalled int
			s.hashes, recalled = m.promptHashes(s.hashes, s.tokens, s.keys(), s.plain, k, limit)
			m.stats.hashed += uint64(limit - k - recalled)
			m.stats.recalled += uint64(recalled)
			return
		}
		m.stats.hashed += uint64(limit - k)
	}
	s.hashes = m.chain.extend(s.hashes, s.tokens, s.keys(), len(s.hashes), limit)
}

// reusePending extends s.hashes, up to limit blocks, with the hashes
// AdmitChunk kept for the tokens it cut off (sequence.pend), as long as
// each block's tokens are those its kept hash was computed over and the
// hash before it in s.hashes is the parent the kept hash was chained to:
// then the kept hash is the one hashing would give (the extra keys, fixed
// for a sequence's life, are the same too). The first block that differs
// drops what is left, and so does reaching the end of it or finding
// s.hashes short of its start.
func (m *Manager) reusePending(s *sequence, limit int) {
	p, bs := s.pend, m.bs
	for k := len(s.hashes); k < limit; k++ {
		j := k - p.from
		if j < 0 || j >= len(p.hashes) {
			break
		}
		parent := &p.parent
		if j > 0 {
			parent = &p.hashes[j-1]
		}
		if (k > 0 && !equal(&s.hashes[k-1], parent)) || !slices.Equal(s.tokens[k*bs:(k+1)*bs], p.tokens[j*bs:(j+1)*bs]) {
			dropPending(s)
			return
		}
		s.hashes = append(s.hashes, p.hashes[j])
	}
	if len(s.hashes) >= p.from+len(p.hashes) || len(s.hashes) < p.from {
		dropPending(s)
	}
}

// dropPending forgets the hashes AdmitChunk kept, keeping the buffers.
func dropPending(s *sequence) {
	if p := s.pend; p != nil {
		p.hashes, p.tokens = p.hashes[:0], p.tokens[:0]
	}
}

// commitFull commits every hashed block of s past s.committed and reports
// the run as one BlockStored event.
func (m *Manager) commitFull(s *sequence) {
	limit := min(len(s.hashes), len(s.blocks))
	if s.committed >= limit {
		return
	}
	m.commitRun(s, s.blocks, s.committed, limit, 0)
	if m.bp.memo != nil {
		m.remember(s, s.committed, limit)
	}
	s.committed = limit
}

// commitRun commits blocks[from:limit] of s, group g's table, whose
// content is s's hashes: Manager.commit for each block but a null entry
// (out of a sliding window) or one a fork committed first (it was
// reported then), and one BlockStored event per run of blocks committed
// here. It is commit unrolled for a run, so that a table's blocks do not
// pay a call each, nor the test for noteCommit's consumers.
func (m *Manager) commitRun(s *sequence, blocks []allocator.BlockID, from, limit, g int) {
	notes := m.bp.parent != nil || m.tier != nil || m.bp.hinter != nil
	if !notes && !m.bp.events.on() {
		// Nothing hears of the commits: the pool's loop.
		m.stats.stored += uint64(m.bp.commitRun(blocks, s.hashes, from, limit, g))
		return
	}
	first := from // the run of blocks stored here that the next event reports
	blocks, hashes, meta := blocks[:limit], s.hashes[:limit], m.bp.index.meta
	stored := 0
	for k := from; k < limit; k++ {
		b := blocks[k]
		if b == nullBlock || meta[b].cached {
			if b != nullBlock && m.bp.hash[b] != hashes[k] {
				panic(fmt.Sprintf("paged: group %d block %d holds committed content other than the sequence's tokens", g, b))
			}
			if m.bp.events.on() {
				m.storedEvent(s, first, k, g)
			}
			first = k + 1
			continue
		}
		m.bp.commit(b, &hashes[k], g)
		stored++
		if notes {
			parent := allocator.NoBlock
			if k > 0 && blocks[k-1] != nullBlock {
				parent = blocks[k-1]
			}
			m.noteCommit(b, &hashes[k], g, k, parent, s)
		}
	}
	m.stats.stored += uint64(stored)
	if m.bp.events.on() {
		m.storedEvent(s, first, limit, g)
	}
}

// storedEvent reports blocks [from, limit) of s, just committed in group
// g, as one BlockStored event.
func (m *Manager) storedEvent(s *sequence, from, limit, g int) {
	if !m.bp.events.on() || from >= limit { // a fork committed them all first
		return
	}
	var parent *Hash
	if from > 0 {
		parent = &s.hashes[from-1]
	}
	m.bp.events.stored(s.hashes[from:limit], parent, s.tokens[from*m.bs:limit*m.bs], m.bs, s.opts.LoRA, Device, g)
}

// ResetCache drops every cached block, for example after a weight update
// made all KV stale. It succeeds only when no sequence or pin holds blocks;
// otherwise it returns ErrCacheInUse and changes nothing.
//
// A copy-on-write source parked for the step's copies (see Copy) is not
// such a hold: with nothing else held, every pending copy writes a block
// that is free and kept only for its cached content, which the reset
// drops, so the copies are moot. The reset drops them (TakeCopies returns
// none of them, nor TakeSwaps those a tier directive folded into its
// stream) and frees their sources with every other block.
func (m *Manager) ResetCache() error {
	if m.bp.pool.Held() > m.parkedAlone() {
		swapped := 0
		if m.tier != nil {
			swapped = m.tier.nswapped
		}
		return errorf(ErrCacheInUse, "ResetCache: %d blocks are held by %d running sequences and %d pins; %d sequences are swapped out", m.bp.pool.Held(), m.nrunning, m.pins.live, swapped)
	}
	if m.tier != nil && m.tier.pool.Held() > 0 {
		return errorf(ErrCacheInUse, "ResetCache: %d host blocks are held by %d swapped-out sequences", m.tier.pool.Held(), m.tier.nswapped)
	}
	if len(m.bp.named) > 0 || len(m.copies) > 0 {
		// Nothing holds a copy's destination: each is free and at most
		// cached, and loses its content below.
		m.bp.unpark()
		m.copies = m.copies[:0]
		if m.tier != nil {
			// And those a tier directive folded into the stream
			// (hostTier.push).
			m.tier.moves = slices.DeleteFunc(m.tier.moves, func(d Swap) bool { return d.Kind == DeviceCopy })
		}
	}
	for id := allocator.BlockID(1); int(id) < m.bp.pool.Total(); id++ {
		if !m.bp.hasContent(id) {
			continue
		}
		m.bp.uncache(id, false)
		if m.cfg.UnifiedFreeQueue {
			// The block stays in the one free queue. With LRU it keeps
			// its place, as in vLLM; a policy that keeps state about
			// content (a level, a chain) must forget it, or a promise
			// made to the content would keep the empty block over
			// cached ones: the block rejoins the queue, empty, as the
			// most recently released.
			if m.bp.forgetter != nil {
				m.bp.policy.Remove(id)
				m.bp.forgetter.Forget(id)
				m.bp.policy.Insert(id)
			}
			continue
		}
		m.bp.unshelve(id)
		if m.bp.forgetter != nil {
			m.bp.forgetter.Forget(id)
		}
		m.bp.pool.Evict(id)
	}
	if m.tier != nil {
		m.tier.reset()
	}
	m.bp.events.cleared()
	return nil
}

// parkedAlone returns how many blocks the step's parked copy sources hold
// when nothing else holds them (each parked block's one reference is the
// parking's own), else 0.
func (m *Manager) parkedAlone() int {
	for _, b := range m.bp.parked {
		if m.bp.pool.RefCount(b.id) != 1 {
			return 0
		}
	}
	return len(m.bp.parked)
}

// samePrefixChunk is how many hashes samePrefix compares at a time: 1 KB,
// long enough for the runtime's vector comparison to run at full speed,
// short enough that finding the first difference in a chunk that has one
// costs little.
const samePrefixChunk = 32

// samePrefix returns how many leading hashes a and b have in common
// (len(a) == len(b)), comparing them samePrefixChunk at a time as one
// array (a call to the runtime's memory comparison, vectorised) before
// narrowing a difference down hash by hash: a warm prompt's lookup
// compares every hash it hits, several thousand in a row.
func samePrefix(a, b []Hash) int {
	b = b[:len(a)]
	k := 0
	for ; k+samePrefixChunk <= len(a); k += samePrefixChunk {
		if *(*[samePrefixChunk]Hash)(a[k:]) != *(*[samePrefixChunk]Hash)(b[k:]) {
			break
		}
	}
	for ; k < len(a) && equal(&a[k], &b[k]); k++ {
	}
	return k
}
