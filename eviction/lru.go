package eviction

import (
	"fmt"
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// LRU evicts the block that became evictable longest ago. In a prefix cache
// a block is evictable only while unreferenced, so "least recently used" is
// "least recently released": a hit takes the block out, and the release that
// follows puts it back as the most recent. This is vLLM v1's free-queue
// order, and tail-first release means a chain's tail goes before its head.
//
// The order is a queue in a ring of block IDs, oldest first, rather than a
// linked list: a block's place is its position in the ring (pos), a
// removal only clears that (the ring keeps a stale entry, which Victim
// skips and a compaction drops when the ring is full), and the next
// victims are the ring's next entries, read in order. A linked list's
// victims come one at a time, each found through the last one's links: at
// a random address of a large pool, a cache miss that the next eviction
// must wait for before it can even ask for the next. The ring names the
// coming victims ahead (Ahead), so a caller can touch their metadata in
// one pass whose misses overlap.
type LRU struct {
	// ring[(head+i)&mask] for i in [0, tail-head) is the queue, stale
	// entries included; tail-head never exceeds len(ring), at least twice
	// the capacity, so a full ring is at least half stale.
	ring       []int32
	mask       uint32
	head, tail uint32
	// pos[id] is 1 + the ring slot (position & mask) of block id's live
	// entry, 0 when id is not held: the entry in slot j is live iff
	// pos[its id] == j+1 (a slot holds one entry at a time, so a stale
	// entry of id is never in the slot of its live one). head and tail
	// count positions and may wrap; only their difference and slots are
	// used.
	pos      []uint32
	capacity int32
	n        int
}

var _ Policy = (*LRU)(nil)

// NewLRU returns an empty LRU for block IDs in [0, capacity).
func NewLRU(capacity int) Policy {
	capacity = max(capacity, 0)
	if capacity > MaxCapacity {
		panic(fmt.Sprintf("eviction: capacity %d exceeds MaxCapacity (%d)", capacity, MaxCapacity))
	}
	size := 1 << bits.Len(uint(max(2*capacity, 8)-1)) // a power of two, >= 2*capacity
	return &LRU{ring: make([]int32, size), mask: uint32(size - 1), pos: make([]uint32, capacity), capacity: int32(capacity)}
}

// Insert makes id the most recently released block.
func (p *LRU) Insert(id allocator.BlockID) {
	if !p.TryInsert(id) {
		p.check(id) // panics if out of range
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
	if uint32(id) >= uint32(p.capacity) || p.pos[id] != 0 {
		return false
	}
	if p.tail-p.head > p.mask {
		p.compact()
	}
	t := p.tail
	p.ring[t&p.mask] = int32(id)
	p.pos[id] = t&p.mask + 1
	p.tail = t + 1
	p.n++
	return true
}

// compact drops the stale entries of a full ring, keeping the live ones in
// order from head on. A full ring is at least half stale, so the work is
// at most twice the removals since the last compaction.
func (p *LRU) compact() {
	ring, pos, mask := p.ring, p.pos, p.mask
	w := p.head
	for r := p.head; r != p.tail; r++ {
		if id := ring[r&mask]; pos[id] == r&mask+1 {
			ring[w&mask] = id
			pos[id] = w&mask + 1
			w++
		}
	}
	p.tail = w
}

// Remove takes id out.
func (p *LRU) Remove(id allocator.BlockID) {
	if !p.TryRemove(id) {
		p.check(id) // panics if out of range
		misuse("LRU", "Remove", id, notInPolicy)
	}
}

// TryRemove is Remove as TryInsert is Insert: it reports false, changing
// nothing, where Remove would panic (id out of range or not held), and
// inlines.
func (p *LRU) TryRemove(id allocator.BlockID) bool {
	if uint32(id) >= uint32(p.capacity) || p.pos[id] == 0 {
		return false
	}
	p.pos[id] = 0 // its entry is stale now
	p.n--
	return true
}

// Victim pops the least recently released block.
func (p *LRU) Victim() (allocator.BlockID, bool) {
	ring, pos, mask := p.ring, p.pos, p.mask
	for h := p.head; h != p.tail; {
		id := ring[h&mask]
		live := pos[id] == h&mask+1
		h++
		if live {
			p.head = h
			pos[id] = 0
			p.n--
			return allocator.BlockID(id), true
		}
	}
	p.head = p.tail
	return allocator.NoBlock, false
}

// Ahead appends to dst the next k victims, oldest first, as Victim would
// return them if nothing changed (fewer when fewer are held), and returns
// dst. It changes nothing. A caller that evicts many blocks in a row uses
// it to touch their metadata in one pass before evicting them one at a
// time: the pass's loads do not depend on one another, so their cache
// misses overlap, where each eviction alone would wait for its own.
func (p *LRU) Ahead(dst []allocator.BlockID, k int) []allocator.BlockID {
	ring, pos, mask := p.ring, p.pos, p.mask
	for h := p.head; h != p.tail && k > 0; h++ {
		if id := ring[h&mask]; pos[id] == h&mask+1 {
			dst = append(dst, allocator.BlockID(id))
			k--
		}
	}
	return dst
}

// Len returns the number of blocks held.
func (p *LRU) Len() int { return p.n }

// Contains reports whether id is held.
func (p *LRU) Contains(id allocator.BlockID) bool {
	p.check(id)
	return p.pos[id] != 0
}

// check panics for an ID outside [0, capacity).
func (p *LRU) check(id allocator.BlockID) {
	if uint32(id) >= uint32(p.capacity) {
		panic(fmt.Sprintf("eviction: block %d out of range [0, %d)", id, p.capacity))
	}
}
