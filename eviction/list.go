package eviction

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// list is an intrusive doubly linked list over block IDs, threaded through
// two flat slices, with a sentinel at index capacity. Several lists may share
// one pair of slices as long as a block is on at most one of them, so
// multi-queue policies keep one link array and one sentinel per queue.
type list struct {
	prev, next []int32
	sentinel   int32
	capacity   int32 // block IDs are [0, capacity); sentinels follow
	n          int
}

// links allocates link arrays for capacity blocks plus sentinels sentinels.
// Every constructor calls it first, so it also enforces MaxCapacity.
func links(capacity, sentinels int) (prev, next []int32) {
	if capacity > MaxCapacity {
		panic(fmt.Sprintf("eviction: capacity %d exceeds MaxCapacity (%d)", capacity, MaxCapacity))
	}
	prev = make([]int32, capacity+sentinels)
	next = make([]int32, capacity+sentinels)
	for i := range prev {
		prev[i], next[i] = -1, -1
	}
	return prev, next
}

func newList(prev, next []int32, capacity, sentinel int) list {
	l := list{prev: prev, next: next, sentinel: int32(sentinel), capacity: int32(capacity)}
	prev[sentinel], next[sentinel] = int32(sentinel), int32(sentinel)
	return l
}

// linked reports whether id is on a list sharing l's links. It is the first
// thing every policy method asks, so it also rejects IDs out of range: one
// naming a sentinel would otherwise corrupt the lists.
func (l *list) linked(id allocator.BlockID) bool {
	if uint32(id) >= uint32(l.capacity) {
		panic(fmt.Sprintf("eviction: block %d out of range [0, %d)", id, l.capacity))
	}
	return l.next[id] >= 0
}

func (l *list) pushBack(id allocator.BlockID) {
	s := l.sentinel
	last := l.prev[s]
	l.prev[id], l.next[id] = last, s
	l.next[last] = int32(id)
	l.prev[s] = int32(id)
	l.n++
}

func (l *list) remove(id allocator.BlockID) {
	p, n := l.prev[id], l.next[id]
	l.next[p], l.prev[n] = n, p
	l.prev[id], l.next[id] = -1, -1
	l.n--
}

// front returns the oldest block, or false when the list is empty.
func (l *list) front() (allocator.BlockID, bool) {
	f := l.next[l.sentinel]
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
