package eviction

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// check verifies the priority policy's structure: every block in the
// policy is on its home list and counted, the occupancy bits match the
// level lists, the chain links agree both ways, each block's count of
// children in the policy is right, orphans propagate down, and a lower
// promise step waits behind a pending expiry that comes before it.
func (p *Priority) check() error {
	n := 0
	lists := []*list{&p.orphans, &p.inner}
	for l := range p.levels {
		lists = append(lists, &p.levels[l])
	}
	for _, l := range lists {
		k := 0
		for x := l.links[l.sentinel].next; x != l.sentinel; x = l.links[x].next {
			if h := p.home(allocator.BlockID(x)); h != l {
				return fmt.Errorf("block %d is on the wrong list", x)
			}
			k++
		}
		if k != l.n {
			return fmt.Errorf("a list counts %d, holds %d", l.n, k)
		}
		n += k
	}
	if n != p.n {
		return fmt.Errorf("n is %d, lists hold %d", p.n, n)
	}
	for l := range p.levels {
		if bit := p.occ[l/64]&(1<<(l%64)) != 0; bit != (p.levels[l].n > 0) {
			return fmt.Errorf("occupancy bit of level %d is %v with %d blocks", l, bit, p.levels[l].n)
		}
	}
	if err := p.tree.check(); err != nil {
		return err
	}
	for id := range p.tree.node {
		if p.tree.node[id].x.lower != noStep && (!p.exp.queued(allocator.BlockID(id)) || p.lowerAt[id] <= p.exp.at[id]) {
			return fmt.Errorf("block %d has a lower step without an earlier pending expiry", id)
		}
	}
	return nil
}

// TestPriorityStructure drives the policy with random operations in the
// manager's protocol (content hinted under a parent that holds content,
// released, hit, forgotten while held, reused with promises, time moving)
// and checks its structure after each.
func TestPriorityStructure(t *testing.T) {
	const n = 48
	rng := rand.New(rand.NewPCG(5, 6))
	p := NewPriority(n).(*Priority)
	var now int64
	for step := range 200000 {
		id := allocator.BlockID(rng.IntN(n))
		in := p.Contains(id)
		switch op := rng.IntN(7); {
		case op == 0 && !in: // new content, under a random live parent
			par := allocator.BlockID(rng.IntN(n))
			if !p.tree.node[par].live || rng.IntN(4) == 0 {
				par = allocator.NoBlock
			}
			var exp int64
			if rng.IntN(2) == 0 {
				exp = now + 1 + rng.Int64N(6)
			}
			p.Hint(id, Hint{Parent: par, Priority: rng.IntN(MaxPriority + 1), Expires: exp})
		case op == 1 && !in:
			p.Insert(id)
		case op == 2 && in:
			p.Remove(id)
		case op == 3 && !in && p.tree.node[id].live:
			p.Forget(id)
		case op == 4:
			var exp int64
			if rng.IntN(2) == 0 {
				exp = now + 1 + rng.Int64N(8)
			}
			p.Retain(id, rng.IntN(MaxPriority+1), exp)
		case op == 5:
			if v, ok := p.Victim(); ok && p.tree.node[v].live {
				t.Fatalf("step %d: victim %d still holds content", step, v)
			}
		case op == 6:
			now += rng.Int64N(3)
			p.Advance(now)
		}
		if err := p.check(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
}
