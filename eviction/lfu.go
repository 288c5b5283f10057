package eviction

import (
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// lfuBuckets is the number of frequency buckets: hit counts saturate at
// lfuBuckets-1. Two levels of 64-bit occupancy words cover them, so the
// lowest occupied bucket is two TrailingZeros64 away.
const lfuBuckets = 64 * 64

// LFU evicts the block whose content has had the fewest prefix hits since it
// was committed, and among equals the one released longest ago.
//
// It follows the O(1) LFU of Shah, Mitra and Matani (2010): blocks sit in
// per-frequency buckets, each an LRU list, and eviction takes the oldest
// block of the lowest non-empty bucket. The paper links its frequency
// buckets in a list and relies on a hit moving a block up by one; here a
// block also collects hits while it is referenced and out of the policy, so
// it may come back several frequencies higher. The buckets are therefore a
// fixed array indexed by the hit count (saturating at 4095) with an
// occupancy bitmap, which keeps every operation O(1).
//
// A hit is an Access call. Counts belong to content: they restart at zero
// on Hint (new content), Forget, and when the block leaves through Victim.
type LFU struct {
	buckets []list // sentinel of bucket b at capacity+b
	count   []uint32
	bucket  []uint16 // bucket of each block in the policy
	occ     [64]uint64
	summary uint64 // bit w set when occ[w] != 0
	n       int
}

var (
	_ Policy    = (*LFU)(nil)
	_ Accessor  = (*LFU)(nil)
	_ Forgetter = (*LFU)(nil)
	_ Hinter    = (*LFU)(nil)
)

// NewLFU returns an empty LFU for block IDs in [0, capacity).
func NewLFU(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, lfuBuckets)
	p := &LFU{
		buckets: make([]list, lfuBuckets),
		count:   make([]uint32, capacity),
		bucket:  make([]uint16, capacity),
	}
	for b := range p.buckets {
		p.buckets[b] = newList(ln, capacity, capacity+b)
	}
	return p
}

func (p *LFU) in(id allocator.BlockID) bool { return p.buckets[0].linked(id) }

// Insert adds id to the bucket of its hit count, as the most recent.
func (p *LFU) Insert(id allocator.BlockID) {
	if p.in(id) {
		misuse("LFU", "Insert", id, inPolicy)
	}
	b := min(p.count[id], lfuBuckets-1)
	p.bucket[id] = uint16(b)
	p.buckets[b].pushBack(id)
	p.occ[b/64] |= 1 << (b % 64)
	p.summary |= 1 << (b / 64)
	p.n++
}

// Remove takes id out; its hit count stays with its content.
func (p *LFU) Remove(id allocator.BlockID) {
	if !p.in(id) {
		misuse("LFU", "Remove", id, notInPolicy)
	}
	p.unlink(id)
}

func (p *LFU) unlink(id allocator.BlockID) {
	b := p.bucket[id]
	p.buckets[b].remove(id)
	if p.buckets[b].n == 0 {
		p.occ[b/64] &^= 1 << (b % 64)
		if p.occ[b/64] == 0 {
			p.summary &^= 1 << (b / 64)
		}
	}
	p.n--
}

// Access counts a hit on id's content. A block in the policy moves up to its
// new bucket at once, as in the paper; the manager removes it right after.
func (p *LFU) Access(id allocator.BlockID) {
	in := p.in(id) // range check first
	// Saturate: after 2^32 hits a wrapping count would make the block cold.
	if p.count[id] < lfuBuckets-1 {
		p.count[id]++
	}
	if in {
		p.unlink(id)
		p.Insert(id)
	}
}

// Hint restarts id's hit count: its content is new.
func (p *LFU) Hint(id allocator.BlockID, _ Hint) {
	if p.in(id) {
		misuse("LFU", "Hint", id, inPolicy)
	}
	p.count[id] = 0
}

// Forget restarts id's hit count: its content is gone.
func (p *LFU) Forget(id allocator.BlockID) {
	if p.in(id) {
		misuse("LFU", "Forget", id, inPolicy)
	}
	p.count[id] = 0
}

// Victim pops the least recently released block of the lowest hit count.
func (p *LFU) Victim() (allocator.BlockID, bool) {
	if p.summary == 0 {
		return allocator.NoBlock, false
	}
	w := bits.TrailingZeros64(p.summary)
	b := w*64 + bits.TrailingZeros64(p.occ[w])
	id, _ := p.buckets[b].front()
	p.unlink(id)
	p.count[id] = 0
	return id, true
}

// Len returns the number of blocks held.
func (p *LFU) Len() int { return p.n }

// Contains reports whether id is held.
func (p *LFU) Contains(id allocator.BlockID) bool { return p.in(id) }
