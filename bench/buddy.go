package bench

import (
	"errors"
	"fmt"
	"math/bits"
)

// ErrBuddyFull is returned by Buddy.Alloc when no free aligned block is
// large enough. Nothing has changed when it is returned.
var ErrBuddyFull = errors.New("bench: buddy: no free block large enough")

// ErrBuddyInvalid is returned for an argument out of range: a size that is
// not positive or larger than the arena, or an offset that starts no live
// allocation. Nothing has changed when it is returned.
var ErrBuddyInvalid = errors.New("bench: buddy: invalid argument")

// Buddy is a binary buddy allocator (Knowlton 1965) over an arena of slots
// [0, Size), the allocator the PagedAttention paper puts under its
// contiguous baselines. The arena need not be a power of two: it starts as
// the largest aligned power-of-two blocks that tile it.
//
// A request of n slots takes the smallest free block of order
// k = ceil(log2 n), splitting larger blocks as needed, and gives the unused
// tail [n, 2^k) back at once, as Linux's alloc_pages_exact does, so an
// allocation occupies exactly n slots but needs an aligned 2^k hole to be
// placed. That alignment is the buddy system's external fragmentation.
//
// Free blocks are kept fully merged: a free block's buddy is never a free
// block of the same order. Alloc and Free cost O(log Size) and allocate
// nothing. A Buddy is not safe for concurrent use.
type Buddy struct {
	size     int
	maxOrder int
	nfree    int
	// order[off] is the order of the free block starting at off, or -1.
	order []int8
	// live[off] is the length of the live allocation starting at off, or 0.
	live []int32
	// heads[k] starts the doubly linked list of free blocks of order k,
	// threaded through next and prev by offset; -1 ends it.
	heads      []int32
	next, prev []int32
}

// NewBuddy returns an allocator over size slots, all free.
func NewBuddy(size int) (*Buddy, error) {
	if size < 1 || size > 1<<30 {
		return nil, fmt.Errorf("%w: arena size %d must be in [1, 2^30]", ErrBuddyInvalid, size)
	}
	maxOrder := bits.Len(uint(size)) - 1
	b := &Buddy{
		size:     size,
		maxOrder: maxOrder,
		order:    make([]int8, size),
		live:     make([]int32, size),
		heads:    make([]int32, maxOrder+1),
		next:     make([]int32, size),
		prev:     make([]int32, size),
	}
	for i := range b.order {
		b.order[i] = -1
	}
	for k := range b.heads {
		b.heads[k] = -1
	}
	b.freeRange(0, size)
	return b, nil
}

// Size returns the number of slots in the arena.
func (b *Buddy) Size() int { return b.size }

// Free returns the number of free slots, wherever they are.
func (b *Buddy) Free() int { return b.nfree }

// Largest returns the size of the largest free block: a request of more
// than Largest slots, rounded up to a power of two, cannot be placed now.
func (b *Buddy) Largest() int {
	for k := b.maxOrder; k >= 0; k-- {
		if b.heads[k] >= 0 {
			return 1 << k
		}
	}
	return 0
}

// Fits reports whether Alloc(n) would succeed now, without changing
// anything.
func (b *Buddy) Fits(n int) bool {
	if n < 1 || n > b.size {
		return false
	}
	k := ceilLog2(n)
	for ; k <= b.maxOrder; k++ {
		if b.heads[k] >= 0 {
			return true
		}
	}
	return false
}

// Alloc places n contiguous slots and returns the offset of the first.
// It returns ErrBuddyFull if no aligned free block of 2^ceil(log2 n) slots
// exists, ErrBuddyInvalid if n is out of range.
func (b *Buddy) Alloc(n int) (int, error) {
	if n < 1 || n > b.size {
		return 0, fmt.Errorf("%w: alloc of %d slots in an arena of %d", ErrBuddyInvalid, n, b.size)
	}
	want := ceilLog2(n)
	k := want
	for k <= b.maxOrder && b.heads[k] < 0 {
		k++
	}
	if k > b.maxOrder {
		return 0, ErrBuddyFull
	}
	off := int(b.heads[k])
	b.unlink(off, k)
	// Split down to the wanted order; upper halves go back as free blocks.
	for k > want {
		k--
		b.link(off+1<<k, k)
	}
	b.nfree -= 1 << k
	b.live[off] = int32(n)
	// Give the unused tail back at once (exact allocation).
	b.freeRange(off+n, 1<<k-n)
	return off, nil
}

// Release frees the allocation that starts at off. It returns
// ErrBuddyInvalid if off starts no live allocation.
func (b *Buddy) Release(off int) error {
	if off < 0 || off >= b.size || b.live[off] == 0 {
		return fmt.Errorf("%w: release of offset %d, which starts no allocation", ErrBuddyInvalid, off)
	}
	n := int(b.live[off])
	b.live[off] = 0
	b.freeRange(off, n)
	return nil
}

// freeRange returns [off, off+n) to the free lists as maximal aligned
// power-of-two blocks, each merged with its buddy while possible.
func (b *Buddy) freeRange(off, n int) {
	for n > 0 {
		k := bits.Len(uint(n)) - 1
		if off != 0 {
			k = min(k, bits.TrailingZeros(uint(off)))
		}
		k = min(k, b.maxOrder)
		b.nfree += 1 << k
		b.insert(off, k)
		off += 1 << k
		n -= 1 << k
	}
}

// insert links the free block (off, k) after merging it with its free
// buddies, bottom up.
func (b *Buddy) insert(off, k int) {
	for k < b.maxOrder {
		buddy := off ^ 1<<k
		if buddy+1<<k > b.size || b.order[buddy] != int8(k) {
			break
		}
		b.unlink(buddy, k)
		off = min(off, buddy)
		k++
	}
	b.link(off, k)
}

func (b *Buddy) link(off, k int) {
	if b.order[off] >= 0 {
		panic(fmt.Sprintf("bench: buddy: block %d linked twice", off))
	}
	b.order[off] = int8(k)
	h := b.heads[k]
	b.next[off], b.prev[off] = h, -1
	if h >= 0 {
		b.prev[h] = int32(off)
	}
	b.heads[k] = int32(off)
}

func (b *Buddy) unlink(off, k int) {
	if b.order[off] != int8(k) {
		panic(fmt.Sprintf("bench: buddy: block %d is not a free block of order %d", off, k))
	}
	b.order[off] = -1
	n, p := b.next[off], b.prev[off]
	if p >= 0 {
		b.next[p] = n
	} else {
		b.heads[k] = n
	}
	if n >= 0 {
		b.prev[n] = p
	}
}

// Check verifies the allocator's invariants: free blocks are aligned, lie
// in the arena, overlap no other free block or live allocation, and are
// fully merged; free lists match the per-offset orders; free and live
// slots add up to the arena.
func (b *Buddy) Check() error {
	owner := make([]int8, b.size) // 0 unseen, 1 free, 2 live
	free := 0
	for k, h := range b.heads {
		prev := int32(-1)
		for off := h; off >= 0; off = b.next[off] {
			o := int(off)
			if b.prev[o] != prev {
				return fmt.Errorf("bench: buddy: block %d: broken back link", o)
			}
			if int(b.order[o]) != k {
				return fmt.Errorf("bench: buddy: block %d on list %d has order %d", o, k, b.order[o])
			}
			if o%(1<<k) != 0 || o+1<<k > b.size {
				return fmt.Errorf("bench: buddy: block %d of order %d misaligned or out of the arena", o, k)
			}
			if k < b.maxOrder {
				if bud := o ^ 1<<k; bud+1<<k <= b.size && b.order[bud] == int8(k) {
					return fmt.Errorf("bench: buddy: blocks %d and %d of order %d are free buddies, not merged", o, bud, k)
				}
			}
			for i := o; i < o+1<<k; i++ {
				if owner[i] != 0 {
					return fmt.Errorf("bench: buddy: block %d: slot %d free twice", o, i)
				}
				owner[i] = 1
			}
			free += 1 << k
			prev = off
		}
	}
	for off, n := range b.live {
		for i := off; i < off+int(n); i++ {
			if i >= b.size || owner[i] != 0 {
				return fmt.Errorf("bench: buddy: allocation %d: slot %d overlaps another block or leaves the arena", off, i)
			}
			owner[i] = 2
		}
	}
	for off, k := range b.order {
		if k >= 0 && owner[off] != 1 {
			return fmt.Errorf("bench: buddy: block %d has order %d but is on no free list", off, k)
		}
	}
	for i, o := range owner {
		if o == 0 {
			return fmt.Errorf("bench: buddy: slot %d is neither free nor allocated", i)
		}
	}
	if free != b.nfree {
		return fmt.Errorf("bench: buddy: free lists hold %d slots, counter says %d", free, b.nfree)
	}
	return nil
}

// ceilLog2 returns the smallest k with 1<<k >= n, for n >= 1.
func ceilLog2(n int) int { return bits.Len(uint(n - 1)) }
