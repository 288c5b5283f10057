package bench

import (
	"fmt"
	"math/bits"
)

// contiguous is a memory model that reserves one contiguous range per
// request at admission, sized by the policy, and places it with a buddy
// allocator over the whole budget: Orca's baselines as the PagedAttention
// paper ran them. A reservation always covers the request's final length,
// so a running request never needs more memory and is never preempted.
type contiguous struct {
	model  MemoryModel
	maxLen int
	buddy  *Buddy
}

func newContiguous(model MemoryModel, maxLen, kvTokens int) (*contiguous, error) {
	b, err := NewBuddy(kvTokens)
	if err != nil {
		return nil, err
	}
	return &contiguous{model: model, maxLen: maxLen, buddy: b}, nil
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
		return min(1<<bits.Len(uint(final-1)), maxLen)
	case ModelOracle:
		return final
	}
	return 0
}

func (c *contiguous) need(r *flight) int { return Reservation(c.model, r.final, c.maxLen) }

func (c *contiguous) fits(r *flight) bool { return c.buddy.Fits(c.need(r)) }

func (c *contiguous) admit(r *flight) (bool, error) {
	off, err := c.buddy.Alloc(c.need(r))
	if err == ErrBuddyFull {
		return false, nil
	}
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

func (c *contiguous) release(r *flight) error { return c.buddy.Release(r.off) }

// preempt is never called: grow never fails.
func (c *contiguous) preempt(r *flight) error { return c.release(r) }

func (c *contiguous) held(r *flight) int { return c.need(r) }

func (c *contiguous) free() int { return c.buddy.Free() }

func (c *contiguous) unusable() int { return 0 }

func (c *contiguous) check() error { return c.buddy.Check() }
