package eviction

import "github.com/pagedkv/pagedkv/allocator"

// CLOCK is FIFO with a second chance (Corbató, "A paging experiment with the
// Multics system", 1968). Cached content queues in creation order, as in
// FIFO, and carries a reference bit that every prefix hit (Access) sets.
// The hand is the head of the queue: a block found there with its bit set
// has the bit cleared and goes to the back instead of being evicted.
//
// As in FIFO, the queue holds content whether or not the block is
// referenced at the moment; a referenced block found at the hand cannot be
// evicted, so it leaves the queue and rejoins at the back on its next
// release. Victim is amortized O(1): each step of the hand that does not
// evict is paid for by the Access that set a bit or the Insert that queued a
// block. Everything else is O(1).
type CLOCK struct {
	l         list // head = hand
	ref       []bool
	evictable []bool
	n         int
}

var (
	_ Policy    = (*CLOCK)(nil)
	_ Accessor  = (*CLOCK)(nil)
	_ Forgetter = (*CLOCK)(nil)
	_ Hinter    = (*CLOCK)(nil)
)

// NewCLOCK returns an empty CLOCK for block IDs in [0, capacity).
func NewCLOCK(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 1)
	return &CLOCK{
		l:         newList(ln, capacity, capacity),
		ref:       make([]bool, capacity),
		evictable: make([]bool, capacity),
	}
}

// Insert makes id evictable; new content joins the back of the queue.
func (p *CLOCK) Insert(id allocator.BlockID) {
	if p.l.linked(id) {
		if p.evictable[id] {
			misuse("CLOCK", "Insert", id, inPolicy)
		}
	} else {
		p.l.pushBack(id)
	}
	p.evictable[id] = true
	p.n++
}

// Remove marks id referenced; it keeps its place and its bit.
func (p *CLOCK) Remove(id allocator.BlockID) {
	if !p.l.linked(id) || !p.evictable[id] {
		misuse("CLOCK", "Remove", id, notInPolicy)
	}
	p.evictable[id] = false
	p.n--
}

// Access sets id's reference bit.
func (p *CLOCK) Access(id allocator.BlockID) {
	p.l.linked(id) // range check
	p.ref[id] = true
}

// Forget drops id's place and bit: its content is gone.
func (p *CLOCK) Forget(id allocator.BlockID) {
	if p.l.linked(id) {
		if p.evictable[id] {
			misuse("CLOCK", "Forget", id, inPolicy)
		}
		p.l.remove(id)
	}
	p.ref[id] = false
}

// Hint clears what id knew of earlier content: its content is new.
func (p *CLOCK) Hint(id allocator.BlockID, _ Hint) {
	if p.l.linked(id) && p.evictable[id] {
		misuse("CLOCK", "Hint", id, inPolicy)
	}
	p.Forget(id)
}

// Victim advances the hand to the first evictable block whose bit is clear.
func (p *CLOCK) Victim() (allocator.BlockID, bool) {
	if p.n == 0 {
		return allocator.NoBlock, false
	}
	for {
		id, _ := p.l.popFront()
		switch {
		case !p.evictable[id]:
			// Referenced: rejoins at the back when released.
		case p.ref[id]:
			p.ref[id] = false
			p.l.pushBack(id)
		default:
			p.evictable[id] = false
			p.n--
			return id, true
		}
	}
}

// Len returns the number of evictable blocks.
func (p *CLOCK) Len() int { return p.n }

// Contains reports whether id is evictable.
func (p *CLOCK) Contains(id allocator.BlockID) bool { return p.l.linked(id) && p.evictable[id] }
