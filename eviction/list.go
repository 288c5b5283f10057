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
// naming a sentinel would otherwise corrupt the lists.
func (l *list) linked(id allocator.BlockID) bool {
	if uint32(id) >= uint32(l.capacity) {
		panic(fmt.Sprintf("eviction: block %d out of range [0, %d)", id, l.capacity))
	}
	return l.links[id].next >= 0
}

func (l *list) pushBack(id allocator.BlockID) {
	s := l.sentinel
	last := l.links[s].prev
	l.links[id] = link{last, s}
	l.links[last].next = int32(id)
	l.links[s].prev = int32(id)
	l.n++
}

func (l *list) remove(id allocator.BlockID) {
	ln := l.links[id]
	l.links[ln.prev].next, l.links[ln.next].prev = ln.next, ln.prev
	l.links[id] = link{-1, -1}
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
	id, ok := l.front()
	if ok {
		l.remove(id)
	}
	return id, ok
}
