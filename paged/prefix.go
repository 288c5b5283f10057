package paged

import (
	"encoding/binary"
	"fmt"

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
	for i := 0; i < max && i < len(hashes); i++ {
		id, ok := m.index.get(&hashes[i])
		if !ok {
			if id, ok = m.hostHit(&hashes[i]); !ok {
				break
			}
		}
		dst = append(dst, id)
	}
	return dst
}

// claim takes a reference to a block found by lookup: an evictable block
// leaves the policy, a held one gains a reference.
func (m *Manager) claim(id allocator.BlockID) {
	if m.accessor != nil {
		m.accessor.Access(id)
	}
	if m.pool.IsCached(id) {
		m.policy.Remove(id)
		m.pool.Claim(id)
		return
	}
	m.pool.Ref(id)
}

// commit records that block id holds the content named by h.
func (m *Manager) commit(id allocator.BlockID, h Hash, depth int, parent allocator.BlockID, s *sequence) {
	m.hash[id] = h
	m.parent[id] = m.root
	if depth > 0 {
		m.parent[id] = s.hashes[depth-1]
	}
	m.cached[id] = true
	if head, ok := m.index.get(&h); ok {
		tail := m.dupPrev[head]
		m.dupNext[tail], m.dupPrev[id] = id, tail
		m.dupNext[id], m.dupPrev[head] = head, id
	} else {
		m.index.set(&h, id)
		m.dupNext[id], m.dupPrev[id] = id, id
	}
	m.stats.stored++
	if m.tier != nil {
		m.tier.notePriority(id, s, m.now)
	}
	if m.hinter != nil {
		hint := eviction.Hint{
			Key:      binary.LittleEndian.Uint64(h[:8]),
			Depth:    int32(depth),
			Parent:   parent,
			Priority: eviction.DefaultPriority,
		}
		if r := s.opts.Retention; r != nil {
			hint.Priority = r.Priority
			if r.Ticks > 0 {
				hint.Expires = m.now + r.Ticks
			}
		}
		m.hinter.Hint(id, hint)
	}
}

// uncache removes block id's content from the index and reports it.
func (m *Manager) uncache(id allocator.BlockID, report bool) {
	h := &m.hash[id]
	next := m.dupNext[id]
	if next == id {
		m.index.del(h)
	} else {
		prev := m.dupPrev[id]
		m.dupNext[prev], m.dupPrev[next] = next, prev
		if head, _ := m.index.get(h); head == id {
			m.index.set(h, next)
		}
	}
	m.cached[id] = false
	if report {
		m.events.removed(h, Device)
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

// extraKeys encodes the extra hash keys of block k of s into the manager's
// scratch buffer: the LoRA ID on every block, the cache salt on the first
// block only, and the content hashes of multimodal inputs overlapping it.
func (m *Manager) extraKeys(s *sequence, k int) []byte {
	b := m.extraBuf[:0]
	if s.opts.LoRA != 0 {
		b = append(b, 'L')
		b = binary.LittleEndian.AppendUint32(b, uint32(s.opts.LoRA))
	}
	if k == 0 && s.opts.Salt != "" {
		b = append(b, 'S')
		b = binary.AppendUvarint(b, uint64(len(s.opts.Salt)))
		b = append(b, s.opts.Salt...)
	}
	lo, hi := k*m.bs, (k+1)*m.bs
	for _, r := range s.opts.MM {
		if r.Start < hi && r.End > lo {
			b = append(b, 'M')
			b = binary.AppendUvarint(b, uint64(len(r.Hash)))
			b = append(b, r.Hash...)
		}
	}
	m.extraBuf = b
	return b
}

// hashFull extends s.hashes over every full, non-speculative block whose
// tokens are known.
func (m *Manager) hashFull(s *sequence) {
	if !m.hashing {
		return
	}
	limit := min((len(s.tokens)-s.spec)/m.bs, s.hashLimit)
	for k := len(s.hashes); k < limit; k++ {
		parent := &m.root
		if k > 0 {
			parent = &s.hashes[k-1]
		}
		s.hashes = append(s.hashes, m.cfg.Hasher.Sum(parent, s.tokens[k*m.bs:(k+1)*m.bs], m.extraKeys(s, k)))
	}
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
		m.commit(b, s.hashes[k], k, parent, s)
	}
	s.committed = limit
	if m.events.on() {
		var parent *Hash
		if from > 0 {
			parent = &s.hashes[from-1]
		}
		m.events.stored(s.hashes[from:limit], parent, s.tokens[from*m.bs:limit*m.bs], m.bs, s.opts.LoRA, Device)
	}
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
		m.policy.Remove(id)
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
