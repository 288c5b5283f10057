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
	if p.l.linked(id) {
		misuse("LRU", "Insert", id, inPolicy)
	}
	p.l.pushBack(id)
}

// Remove takes id out.
func (p *LRU) Remove(id allocator.BlockID) {
	if !p.l.linked(id) {
		misuse("LRU", "Remove", id, notInPolicy)
	}
	p.l.remove(id)
}

// Victim pops the least recently released block.
func (p *LRU) Victim() (allocator.BlockID, bool) { return p.l.popFront() }

// Len returns the number of blocks held.
func (p *LRU) Len() int { return p.l.n }

// Contains reports whether id is held.
func (p *LRU) Contains(id allocator.BlockID) bool { return p.l.linked(id) }
