package eviction

import (
	"fmt"
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// MaxPriority is the highest retention level a Hint may carry.
const MaxPriority = 100

// Priority is the retention-priority LRU of TensorRT-LLM's KV cache
// manager (its "priority-based eviction" with KvCacheRetentionConfig).
// Every block has a level from 0 to 100, DefaultPriority unless its Hint
// says otherwise; all evictable blocks of a lower level go before any of a
// higher one, and within a level the least recently released goes first.
//
// A Hint may give the level an expiry tick: when the caller's Advance
// reaches it, the content falls back to DefaultPriority; an evictable
// block then joins its new level as the most recently released.
// TensorRT-LLM counts the duration from the block's first release; here
// the manager computes the absolute tick and the policy only compares it
// with the logical time it is given.
//
// Insert, Remove, Hint and Forget are O(1); Victim is O(1) through a
// two-word occupancy bitmap over the levels; Advance is amortized O(1) per
// block that lapses or is pending (see expiry).
type Priority struct {
	levels [MaxPriority + 1]list
	occ    [2]uint64
	level  []uint8
	exp    expiry
	lapse  func(allocator.BlockID) // p.revert, bound once so Advance does not allocate
	now    int64
	n      int
}

var (
	_ Policy    = (*Priority)(nil)
	_ Forgetter = (*Priority)(nil)
	_ Hinter    = (*Priority)(nil)
	_ Ticker    = (*Priority)(nil)
)

// NewPriority returns an empty priority LRU for block IDs in [0, capacity).
func NewPriority(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, MaxPriority+1)
	p := &Priority{level: make([]uint8, capacity), exp: newExpiry(capacity)}
	for l := range p.levels {
		p.levels[l] = newList(ln, capacity, capacity+l)
	}
	for i := range p.level {
		p.level[i] = DefaultPriority
	}
	p.lapse = p.revert
	return p
}

func (p *Priority) push(id allocator.BlockID) {
	l := p.level[id]
	p.levels[l].pushBack(id)
	p.occ[l/64] |= 1 << (l % 64)
	p.n++
}

func (p *Priority) unlink(id allocator.BlockID) {
	l := p.level[id]
	p.levels[l].remove(id)
	if p.levels[l].n == 0 {
		p.occ[l/64] &^= 1 << (l % 64)
	}
	p.n--
}

// Insert adds id as the most recently released block of its level.
func (p *Priority) Insert(id allocator.BlockID) {
	if p.levels[0].linked(id) {
		misuse("Priority", "Insert", id, inPolicy)
	}
	p.push(id)
}

// Remove takes id out; its level stays with its content.
func (p *Priority) Remove(id allocator.BlockID) {
	if !p.levels[0].linked(id) {
		misuse("Priority", "Remove", id, notInPolicy)
	}
	p.unlink(id)
}

// Hint sets the level of id's new content and, when h.Expires is set
// and the level is not the default, when it lapses. An expiry at or before
// the current tick applies at once. A level outside [0, 100] is a bug in
// the caller, which validates user input.
func (p *Priority) Hint(id allocator.BlockID, h Hint) {
	if p.levels[0].linked(id) {
		misuse("Priority", "Hint", id, inPolicy)
	}
	if h.Priority < 0 || h.Priority > MaxPriority {
		panic(fmt.Sprintf("eviction: Priority.Hint of block %d: priority %d outside [0, %d]", id, h.Priority, MaxPriority))
	}
	p.reset(id)
	if h.Expires > 0 && h.Expires <= p.now {
		return
	}
	p.level[id] = uint8(h.Priority)
	if h.Expires > 0 && h.Priority != DefaultPriority {
		p.exp.push(id, h.Expires)
	}
}

// Forget drops id's level: its content is gone.
func (p *Priority) Forget(id allocator.BlockID) {
	if p.levels[0].linked(id) {
		misuse("Priority", "Forget", id, inPolicy)
	}
	p.reset(id)
}

func (p *Priority) reset(id allocator.BlockID) {
	if p.exp.queued(id) {
		p.exp.remove(id)
	}
	p.level[id] = DefaultPriority
}

// Advance sets the logical time; levels that lapse at or before now
// revert to DefaultPriority. Time never goes back: an earlier now is
// ignored.
func (p *Priority) Advance(now int64) {
	if now <= p.now {
		return
	}
	p.now = now
	p.exp.expire(now, p.lapse)
}

func (p *Priority) revert(id allocator.BlockID) {
	if !p.levels[0].linked(id) {
		p.level[id] = DefaultPriority
		return
	}
	p.unlink(id)
	p.level[id] = DefaultPriority
	p.push(id)
}

// Victim pops the least recently released block of the lowest level.
func (p *Priority) Victim() (allocator.BlockID, bool) {
	var l int
	switch {
	case p.occ[0] != 0:
		l = bits.TrailingZeros64(p.occ[0])
	case p.occ[1] != 0:
		l = 64 + bits.TrailingZeros64(p.occ[1])
	default:
		return allocator.NoBlock, false
	}
	id, _ := p.levels[l].front()
	p.unlink(id)
	p.reset(id)
	return id, true
}

// Len returns the number of blocks held.
func (p *Priority) Len() int { return p.n }

// Contains reports whether id is held.
func (p *Priority) Contains(id allocator.BlockID) bool { return p.levels[0].linked(id) }
