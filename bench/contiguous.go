package bench

import (
	"fmt"
	"math/bits"
	"strings"
)

// Allocator names the allocator that places the contiguous models'
// reservations (Max, Pow2, Oracle) in the KV budget.
type Allocator uint8

const (
	// AllocBuddy is a binary buddy allocator (Buddy), the one the
	// PagedAttention paper puts under its baselines: a reservation needs
	// an aligned power-of-two hole.
	AllocBuddy Allocator = iota
	// AllocFirstFit is a first-fit allocator (FirstFit): any hole large
	// enough, no alignment.
	AllocFirstFit
	// AllocCompact is ideal compaction: live reservations are moved
	// together for free whenever that lets the next one in, so a
	// reservation fits whenever the free slots add up to it. No real
	// allocator does better, so no contiguous reservation can beat this
	// bound with the same sizes.
	AllocCompact
)

var allocNames = [...]string{"buddy", "first-fit", "compact"}

// String returns the allocator's flag name: buddy, first-fit or compact.
func (a Allocator) String() string {
	if int(a) < len(allocNames) {
		return allocNames[a]
	}
	return fmt.Sprintf("Allocator(%d)", a)
}

// ParseAllocator parses an allocator's flag name (case-insensitive;
// "firstfit" is accepted too).
func ParseAllocator(s string) (Allocator, error) {
	if strings.EqualFold(s, "firstfit") {
		return AllocFirstFit, nil
	}
	for i, n := range allocNames {
		if strings.EqualFold(s, n) {
			return Allocator(i), nil
		}
	}
	return 0, fmt.Errorf("%w: allocator %q (want buddy, first-fit or compact)", ErrFragInvalid, s)
}

// arena places contiguous ranges in the budget. Fits answers for Alloc
// without changing anything; Alloc is only called when Fits said yes.
type arena interface {
	Fits(n int) bool
	Alloc(n int) (int, error)
	Release(off int) error
	Free() int
	Check() error
}

// contiguous is a memory model that reserves one contiguous range per
// request at admission, sized by the model, and places it with an
// allocator over the whole budget: Orca's baselines as the PagedAttention
// paper ran them. A reservation always covers the request's final length,
// so a running request never needs more memory and is never preempted.
type contiguous struct {
	model  MemoryModel
	maxLen int
	arena  arena
}

func newContiguous(model MemoryModel, alloc Allocator, maxLen, kvTokens int) (*contiguous, error) {
	var a arena
	var err error
	switch alloc {
	case AllocBuddy:
		a, err = NewBuddy(kvTokens)
	case AllocFirstFit:
		a, err = NewFirstFit(kvTokens)
	case AllocCompact:
		a = newCompacting(kvTokens)
	default:
		err = fmt.Errorf("%w: allocator %d", ErrFragInvalid, alloc)
	}
	if err != nil {
		return nil, err
	}
	return &contiguous{model: model, maxLen: maxLen, arena: a}, nil
}

// Reservation returns the slots a contiguous model reserves for a request
// whose final length (prompt plus output, after truncation) is final:
// maxLen for ModelMax, the next power of two of final (capped at maxLen)
// for ModelPow2, final itself for ModelOracle. It returns 0 for other
// models.
func Reservation(model MemoryModel, final, maxLen int) int {
	switch model {
	case ModelMax:
		return maxLen
	case ModelPow2:
		if final <= 1 {
			return min(max(final, 0), maxLen)
		}
		n := bits.Len(uint(final - 1))
		if n >= bits.UintSize-1 {
			return maxLen // the next power of two does not fit an int
		}
		return min(1<<n, maxLen)
	case ModelOracle:
		return final
	}
	return 0
}

func (c *contiguous) need(r *flight) int { return Reservation(c.model, r.final, c.maxLen) }

func (c *contiguous) fits(r *flight) bool { return c.arena.Fits(c.need(r)) }

func (c *contiguous) admit(r *flight) (bool, error) {
	n := c.need(r)
	if !c.arena.Fits(n) {
		return false, nil
	}
	off, err := c.arena.Alloc(n)
	if err != nil {
		return false, err
	}
	r.off = off
	return true, nil
}

// grow never fails: the reservation covers the final length.
func (c *contiguous) grow(r *flight) (bool, error) {
	if r.tokens >= c.need(r) {
		return false, fmt.Errorf("bench: request %d grows past its reservation of %d", r.index, c.need(r))
	}
	return true, nil
}

func (c *contiguous) release(r *flight) error { return c.arena.Release(r.off) }

// preempt is never called: grow never fails.
func (c *contiguous) preempt(r *flight) error { return c.release(r) }

func (c *contiguous) held(r *flight) int { return c.need(r) }

func (c *contiguous) free() int { return c.arena.Free() }

func (c *contiguous) unusable() int { return 0 }

func (c *contiguous) check() error { return c.arena.Check() }

// compacting is ideal compaction: only the count of free slots matters,
// because live ranges are assumed moved together at no cost. Handles are
// reused from a free stack, so steady-state use allocates nothing.
type compacting struct {
	size, nfree int
	lens        []int // by handle; 0 when the handle is free
	handles     []int // free handles
}

func newCompacting(size int) *compacting { return &compacting{size: size, nfree: size} }

func (c *compacting) Fits(n int) bool { return n >= 1 && n <= c.nfree }

func (c *compacting) Alloc(n int) (int, error) {
	if !c.Fits(n) {
		return 0, fmt.Errorf("%w: compacting alloc of %d slots with %d free", ErrFragInvalid, n, c.nfree)
	}
	var h int
	if k := len(c.handles); k > 0 {
		h, c.handles = c.handles[k-1], c.handles[:k-1]
	} else {
		h, c.lens = len(c.lens), append(c.lens, 0)
	}
	c.lens[h] = n
	c.nfree -= n
	return h, nil
}

func (c *compacting) Release(h int) error {
	if h < 0 || h >= len(c.lens) || c.lens[h] == 0 {
		return fmt.Errorf("%w: compacting release of handle %d, which is not live", ErrFragInvalid, h)
	}
	c.nfree += c.lens[h]
	c.lens[h] = 0
	c.handles = append(c.handles, h)
	return nil
}

func (c *compacting) Free() int { return c.nfree }

func (c *compacting) Check() error {
	used := 0
	for _, n := range c.lens {
		used += n
	}
	if used+c.nfree != c.size || len(c.handles)+liveCount(c.lens) != len(c.lens) {
		return fmt.Errorf("bench: compacting: %d live + %d free slots != %d, or handles lost", used, c.nfree, c.size)
	}
	return nil
}

func liveCount(lens []int) int {
	n := 0
	for _, l := range lens {
		if l > 0 {
			n++
		}
	}
	return n
}
