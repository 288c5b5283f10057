package eviction

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// list is an intrusive doubly linked list over block IDs, threaded through
// one flat slice of links, with a sentinel at index capacity. Several lists
// may share one slice as long as a block is on at most one of them, so
// multi-queue policies keep one link array and one sentinel per queue.
type list struct {
	links    []link
	sentinel int32
	capacity int32 // block IDs are [0, capacity); sentinels follow
	n        int
}

// link is one block's neighbours on its list (-1, -1: on none). The two
// sit together so that unlinking a block at a random address of a large
// pool misses the cache once, not twice.
type link struct{ prev, next int32 }

// links allocates the links of capacity blocks plus sentinels sentinels.
// Every constructor calls it first, so it also enforces MaxCapacity.
func links(capacity, sentinels int) []link {
	if capacity > MaxCapacity {
		panic(fmt.Sprintf("eviction: capacity %d exceeds MaxCapacity (%d)", capacity, MaxCapacity))
	}
	ln := make([]link, capacity+sentinels)
	for i := range ln {
		ln[i] = link{-1, -1}
	}
	return ln
}

func newList(ln []link, capacity, sentinel int) list {
	ln[sentinel] = link{int32(sentinel), int32(sentinel)}
	return list{links: ln, sentinel: int32(sentinel), capacity: int32(capacity)}
}

// linked reports whether id is on a list sharing l's links. It is the first
// thing every policy method asks, so it also rejects IDs out of range: one
// naming a sentinel would otherwise corrupt the lists. It inlines; the
// panic is formatted out of line.
func (l *list) linked(id allocator.BlockID) bool {
	if uint32(id) >= uint32(l.capacity) {
		l.outOfRange(id)
	}
	return l.links[id].next >= 0
}

// holds is linked without the panic: false for an ID out of range too.
func (l *list) holds(id allocator.BlockID) bool {
	return uint32(id) < uint32(l.capacity) && l.links[id].next >= 0
}

// outOfRange panics for an ID outside [0, capacity).
//
//go:noinline
func (l *list) outOfRange(id allocator.BlockID) {
	panic(fmt.Sprintf("eviction: block %d out of range [0, %d)", id, l.capacity))
}

// The list operations read the links slice into a local once: a store
// through it could alias l's own fields as far as the compiler knows, so
// reading l.links at each use would load it again after every store.

func (l *list) pushBack(id allocator.BlockID) {
	ln, s := l.links, l.sentinel
	last := ln[s].prev
	ln[id] = link{last, s}
	ln[last].next = int32(id)
	ln[s].prev = int32(id)
	l.n++
}

// pushFront adds id as the oldest block.
func (l *list) pushFront(id allocator.BlockID) {
	ln, s := l.links, l.sentinel
	first := ln[s].next
	ln[id] = link{s, first}
	ln[first].prev = int32(id)
	ln[s].next = int32(id)
	l.n++
}

func (l *list) remove(id allocator.BlockID) {
	ln := l.links
	x := ln[id]
	ln[x.prev].next = x.next
	ln[x.next].prev = x.prev
	ln[id] = link{-1, -1}
	l.n--
}

// front returns the oldest block, or false when the list is empty.
func (l *list) front() (allocator.BlockID, bool) {
	f := l.links[l.sentinel].next
	if f == l.sentinel {
		return allocator.NoBlock, false
	}
	return allocator.BlockID(f), true
}

// popFront removes and returns the oldest block.
func (l *list) popFront() (allocator.BlockID, bool) {
	ln, s := l.links, l.sentinel
	f := ln[s].next
	if f == s {
		return allocator.NoBlock, false
	}
	next := ln[f].next
	ln[s].next = next
	ln[next].prev = s
	ln[f] = link{-1, -1}
	l.n--
	return allocator.BlockID(f), true
}
