package bench

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// Belady is the clairvoyant eviction policy of Belady's MIN algorithm
// ("A study of replacement algorithms for a virtual-storage computer",
// 1966): its victim is the evictable block whose content is next used
// farthest in the future. It needs the future, so it lives here and not in
// package eviction: the replay driver tells it, through SetNext, when each
// block's content is next referenced before the block is released.
//
// Under prefix semantics MIN is an oracle heuristic, not a proven optimum: a
// block whose next reference follows a miss earlier in that request cannot
// hit anyway. A parent is never used later than its children (every request
// that reaches a child passes through its parent), so ties are broken
// deepest block first, and then by higher block ID, for determinism.
//
// The evictable blocks sit in an indexed binary heap: Insert, Remove and
// Victim cost O(log n) and allocate nothing.
type Belady struct {
	next  []int32 // per block: the request index of its next use
	depth []int32 // per block: its position in its request
	pos   []int32 // per block: its index in heap, -1 when not held
	heap  []allocator.BlockID
}

var _ eviction.Policy = (*Belady)(nil)

// NewBelady returns an empty Belady policy for block IDs in [0, capacity).
// A negative capacity is taken as 0, as eviction.Factory documents.
func NewBelady(capacity int) *Belady {
	capacity = max(capacity, 0)
	p := &Belady{
		next:  make([]int32, capacity),
		depth: make([]int32, capacity),
		pos:   make([]int32, capacity),
		heap:  make([]allocator.BlockID, 0, capacity),
	}
	for i := range p.pos {
		p.pos[i] = -1
	}
	return p
}

// SetNext records that block id's content is next referenced by request
// next (math.MaxInt32 for never) at position depth of that request's
// blocks. It must be called while the block is not in the policy, before
// its release inserts it.
func (p *Belady) SetNext(id allocator.BlockID, next, depth int32) {
	if p.pos[id] >= 0 {
		panic(fmt.Sprintf("bench: Belady.SetNext of block %d while it is evictable", id))
	}
	p.next[id], p.depth[id] = next, depth
}

// renew moves block id's next use to next, evictable or not: the driver
// calls it when a request that was id's next use passes without touching
// it (the request missed before it, or was too long for the cache).
func (p *Belady) renew(id allocator.BlockID, next int32) {
	p.next[id] = next
	if i := p.pos[id]; i >= 0 {
		p.down(int(i))
		p.up(int(p.pos[id]))
	}
}

// Insert makes id evictable.
func (p *Belady) Insert(id allocator.BlockID) {
	if p.pos[id] >= 0 {
		panic(fmt.Sprintf("bench: Belady.Insert of block %d: already in the policy", id))
	}
	p.pos[id] = int32(len(p.heap))
	p.heap = append(p.heap, id)
	p.up(len(p.heap) - 1)
}

// Remove takes id out.
func (p *Belady) Remove(id allocator.BlockID) {
	i := p.pos[id]
	if i < 0 {
		panic(fmt.Sprintf("bench: Belady.Remove of block %d: not in the policy", id))
	}
	p.removeAt(int(i))
}

// Victim removes and returns the block used farthest in the future.
func (p *Belady) Victim() (allocator.BlockID, bool) {
	if len(p.heap) == 0 {
		return allocator.NoBlock, false
	}
	id := p.heap[0]
	p.removeAt(0)
	return id, true
}

// Len returns the number of blocks held.
func (p *Belady) Len() int { return len(p.heap) }

// Contains reports whether id is held.
func (p *Belady) Contains(id allocator.BlockID) bool { return p.pos[id] >= 0 }

// before reports whether a is to be evicted before b.
func (p *Belady) before(a, b allocator.BlockID) bool {
	if p.next[a] != p.next[b] {
		return p.next[a] > p.next[b]
	}
	if p.depth[a] != p.depth[b] {
		return p.depth[a] > p.depth[b]
	}
	return a > b
}

func (p *Belady) removeAt(i int) {
	id := p.heap[i]
	last := len(p.heap) - 1
	if i != last {
		p.swap(i, last)
	}
	p.heap = p.heap[:last]
	p.pos[id] = -1
	if i != last {
		p.down(i)
		p.up(i)
	}
}

func (p *Belady) swap(i, j int) {
	h := p.heap
	h[i], h[j] = h[j], h[i]
	p.pos[h[i]], p.pos[h[j]] = int32(i), int32(j)
}

func (p *Belady) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !p.before(p.heap[i], p.heap[parent]) {
			return
		}
		p.swap(i, parent)
		i = parent
	}
}

func (p *Belady) down(i int) {
	n := len(p.heap)
	for {
		best := i
		if l := 2*i + 1; l < n && p.before(p.heap[l], p.heap[best]) {
			best = l
		}
		if r := 2*i + 2; r < n && p.before(p.heap[r], p.heap[best]) {
			best = r
		}
		if best == i {
			return
		}
		p.swap(i, best)
		i = best
	}
}
