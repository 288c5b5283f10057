package eviction

import "github.com/pagedkv/pagedkv/allocator"

// FIFO evicts cached content in the order it was created, whatever its use
// since: a hit does not refresh a block's place, unlike LRU. Its queue holds
// every block with cached content, referenced or not; a referenced block
// that reaches the head when a victim is wanted cannot be evicted, so it is
// taken off the queue and goes to the back when it is next released (a
// second chance that keeps Victim amortized O(1)).
type FIFO struct {
	l         list
	evictable []bool
	n         int
}

var (
	_ Policy    = (*FIFO)(nil)
	_ Forgetter = (*FIFO)(nil)
	_ Hinter    = (*FIFO)(nil)
)

// NewFIFO returns an empty FIFO for block IDs in [0, capacity).
func NewFIFO(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 1)
	return &FIFO{l: newList(ln, capacity, capacity), evictable: make([]bool, capacity)}
}

// Insert makes id evictable. New content joins the back of the queue;
// content that was already queued keeps its place.
func (p *FIFO) Insert(id allocator.BlockID) {
	linked := p.l.linked(id) // range check before any slice is indexed
	if p.evictable[id] {
		misuse("FIFO", "Insert", id, inPolicy)
	}
	if !linked {
		p.l.pushBack(id)
	}
	p.evictable[id] = true
	p.n++
}

// Remove marks id referenced; it keeps its place in the queue.
func (p *FIFO) Remove(id allocator.BlockID) {
	if !p.l.linked(id) || !p.evictable[id] {
		misuse("FIFO", "Remove", id, notInPolicy)
	}
	p.evictable[id] = false
	p.n--
}

// Forget drops id's place in the queue: its content is gone.
func (p *FIFO) Forget(id allocator.BlockID) {
	if p.l.linked(id) {
		if p.evictable[id] {
			misuse("FIFO", "Forget", id, inPolicy)
		}
		p.l.remove(id)
	}
}

// Hint drops any place id still had in the queue: its content is new and
// joins the back at its first Insert. The manager normally calls Forget
// first; this covers a block that held no content but kept its place.
func (p *FIFO) Hint(id allocator.BlockID, _ Hint) {
	if p.l.linked(id) && p.evictable[id] {
		misuse("FIFO", "Hint", id, inPolicy)
	}
	p.Forget(id)
}

// Victim pops the oldest evictable content.
func (p *FIFO) Victim() (allocator.BlockID, bool) {
	if p.n == 0 {
		return allocator.NoBlock, false
	}
	for {
		id, _ := p.l.popFront()
		if p.evictable[id] {
			p.evictable[id] = false
			p.n--
			return id, true
		}
	}
}

// Len returns the number of evictable blocks.
func (p *FIFO) Len() int { return p.n }

// Contains reports whether id is evictable.
func (p *FIFO) Contains(id allocator.BlockID) bool { return p.l.linked(id) && p.evictable[id] }
