package paged

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// The pool's eviction order beside its policy: two shelves for cached,
// unreferenced blocks, one given up before the policy's blocks and one
// after, which a hybrid manager's retention fills (retention.go says which
// block goes where). Victim choice and claims walk them with the policy,
// so they belong to the pool.

// shelf is where a cached, unreferenced block of a hybrid manager waits.
type shelf uint8

const (
	// shelfPolicy: in the eviction policy (or not on any shelf).
	shelfPolicy shelf = iota
	// shelfLow: given up before the policy's blocks.
	shelfLow
	// shelfHigh: given up after the policy's blocks.
	shelfHigh
)

// shelves are the low and high shelves: two FIFO lists threaded through
// one pair of link arrays, with sentinels at NumBlocks (low) and
// NumBlocks+1 (high). The zero value has them off: every block is on
// shelfPolicy.
type shelves struct {
	where []shelf
	prev  []allocator.BlockID
	next  []allocator.BlockID
	n     [3]int
}

// init turns the shelves on for a pool of n blocks.
func (r *shelves) init(n int) {
	r.where = make([]shelf, n)
	r.prev = make([]allocator.BlockID, n+2)
	r.next = make([]allocator.BlockID, n+2)
	for _, s := range []shelf{shelfLow, shelfHigh} {
		x := r.sentinel(s)
		r.prev[x], r.next[x] = x, x
	}
}

func (r *shelves) sentinel(s shelf) allocator.BlockID {
	return allocator.BlockID(len(r.where)) + allocator.BlockID(s) - 1
}

func (r *shelves) push(id allocator.BlockID, s shelf) {
	x := r.sentinel(s)
	last := r.prev[x]
	r.prev[id], r.next[id] = last, x
	r.next[last], r.prev[x] = id, id
	r.where[id] = s
	r.n[s]++
}

func (r *shelves) unlink(id allocator.BlockID) {
	p, n := r.prev[id], r.next[id]
	r.next[p], r.prev[n] = n, p
	r.n[r.where[id]]--
	r.where[id] = shelfPolicy
}

// shelved returns the blocks on the low and high shelves.
func (r *shelves) shelved() int { return r.n[shelfLow] + r.n[shelfHigh] }

// shelfOf returns where block id waits (shelfPolicy when off).
func (r *shelves) shelfOf(id allocator.BlockID) shelf {
	if r.where == nil {
		return shelfPolicy
	}
	return r.where[id]
}

// releaseTo drops one reference to id; if it was the last and the block
// holds cached content, the block goes onto shelf s.
func (p *blockPool) releaseTo(id allocator.BlockID, s shelf) {
	if id == nullBlock {
		return
	}
	if s == shelfPolicy || !p.hasContent(id) {
		p.release(id)
		return
	}
	if len(p.named) > 0 && p.stepRelease(id, s) {
		return
	}
	if p.pool.ReleaseToCache(id) {
		p.shelves.push(id, s)
	}
}

// unshelve takes a cached, unreferenced block out of its shelf or the
// policy, for a hit or a reset.
func (p *blockPool) unshelve(id allocator.BlockID) {
	if p.shelves.shelfOf(id) != shelfPolicy {
		p.shelves.unlink(id)
		return
	}
	p.policy.Remove(id)
}

// victim picks the cached block to give up: the low shelf's oldest, else
// the policy's victim, else the high shelf's oldest. A shelved victim is
// not the policy's, so the policy forgets what it knew of the content.
func (p *blockPool) victim() (allocator.BlockID, bool) {
	r := &p.shelves
	if r.n[shelfLow] == 0 {
		if id, ok := p.policy.Victim(); ok || r.n[shelfHigh] == 0 {
			return id, ok
		}
	}
	s := shelfLow
	if r.n[shelfLow] == 0 {
		s = shelfHigh
	}
	id := r.next[r.sentinel(s)]
	r.unlink(id)
	if p.forgetter != nil {
		p.forgetter.Forget(id)
	}
	return id, true
}

// checkShelves verifies the shelves: each list is well linked, its blocks
// are cached and unreferenced, marked with its shelf and counted.
func (p *blockPool) checkShelves() error {
	r := &p.shelves
	if r.where == nil {
		return nil
	}
	for _, s := range []shelf{shelfLow, shelfHigh} {
		x := r.sentinel(s)
		n := 0
		for id := r.next[x]; id != x; id = r.next[id] {
			if n++; n > len(r.where) || !p.pool.Valid(id) {
				return fmt.Errorf("paged: shelf %d is broken at block %d", s, id)
			}
			if r.where[id] != s || r.next[r.prev[id]] != id {
				return fmt.Errorf("paged: block %d on shelf %d is marked %d or badly linked", id, s, r.where[id])
			}
			if !p.hasContent(id) || !p.pool.IsCached(id) {
				return fmt.Errorf("paged: block %d on shelf %d holds no cached content or is referenced", id, s)
			}
		}
		if n != r.n[s] {
			return fmt.Errorf("paged: shelf %d links %d blocks, counts %d", s, n, r.n[s])
		}
	}
	return nil
}
