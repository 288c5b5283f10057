package eviction

import "github.com/pagedkv/pagedkv/allocator"

// LRU evicts the block that became evictable longest ago. In a prefix cache
// a block is evictable only while unreferenced, so "least recently used" is
// "least recently released": a hit takes the block out, and the release that
// follows puts it back as the most recent. This is vLLM v1's free-queue
// order, and tail-first release means a chain's tail goes before its head.
type LRU struct {
	l list
}

var _ Policy = (*LRU)(nil)

// NewLRU returns an empty LRU for block IDs in [0, capacity).
func NewLRU(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 1)
	return &LRU{l: newList(ln, capacity, capacity)}
}

// Insert makes id the most recently released block.
func (p *LRU) Insert(id allocator.BlockID) {
	if !p.TryInsert(id) {
		p.l.linked(id) // panics if out of range
		misuse("LRU", "Insert", id, inPolicy)
	}
}

// TryInsert is Insert for a caller that keeps its own protocol checks off
// the hot path: it reports false, changing nothing, where Insert would
// panic (id out of range or already held). Without the panic's call it
// fits the compiler's inlining budget, so a caller holding a *LRU pays a
// few instructions, not a call, for the commonest policy operation:
//
//	if !lru.TryInsert(id) {
//		lru.Insert(id) // panics with the reason
//	}
func (p *LRU) TryInsert(id allocator.BlockID) bool {
	if uint32(id) >= uint32(p.l.capacity) || p.l.links[id].next >= 0 {
		return false
	}
	p.l.pushBack(id)
	return true
}

// Remove takes id out.
func (p *LRU) Remove(id allocator.BlockID) {
	if !p.TryRemove(id) {
		p.l.linked(id) // panics if out of range
		misuse("LRU", "Remove", id, notInPolicy)
	}
}

// TryRemove is Remove as TryInsert is Insert: it reports false, changing
// nothing, where Remove would panic (id out of range or not held), and
// inlines.
func (p *LRU) TryRemove(id allocator.BlockID) bool {
	if !p.l.holds(id) {
		return false
	}
	p.l.remove(id)
	return true
}

// Victim pops the least recently released block.
func (p *LRU) Victim() (allocator.BlockID, bool) { return p.l.popFront() }

// Len returns the number of blocks held.
func (p *LRU) Len() int { return p.l.n }

// Contains reports whether id is held.
func (p *LRU) Contains(id allocator.BlockID) bool { return p.l.linked(id) }
