package eviction

import "github.com/pagedkv/pagedkv/allocator"

// stampHeap is a binary min-heap of blocks by a per-block stamp (a release
// time; stamps are distinct), with each block's position kept so that any
// block can be removed in O(log n). Entries carry their stamps, so that
// sifting compares without reading the blocks' own metadata; the slices
// are sized once and nothing allocates after construction.
type stampHeap struct {
	e     []heapEntry
	pos   []int32  // index of each block in e, -1 when absent
	stamp []uint64 // owned by the policy; a block's stamp must not change while it is in the heap
}

type heapEntry struct {
	stamp uint64
	id    allocator.BlockID
}

func newStampHeap(capacity int, stamp []uint64) stampHeap {
	h := stampHeap{e: make([]heapEntry, 0, capacity), pos: make([]int32, capacity), stamp: stamp}
	for i := range h.pos {
		h.pos[i] = -1
	}
	return h
}

func (h *stampHeap) len() int { return len(h.e) }

// min returns the block of least stamp, or false when the heap is empty.
func (h *stampHeap) min() (allocator.BlockID, bool) {
	if len(h.e) == 0 {
		return allocator.NoBlock, false
	}
	return h.e[0].id, true
}

func (h *stampHeap) push(id allocator.BlockID) {
	h.e = append(h.e, heapEntry{h.stamp[id], id})
	h.up(len(h.e)-1, h.e[len(h.e)-1])
}

// remove takes id, which is in the heap, out.
func (h *stampHeap) remove(id allocator.BlockID) {
	i, last := int(h.pos[id]), len(h.e)-1
	h.pos[id] = -1
	x := h.e[last]
	h.e = h.e[:last]
	if i == last {
		return
	}
	if i > 0 && x.stamp < h.e[(i-1)/2].stamp {
		h.up(i, x)
	} else {
		h.down(i, x)
	}
}

// up places x, which belongs at hole i or above, moving larger parents
// down into the hole.
func (h *stampHeap) up(i int, x heapEntry) {
	for i > 0 {
		parent := (i - 1) / 2
		if h.e[parent].stamp < x.stamp {
			break
		}
		h.e[i] = h.e[parent]
		h.pos[h.e[i].id] = int32(i)
		i = parent
	}
	h.e[i] = x
	h.pos[x.id] = int32(i)
}

// down places x, which belongs at hole i or below, moving smaller
// children up into the hole.
func (h *stampHeap) down(i int, x heapEntry) {
	for {
		c := 2*i + 1
		if c >= len(h.e) {
			break
		}
		if c+1 < len(h.e) && h.e[c+1].stamp < h.e[c].stamp {
			c++
		}
		if x.stamp < h.e[c].stamp {
			break
		}
		h.e[i] = h.e[c]
		h.pos[h.e[i].id] = int32(i)
		i = c
	}
	h.e[i] = x
	h.pos[x.id] = int32(i)
}

// stampQueue holds blocks by stamp, least first, for blocks that arrive
// mostly but not always in stamp order: those that arrive in order join
// a list (O(1)), the others a heap (O(log n)). The list stays sorted
// because a block joins it only with a stamp above its last one's.
type stampQueue struct {
	l list
	h stampHeap
}

func (q *stampQueue) len() int { return q.l.n + q.h.len() }

func (q *stampQueue) push(id allocator.BlockID) {
	ln, s := q.l.links, q.l.sentinel
	if b := ln[s].prev; b == s || q.h.stamp[b] < q.h.stamp[id] {
		q.l.pushBack(id)
		return
	}
	q.h.push(id)
}

// remove takes id, which is in the queue, out.
func (q *stampQueue) remove(id allocator.BlockID) {
	if q.h.pos[id] >= 0 {
		q.h.remove(id)
		return
	}
	q.l.remove(id)
}

// min returns the block of least stamp, or false when the queue is empty.
func (q *stampQueue) min() (allocator.BlockID, bool) {
	a, aok := q.l.front()
	b, bok := q.h.min()
	if !bok || (aok && q.h.stamp[a] < q.h.stamp[b]) {
		return a, aok
	}
	return b, true
}
