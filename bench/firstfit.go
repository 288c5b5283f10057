package bench

import (
	"errors"
	"fmt"
	"slices"
)

// ErrFirstFitFull is returned by FirstFit.Alloc when no free hole is large
// enough. Nothing has changed when it is returned.
var ErrFirstFitFull = errors.New("bench: first-fit: no free hole large enough")

// ErrFirstFitInvalid is returned for a size that is not positive or larger
// than the arena, or an offset that starts no live allocation. Nothing has
// changed when it is returned.
var ErrFirstFitInvalid = errors.New("bench: first-fit: invalid argument")

// FirstFit is a first-fit allocator over an arena of slots [0, Size)
// (Knuth, TAOCP vol. 1, 2.5): an allocation of n slots takes the start of
// the lowest-addressed free hole of at least n slots, and a release merges
// the freed range with free neighbours. Unlike Buddy it needs no
// alignment, so only the holes left between live allocations fragment it.
//
// Holes are kept sorted by offset; Alloc and Release cost O(holes), which
// is at most one more than the live allocations, and allocate nothing once
// the hole list has grown to its largest. A FirstFit is not safe for
// concurrent use.
type FirstFit struct {
	size, nfree int
	holes       []hole
	// live[off] is the length of the live allocation starting at off, or 0.
	live []int32
}

type hole struct{ off, n int }

// NewFirstFit returns an allocator over size slots, all free.
func NewFirstFit(size int) (*FirstFit, error) {
	if size < 1 || size > 1<<30 {
		return nil, fmt.Errorf("%w: arena size %d must be in [1, 2^30]", ErrFirstFitInvalid, size)
	}
	f := &FirstFit{size: size, nfree: size, holes: make([]hole, 1, 64), live: make([]int32, size)}
	f.holes[0] = hole{0, size}
	return f, nil
}

// Size returns the number of slots in the arena.
func (f *FirstFit) Size() int { return f.size }

// Free returns the number of free slots, wherever they are.
func (f *FirstFit) Free() int { return f.nfree }

// Largest returns the size of the largest free hole.
func (f *FirstFit) Largest() int {
	m := 0
	for _, h := range f.holes {
		m = max(m, h.n)
	}
	return m
}

// Fits reports whether Alloc(n) would succeed now, without changing
// anything.
func (f *FirstFit) Fits(n int) bool { return n >= 1 && f.Largest() >= n }

// Alloc places n contiguous slots at the start of the first hole that
// holds them and returns the offset of the first slot. It returns
// ErrFirstFitFull if no hole is large enough, ErrFirstFitInvalid if n is
// out of range.
func (f *FirstFit) Alloc(n int) (int, error) {
	if n < 1 || n > f.size {
		return 0, fmt.Errorf("%w: alloc of %d slots in an arena of %d", ErrFirstFitInvalid, n, f.size)
	}
	for i := range f.holes {
		h := &f.holes[i]
		if h.n < n {
			continue
		}
		off := h.off
		h.off, h.n = h.off+n, h.n-n
		if h.n == 0 {
			f.holes = slices.Delete(f.holes, i, i+1)
		}
		f.nfree -= n
		f.live[off] = int32(n)
		return off, nil
	}
	return 0, ErrFirstFitFull
}

// Release frees the allocation that starts at off, merging it with the
// free holes on either side. It returns ErrFirstFitInvalid if off starts no
// live allocation.
func (f *FirstFit) Release(off int) error {
	if off < 0 || off >= f.size || f.live[off] == 0 {
		return fmt.Errorf("%w: release of offset %d, which starts no allocation", ErrFirstFitInvalid, off)
	}
	n := int(f.live[off])
	f.live[off] = 0
	f.nfree += n
	// i is the first hole after the freed range.
	i, _ := slices.BinarySearchFunc(f.holes, off, func(h hole, off int) int { return h.off - off })
	joinPrev := i > 0 && f.holes[i-1].off+f.holes[i-1].n == off
	joinNext := i < len(f.holes) && off+n == f.holes[i].off
	switch {
	case joinPrev && joinNext:
		f.holes[i-1].n += n + f.holes[i].n
		f.holes = slices.Delete(f.holes, i, i+1)
	case joinPrev:
		f.holes[i-1].n += n
	case joinNext:
		f.holes[i].off, f.holes[i].n = off, f.holes[i].n+n
	default:
		f.holes = slices.Insert(f.holes, i, hole{off, n})
	}
	return nil
}

// Check verifies the allocator's invariants: holes are sorted, non-empty,
// separated (never adjacent, or they would have merged) and inside the
// arena; holes and live allocations tile the arena exactly; the free
// counter matches the holes.
func (f *FirstFit) Check() error {
	pos, free, hi := 0, 0, -1
	for _, h := range f.holes {
		if h.n < 1 || h.off <= hi || h.off+h.n > f.size {
			return fmt.Errorf("bench: first-fit: hole [%d, %d) empty, unsorted, adjacent to the previous or out of the arena", h.off, h.off+h.n)
		}
		// Between the previous hole and this one: live allocations only.
		for pos < h.off {
			n := int(f.live[pos])
			if n == 0 {
				return fmt.Errorf("bench: first-fit: slot %d is neither free nor allocated", pos)
			}
			pos += n
		}
		if pos != h.off {
			return fmt.Errorf("bench: first-fit: an allocation overlaps hole [%d, %d)", h.off, h.off+h.n)
		}
		for i := h.off; i < h.off+h.n; i++ {
			if f.live[i] != 0 {
				return fmt.Errorf("bench: first-fit: allocation at %d inside hole [%d, %d)", i, h.off, h.off+h.n)
			}
		}
		pos, hi = h.off+h.n, h.off+h.n
		free += h.n
	}
	for pos < f.size {
		n := int(f.live[pos])
		if n == 0 {
			return fmt.Errorf("bench: first-fit: slot %d is neither free nor allocated", pos)
		}
		pos += n
	}
	if pos != f.size {
		return fmt.Errorf("bench: first-fit: allocations run past the arena to %d", pos)
	}
	if free != f.nfree {
		return fmt.Errorf("bench: first-fit: holes hold %d slots, counter says %d", free, f.nfree)
	}
	return nil
}
