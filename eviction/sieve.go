package eviction

import "github.com/pagedkv/pagedkv/allocator"

// SIEVE evicts in FIFO order but spares content that was hit since the hand
// last passed it (Zhang et al., "SIEVE is Simpler than LRU: an Efficient
// Turn-Key Eviction Algorithm for Web Caches", NSDI 2024).
//
// New content joins the head of a queue; a hit (Access) only sets a visited
// bit. The hand walks from the tail (oldest) toward the head, clearing
// visited bits, and evicts the first unvisited block it meets; it stays
// where it stopped for the next eviction and wraps to the tail at the head.
// Unlike CLOCK, a spared block keeps its place, so new content that is not
// reused quickly passes the hand and goes first ("quick demotion").
//
// As in FIFO, the queue holds content whether or not the block is
// referenced at the moment. A referenced block under the hand cannot be
// evicted, so it leaves the queue and rejoins at the head on its next
// release. Victim is amortized O(1): each step of the hand that does not
// evict is paid for by the Access that set a bit or the Insert that queued a
// block. Everything else is O(1).
type SIEVE struct {
	l         list  // front = tail (oldest), back = head (newest)
	hand      int32 // next block the hand examines; -1: start at the tail
	visited   []bool
	evictable []bool
	n         int
}

var (
	_ Policy    = (*SIEVE)(nil)
	_ Accessor  = (*SIEVE)(nil)
	_ Forgetter = (*SIEVE)(nil)
	_ Hinter    = (*SIEVE)(nil)
)

// NewSIEVE returns an empty SIEVE for block IDs in [0, capacity).
func NewSIEVE(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 1)
	return &SIEVE{
		l:         newList(ln, capacity, capacity),
		hand:      -1,
		visited:   make([]bool, capacity),
		evictable: make([]bool, capacity),
	}
}

// Insert makes id evictable; new content joins the head of the queue.
func (p *SIEVE) Insert(id allocator.BlockID) {
	if p.l.linked(id) {
		if p.evictable[id] {
			misuse("SIEVE", "Insert", id, inPolicy)
		}
	} else {
		p.l.pushBack(id)
	}
	p.evictable[id] = true
	p.n++
}

// Remove marks id referenced; it keeps its place and its bit.
func (p *SIEVE) Remove(id allocator.BlockID) {
	if !p.l.linked(id) || !p.evictable[id] {
		misuse("SIEVE", "Remove", id, notInPolicy)
	}
	p.evictable[id] = false
	p.n--
}

// Access marks id visited.
func (p *SIEVE) Access(id allocator.BlockID) {
	p.l.linked(id) // range check
	p.visited[id] = true
}

// Forget drops id's place and bit: its content is gone.
func (p *SIEVE) Forget(id allocator.BlockID) {
	if p.l.linked(id) {
		if p.evictable[id] {
			misuse("SIEVE", "Forget", id, inPolicy)
		}
		p.unlink(id)
	}
	p.visited[id] = false
}

// Hint clears what id knew of earlier content: its content is new.
func (p *SIEVE) Hint(id allocator.BlockID, _ Hint) {
	if p.l.linked(id) && p.evictable[id] {
		misuse("SIEVE", "Hint", id, inPolicy)
	}
	p.Forget(id)
}

// unlink takes id off the queue, moving the hand on if it pointed at id.
func (p *SIEVE) unlink(id allocator.BlockID) {
	if p.hand == int32(id) {
		p.hand = p.after(id)
	}
	p.l.remove(id)
}

// after is the block the hand visits after id: the next newer one, or the
// tail again once it has passed the head.
func (p *SIEVE) after(id allocator.BlockID) int32 {
	if nx := p.l.links[id].next; nx != p.l.sentinel {
		return nx
	}
	return -1
}

// Victim moves the hand to the first unvisited evictable block and evicts it.
func (p *SIEVE) Victim() (allocator.BlockID, bool) {
	if p.n == 0 {
		return allocator.NoBlock, false
	}
	for {
		if p.hand < 0 {
			f, _ := p.l.front()
			p.hand = int32(f)
		}
		id := allocator.BlockID(p.hand)
		switch {
		case !p.evictable[id]:
			// Referenced: rejoins at the head when released.
			p.unlink(id)
		case p.visited[id]:
			p.visited[id] = false
			p.hand = p.after(id)
		default:
			p.unlink(id)
			p.evictable[id] = false
			p.n--
			return id, true
		}
	}
}

// Len returns the number of evictable blocks.
func (p *SIEVE) Len() int { return p.n }

// Contains reports whether id is evictable.
func (p *SIEVE) Contains(id allocator.BlockID) bool { return p.l.linked(id) && p.evictable[id] }
