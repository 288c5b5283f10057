package paged

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// The prefix index maps a chain hash to the blocks holding that content.
// Duplicates are allowed (two sequences may fill blocks with the same
// content independently, and tables are append-only), so each hash heads a
// circular list threaded through dupNext/dupPrev in insertion order, and a
// lookup takes the first-inserted block, as vLLM does.

// lookup appends to dst the blocks of the longest run of leading hashes
// present in the index, at most max of them.
func (m *Manager) lookup(dst []allocator.BlockID, hashes []Hash, max int) []allocator.BlockID {
	if !m.hashing {
		return dst
	}
	prev := allocator.NoBlock
	for i := 0; i < max && i < len(hashes); i++ {
		id, ok := m.successor(prev, &hashes[i])
		if !ok {
			id, ok = m.index.get(&hashes[i])
		}
		if !ok {
			if id, ok = m.hostHit(&hashes[i]); !ok {
				break
			}
		}
		dst = append(dst, id)
		prev = id
	}
	return dst
}

// successor guesses that a chain's next block is the block after the
// previous hit's: a chain is usually committed in one run of blocks
// allocated in order, so a warm lookup walks the per-block arrays in order
// instead of probing the index at random. The guess stands only where the
// index would give the same answer: the block holds h and is the only
// block holding it (with duplicates, the index names the first-inserted).
func (m *Manager) successor(prev allocator.BlockID, h *Hash) (allocator.BlockID, bool) {
	next := prev + 1
	if prev <= nullBlock || int(next) >= len(m.hash) {
		return allocator.NoBlock, false
	}
	if !m.cached[next] || m.dupNext[next] != next || m.hash[next] != *h || m.groupOf(next) != 0 {
		return allocator.NoBlock, false
	}
	return next, true
}

// groupOf returns the KV cache group whose content block id holds.
func (m *Manager) groupOf(id allocator.BlockID) int {
	if m.blockGroup == nil {
		return 0
	}
	return int(m.blockGroup[id])
}

// claim takes a reference to a block found by lookup: an evictable block
// leaves the policy, a held one gains a reference.
func (m *Manager) claim(id allocator.BlockID) {
	if m.accessor != nil {
		m.accessor.Access(id)
	}
	if m.pool.IsCached(id) {
		m.unshelve(id)
		m.pool.Claim(id)
		return
	}
	m.pool.Ref(id)
}

// commit records that block id holds the content named by h for KV cache
// group g.
func (m *Manager) commit(id allocator.BlockID, h Hash, g, depth int, parent allocator.BlockID, s *sequence) {
	m.hash[id] = h
	if m.parent != nil {
		m.parent[id] = m.chain.root
		if depth > 0 {
			m.parent[id] = s.hashes[depth-1]
		}
	}
	m.cached[id] = true
	if m.blockGroup != nil {
		m.blockGroup[id] = uint8(g)
	}
	if head, dup := m.index.getOrInsert(&m.hash[id], groupSalt(g), id); dup {
		tail := m.dupPrev[head]
		m.dupNext[tail], m.dupPrev[id] = id, tail
		m.dupNext[id], m.dupPrev[head] = head, id
	} else {
		m.dupNext[id], m.dupPrev[id] = id, id
	}
	m.stats.stored++
	if m.tier != nil {
		m.tier.notePriority(id, s, m.now)
	}
	if m.hinter != nil {
		hint := eviction.Hint{
			Key:      binary.LittleEndian.Uint64(h[:8]) ^ uint64(groupSalt(g)),
			Depth:    int32(depth),
			Parent:   parent,
			Priority: eviction.DefaultPriority,
		}
		if r := s.opts.Retention; r != nil {
			hint.Priority = r.Priority
			if r.Ticks > 0 {
				hint.Expires = expiry(m.now, r.Ticks)
			}
		}
		m.hinter.Hint(id, hint)
	}
}

// expiry returns now+ticks, saturated: a priority meant to last very long
// must not wrap around into the past.
func expiry(now, ticks int64) int64 {
	if ticks > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + ticks
}

// uncache removes block id's content from the index and reports it.
func (m *Manager) uncache(id allocator.BlockID, report bool) {
	h := &m.hash[id]
	g := m.groupOf(id)
	salt := groupSalt(g)
	next := m.dupNext[id]
	if next == id {
		m.index.replaceOrDel(h, salt, id, allocator.NoBlock)
	} else {
		prev := m.dupPrev[id]
		m.dupNext[prev], m.dupPrev[next] = next, prev
		// The entry moves to the next duplicate only if id headed the list.
		m.index.replaceOrDel(h, salt, id, next)
	}
	m.cached[id] = false
	if report {
		m.events.removed(h, Device, g)
	}
	*h = Hash{}
}

// forget drops the cached content of a block that is not in the policy
// (it is held, and about to be overwritten).
func (m *Manager) forget(id allocator.BlockID) {
	m.uncache(id, true)
	if m.forgetter != nil {
		m.forgetter.Forget(id)
	}
}

// hashFull extends s.hashes over every full, non-speculative block whose
// tokens are known.
func (m *Manager) hashFull(s *sequence) {
	if !m.hashing {
		return
	}
	limit := min((len(s.tokens)-s.spec)/m.bs, s.hashLimit)
	if k := len(s.hashes); k < limit {
		m.stats.hashed += uint64(limit - k)
	}
	s.hashes = m.chain.extend(s.hashes, s.tokens, &s.opts, len(s.hashes), limit)
}

// commitFull commits every hashed block of s past s.committed and reports
// the run as one BlockStored event.
func (m *Manager) commitFull(s *sequence) {
	limit := min(len(s.hashes), len(s.blocks))
	if s.committed >= limit {
		return
	}
	from := s.committed
	for k := from; k < limit; k++ {
		b := s.blocks[k]
		if m.cached[b] {
			// A block shared with a fork that committed it first.
			if m.hash[b] != s.hashes[k] {
				panic(fmt.Sprintf("paged: block %d holds committed content other than the sequence's tokens", b))
			}
			if k == from {
				from++
			}
			continue
		}
		parent := allocator.NoBlock
		if k > 0 && s.blocks[k-1] != nullBlock { // null: out of a sliding window
			parent = s.blocks[k-1]
		}
		m.commit(b, s.hashes[k], 0, k, parent, s)
	}
	s.committed = limit
	m.storedEvent(s, from, limit, 0)
}

// storedEvent reports blocks [from, limit) of s, just committed in group
// g, as one BlockStored event.
func (m *Manager) storedEvent(s *sequence, from, limit, g int) {
	if !m.events.on() || from >= limit { // a fork committed them all first
		return
	}
	var parent *Hash
	if from > 0 {
		parent = &s.hashes[from-1]
	}
	m.events.stored(s.hashes[from:limit], parent, s.tokens[from*m.bs:limit*m.bs], m.bs, s.opts.LoRA, Device, g)
}

// ResetCache drops every cached block, for example after a weight update
// made all KV stale. It succeeds only when no sequence holds blocks;
// otherwise it returns ErrCacheInUse and changes nothing.
func (m *Manager) ResetCache() error {
	if m.pool.Held() > 0 {
		return errorf(ErrCacheInUse, "%d blocks are held by %d running sequences", m.pool.Held(), m.nrunning)
	}
	if m.tier != nil && m.tier.pool.Held() > 0 {
		return errorf(ErrCacheInUse, "%d host blocks are held by swapped-out sequences", m.tier.pool.Held())
	}
	for id := allocator.BlockID(1); int(id) < m.pool.Total(); id++ {
		if !m.cached[id] {
			continue
		}
		m.uncache(id, false)
		if m.cfg.UnifiedFreeQueue {
			// The block keeps its place in the one free queue, as in vLLM.
			continue
		}
		m.unshelve(id)
		if m.forgetter != nil {
			m.forgetter.Forget(id)
		}
		m.pool.Evict(id)
	}
	if m.tier != nil {
		m.tier.reset()
	}
	m.events.cleared()
	return nil
}
