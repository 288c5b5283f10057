package eviction

import (
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// expiry is a monotone priority queue of blocks by the logical tick at
// which their priority lapses: a radix heap (Ahuja, Mehlhorn, Orlin and
// Tarjan, "Faster algorithms for the shortest path problem", JACM 1990).
// A block with tick t sits in bucket b = the highest bit in which t differs
// from last, the time of the latest Advance; ticks are always later than
// last. Advancing moves blocks only to lower buckets, so each block moves
// at most 64 times over its stay: push and remove are O(1), and expire is
// amortized O(1) per block plus O(1) per call.
type expiry struct {
	// buckets[due] holds the blocks found due by expire, waiting for their
	// lapse call: lapse may queue a block again, which must not happen
	// while the buckets are being sorted.
	buckets [due + 1]list
	occ     uint64 // bit b set when bucket b is not empty
	at      []int64
	bucket  []int8 // -1 when the block is not queued
	last    int64
}

// due is the index of the bucket of blocks found due.
const due = 64

func newExpiry(capacity int) expiry {
	ln := links(capacity, due+1)
	e := expiry{at: make([]int64, capacity), bucket: make([]int8, capacity)}
	for b := range e.buckets {
		e.buckets[b] = newList(ln, capacity, capacity+b)
	}
	for i := range e.bucket {
		e.bucket[i] = -1
	}
	return e
}

func (e *expiry) queued(id allocator.BlockID) bool { return e.bucket[id] >= 0 }

// push queues id to lapse at tick t, which must be later than e.last.
func (e *expiry) push(id allocator.BlockID, t int64) {
	e.at[id] = t
	b := 63 - bits.LeadingZeros64(uint64(t^e.last))
	e.bucket[id] = int8(b)
	e.buckets[b].pushBack(id)
	e.occ |= 1 << b
}

func (e *expiry) remove(id allocator.BlockID) {
	b := e.bucket[id]
	e.buckets[b].remove(id)
	if b < due && e.buckets[b].n == 0 {
		e.occ &^= 1 << b
	}
	e.bucket[id] = -1
}

// expire advances to tick now (ignored unless later than the last one) and
// calls lapse for every block whose tick is now or earlier, after taking it
// off the queue; lapse may queue the block again for a later tick.
func (e *expiry) expire(now int64, lapse func(allocator.BlockID)) {
	if now <= e.last {
		return
	}
	// h is the highest bit in which now differs from last: now has it
	// set, last has not. A tick in a bucket below h agrees with last at
	// bit h and above, so it is earlier than now: the whole bucket lapses.
	// A tick in a bucket above h differs from now in that same bucket's
	// bit, so it stays where it is. Only bucket h is sorted again, and
	// what stays of it moves to lower buckets.
	h := 63 - bits.LeadingZeros64(uint64(now^e.last))
	e.last = now
	for e.occ&(1<<h-1) != 0 {
		e.drain(bits.TrailingZeros64(e.occ))
	}
	if e.occ&(1<<h) != 0 {
		e.drain(h)
	}
	for {
		id, ok := e.buckets[due].front()
		if !ok {
			return
		}
		e.remove(id)
		lapse(id)
	}
}

// drain empties bucket b: blocks due by e.last move to the due bucket,
// the others are queued again relative to e.last, in a lower bucket than b.
func (e *expiry) drain(b int) {
	l := &e.buckets[b]
	for {
		id, ok := l.front()
		if !ok {
			return
		}
		e.remove(id)
		if e.at[id] <= e.last {
			e.bucket[id] = due
			e.buckets[due].pushBack(id)
		} else {
			e.push(id, e.at[id])
		}
	}
}
