package eviction

import (
	"math/rand/v2"

	"github.com/pagedkv/pagedkv/allocator"
)

// workload is a steady state of a full pool for allocation checks and
// benchmarks: every block holds content and is evictable; each step gives
// one victim new content and releases it, and one random block is hit and
// released again (when evictable), so Insert, Access, Remove, Victim, Hint
// and Advance all run. Random numbers are drawn up front so a step
// allocates nothing and costs only the policy.
type workload struct {
	p    Policy
	acc  Accessor
	hnt  Hinter
	tck  Ticker
	hits []allocator.BlockID
	prio []int
	i    int
	prev allocator.BlockID
	key  uint64
	now  int64
}

func newWorkload(f Factory, capacity int, seed uint64) *workload {
	w := &workload{p: f(capacity), prev: allocator.NoBlock}
	w.acc, _ = w.p.(Accessor)
	w.hnt, _ = w.p.(Hinter)
	w.tck, _ = w.p.(Ticker)
	rng := rand.New(rand.NewPCG(seed, 1))
	w.hits = make([]allocator.BlockID, 1<<16)
	w.prio = make([]int, 1<<16)
	for i := range w.hits {
		// Skewed hits: a quarter of the pool takes most of them.
		if rng.IntN(4) > 0 {
			w.hits[i] = allocator.BlockID(rng.IntN(max(capacity/4, 1)))
		} else {
			w.hits[i] = allocator.BlockID(rng.IntN(capacity))
		}
		w.prio[i] = DefaultPriority
		if rng.IntN(8) == 0 {
			w.prio[i] = rng.IntN(MaxPriority + 1)
		}
	}
	for id := range allocator.BlockID(capacity) {
		w.commit(id, allocator.NoBlock)
		w.p.Insert(id)
	}
	return w
}

func (w *workload) commit(id, parent allocator.BlockID) {
	w.key++
	if w.hnt != nil {
		pr := w.prio[w.key&(1<<16-1)]
		var exp int64
		if pr != DefaultPriority {
			exp = w.now + 64
		}
		w.hnt.Hint(id, Hint{Key: w.key, Parent: parent, Priority: pr, Expires: exp})
	}
}

func (w *workload) step() {
	v, _ := w.p.Victim()
	r := w.hits[w.i&(1<<16-1)]
	w.i++
	// Every other block continues the previous one's chain, so policies
	// that track children see parents gain and lose them.
	parent := allocator.NoBlock
	if w.i&1 == 0 && w.prev != v {
		parent = w.prev
	}
	w.prev = v
	w.commit(v, parent)
	w.p.Insert(v)
	if w.p.Contains(r) {
		if w.acc != nil {
			w.acc.Access(r)
		}
		w.p.Remove(r)
		w.p.Insert(r)
	}
	w.now++
	if w.tck != nil {
		w.tck.Advance(w.now)
	}
}
