package eviction

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

func prio(level int, expires int64) Hint {
	return Hint{Parent: allocator.NoBlock, Priority: level, Expires: expires}
}

func TestPriorityEvictsLowerLevelsFirst(t *testing.T) {
	c := newCache(t, NewPriority, 6)
	levels := []int{80, 10, DefaultPriority, 10, 80, 0}
	for id, l := range levels {
		c.commit(allocator.BlockID(id), prio(l, 0))
		c.p.Insert(allocator.BlockID(id))
	}
	c.hit(1) // released again: the most recent of level 10
	// Level 0, then 10 (3 before 1), then 35, then 80 (0 before 4).
	assert.Equal(t, []allocator.BlockID{5, 3, 1, 2, 0, 4}, c.victims(6))
}

func TestPriorityExpiryReverts(t *testing.T) {
	c := newCache(t, NewPriority, 4)
	tk := c.p.(Ticker)
	c.commit(0, prio(90, 5)) // level 90 until tick 5
	c.commit(1, prio(DefaultPriority, 0))
	c.commit(2, prio(20, 3)) // referenced when it lapses
	c.commit(3, prio(70, 0)) // never lapses
	c.p.Insert(0)
	c.p.Insert(1)
	c.p.Insert(3)
	tk.Advance(4)
	c.p.Insert(2)
	// At tick 4: 2 lapsed to 35 before its release; 0 still 90.
	require.Equal(t, []allocator.BlockID{1}, c.victims(1))
	c.commit(1, prio(DefaultPriority, 0))
	c.p.Insert(1)
	tk.Advance(5)
	// 0 lapsed and joined level 35 as its most recent block.
	assert.Equal(t, []allocator.BlockID{2, 1, 0, 3}, c.victims(4))
}

func TestPriorityExpiryInThePastIsDefault(t *testing.T) {
	c := newCache(t, NewPriority, 2)
	c.p.(Ticker).Advance(10)
	c.commit(0, prio(90, 10))
	c.commit(1, prio(50, 0))
	c.p.Insert(0)
	c.p.Insert(1)
	assert.Equal(t, []allocator.BlockID{0, 1}, c.victims(2))
}

// TestExpiryAgainstModel checks the radix heap against a scan of every
// pending block, with jumps of time small and large.
func TestExpiryAgainstModel(t *testing.T) {
	const n = 64
	rng := rand.New(rand.NewPCG(3, 4))
	e := newExpiry(n)
	at := map[allocator.BlockID]int64{}
	var now int64
	var lapsed []allocator.BlockID
	lapse := func(id allocator.BlockID) { lapsed = append(lapsed, id) }
	for range 20000 {
		id := allocator.BlockID(rng.IntN(n))
		switch rng.IntN(3) {
		case 0:
			if e.queued(id) {
				e.remove(id)
				delete(at, id)
			} else {
				span := int64(1) << rng.IntN(40)
				t := now + 1 + rng.Int64N(span)
				e.push(id, t)
				at[id] = t
			}
		default:
			span := int64(1) << rng.IntN(42)
			now += rng.Int64N(span)
			lapsed = lapsed[:0]
			e.expire(now, lapse)
			var want []allocator.BlockID
			for id, t := range at {
				if t <= now {
					want = append(want, id)
					delete(at, id)
				}
			}
			require.ElementsMatch(t, want, lapsed, "now %d", now)
		}
		for id := range allocator.BlockID(n) {
			if _, ok := at[id]; ok != e.queued(id) {
				require.Equal(t, ok, e.queued(id), "block %d queued", id)
			}
		}
	}
}

func child(level int, expires int64, parent allocator.BlockID) Hint {
	return Hint{Parent: parent, Priority: level, Expires: expires}
}

func TestStaircase(t *testing.T) {
	for _, tc := range []struct {
		in     []step
		hi, lo step
		two    bool
	}{
		{[]step{{50, 10}}, step{50, 10}, step{}, false},
		// A higher and longer promise replaces a weaker one.
		{[]step{{50, 10}, {90, 20}}, step{90, 20}, step{}, false},
		{[]step{{90, 20}, {50, 10}}, step{90, 20}, step{}, false},
		// Equal levels: the later tick.
		{[]step{{60, 10}, {60, never}}, step{60, never}, step{}, false},
		// A higher, shorter promise comes first, the lower one after it.
		{[]step{{50, 100}, {90, 10}}, step{90, 10}, step{50, 100}, true},
		// Below the default too: 0 for good after 70 lapses.
		{[]step{{0, never}, {70, 5}}, step{70, 5}, step{0, never}, true},
		// Three steps: the two lower merge into the middle level until
		// the latest tick.
		{[]step{{90, 10}, {60, 20}, {30, 40}}, step{90, 10}, step{60, 40}, true},
		// The default for good is no step: the two others stay as
		// promised, not merged into 60 for good.
		{[]step{{90, 10}, {DefaultPriority, never}, {60, 20}}, step{90, 10}, step{60, 20}, true},
		{[]step{{DefaultPriority, never}, {60, 20}}, step{60, 20}, step{}, false},
		// A last default step that ends is no step either: the block is
		// at the default after it all the same. Counted, it merged 60
		// into it until its end, 100, past 60's own end, 40 (the
		// thirtieth mutation round, docs/testing.md).
		{[]step{{70, 20}, {DefaultPriority, 100}}, step{70, 20}, step{}, false},
		{[]step{{70, 20}, {DefaultPriority, 100}, {60, 40}}, step{70, 20}, step{60, 40}, true},
		// A default step that ends is kept when a lower level follows it.
		{[]step{{0, never}, {DefaultPriority, 30}}, step{DefaultPriority, 30}, step{0, never}, true},
	} {
		hi, lo, two := staircase(append([]step(nil), tc.in...))
		assert.Equal(t, tc.hi, hi, "%v", tc.in)
		assert.Equal(t, tc.two, two, "%v", tc.in)
		if two {
			assert.Equal(t, tc.lo, lo, "%v", tc.in)
		}
	}
}

// TestPriorityRetainRaises: a reuse at a higher level raises a block for
// its duration; one at a lower level changes nothing while the higher
// promise holds, and takes over when it lapses.
func TestPriorityRetainRaises(t *testing.T) {
	c := newCache(t, NewPriority, 3)
	p := c.p.(*Priority)
	for id := range allocator.BlockID(3) {
		c.commit(id, prio(0, 0)) // all cached at level 0
	}
	p.Retain(0, 90, 10) // reused at 90 until tick 10
	p.Retain(0, 0, 0)   // then at 0: no lower
	p.Retain(1, 60, 0)  // reused at 60 for good
	p.Retain(1, 90, 5)  // and at 90 until tick 5
	for id := range allocator.BlockID(3) {
		p.Insert(id)
	}
	assert.Equal(t, uint64(4), p.Retains())
	// 2 (0), 1 (90 until 5), 0 (90 until 10).
	require.Equal(t, []allocator.BlockID{2}, c.victims(1))
	c.commit(2, prio(70, 0))
	p.Insert(2)
	p.Advance(5) // 1 falls to its 60 for good
	require.Equal(t, []allocator.BlockID{1}, c.victims(1))
	c.commit(1, prio(80, 0))
	p.Insert(1)
	p.Advance(10) // 0 falls to the default: 35
	assert.Equal(t, []allocator.BlockID{0, 2, 1}, c.victims(3))
}

// TestPriorityRetainInPolicy: Retain moves an evictable block to its new
// level.
func TestPriorityRetainInPolicy(t *testing.T) {
	c := newCache(t, NewPriority, 2)
	p := c.p.(*Priority)
	c.commit(0, prio(10, 0))
	c.commit(1, prio(20, 0))
	p.Insert(0)
	p.Insert(1)
	p.Retain(0, 50, 0)
	p.Retain(1, 60, 3) // until 3, then back to its 20
	p.Advance(2)
	p.Retain(1, 90, 2) // lapsed already: nothing
	require.Equal(t, uint64(2), p.Retains())
	assert.Equal(t, []allocator.BlockID{0, 1}, c.victims(2))
	c.commit(0, prio(10, 0))
	c.commit(1, prio(20, 0))
	p.Insert(0)
	p.Insert(1)
	p.Retain(0, 50, 0)
	p.Retain(1, 60, 3)
	p.Advance(3)
	assert.Equal(t, []allocator.BlockID{1, 0}, c.victims(2))
}

// TestPriorityParentAfterChild: a low-priority parent is not evicted
// while its high-priority child is evictable, which would leave the child
// unreachable; it goes with its subtree, leaf first.
func TestPriorityParentAfterChild(t *testing.T) {
	c := newCache(t, NewPriority, 5)
	c.commit(0, prio(0, 0))      // a prefix cached at level 0
	c.commit(1, child(90, 0, 0)) // its continuation at 90
	c.commit(2, child(0, 0, 1))
	c.commit(3, prio(60, 0)) // unrelated
	c.commit(4, prio(50, 0))
	for _, id := range []allocator.BlockID{2, 1, 0, 3, 4} { // tail first
		c.p.Insert(id)
	}
	assert.Equal(t, 5, c.p.Len())
	assert.True(t, c.p.Contains(0))
	// 2 (0, a leaf), then 4 and 3; 1 (90) before its parent 0, which takes
	// its place.
	assert.Equal(t, []allocator.BlockID{2, 4, 3, 1, 0}, c.victims(5))
}

// TestPriorityOrphansFirst: a block whose parent went while it was
// referenced (a sliding window released the parent) or whose parent's
// content was dropped is unreachable, and goes before any level, with its
// subtree.
func TestPriorityOrphansFirst(t *testing.T) {
	c := newCache(t, NewPriority, 6)
	c.commit(0, prio(0, 0))
	c.commit(1, child(100, 0, 0)) // held while 0 is evicted
	c.commit(2, child(100, 0, 1))
	c.commit(3, prio(DefaultPriority, 0))
	c.p.Insert(0)
	require.Equal(t, []allocator.BlockID{0}, c.victims(1))
	c.p.Insert(2)
	c.p.Insert(1)
	c.p.Insert(3)
	assert.Equal(t, []allocator.BlockID{2, 1, 3}, c.victims(3))

	// A forgotten parent (its content overwritten in place) orphans the
	// evictable subtree below it.
	c.commit(0, prio(50, 0))
	c.commit(1, child(100, 0, 0))
	c.commit(2, child(100, 0, 1))
	c.commit(3, prio(10, 0))
	c.p.Insert(3)
	c.p.Insert(2)
	c.p.Insert(1)
	c.p.(Forgetter).Forget(0)
	assert.Equal(t, []allocator.BlockID{2, 1, 3}, c.victims(3))
}

// TestPriorityHitRelinksParent: a hit claims a chain root first; the
// parent then leaves the policy and its children's release makes it
// inner again.
func TestPriorityHitRelinksParent(t *testing.T) {
	c := newCache(t, NewPriority, 3)
	c.commit(0, prio(0, 0))
	c.commit(1, child(0, 0, 0))
	c.commit(2, prio(10, 0))
	c.p.Insert(1)
	c.p.Insert(0)
	c.p.Insert(2)
	// Claimed root first and released tail first, as a sequence does.
	c.p.Remove(0)
	c.p.Remove(1)
	c.p.Insert(1)
	c.p.Insert(0)
	assert.Equal(t, []allocator.BlockID{1, 0, 2}, c.victims(3))
}

func TestPriorityAllocs(t *testing.T) {
	const n = 64
	p := NewPriority(n).(*Priority)
	var tick int64
	allocs := testing.AllocsPerRun(100, func() {
		for id := range allocator.BlockID(n) {
			parent := allocator.NoBlock
			if id%4 != 0 {
				parent = id - 1
			}
			p.Hint(id, Hint{Parent: parent, Priority: int(id) % 101, Expires: tick + int64(id%5)})
		}
		for id := allocator.BlockID(n - 1); id >= 0; id-- {
			p.Retain(id, int(id*7)%101, tick+int64(id%7))
			p.Insert(id)
		}
		tick += 3
		p.Advance(tick)
		for range n {
			p.Victim()
		}
	})
	assert.Zero(t, allocs)
}

// TestPriorityRetainBelowDefault: a reuse below the default counts only
// while the content's own lower level lasts; after, the default is the
// floor.
func TestPriorityRetainBelowDefault(t *testing.T) {
	c := newCache(t, NewPriority, 3)
	p := c.p.(*Priority)
	c.commit(0, prio(90, 5)) // 90, then the default
	c.commit(1, prio(0, 8))  // 0 until 8, then the default
	c.commit(2, prio(10, 0)) // 10 for good
	p.Retain(0, 20, 10)      // below the default: never counts
	p.Retain(1, 20, 10)      // 20 until 8 only
	p.Retain(2, 30, 0)       // 30 for good
	assert.Equal(t, uint64(2), p.Retains())
	for id := range allocator.BlockID(3) {
		p.Insert(id)
	}
	p.Advance(5)
	// 0 is at the default, 1 at 20, 2 at 30.
	require.Equal(t, []allocator.BlockID{1}, c.victims(1))
	c.commit(1, prio(0, 8))
	p.Retain(1, 20, 10)
	p.Insert(1)
	p.Advance(8) // 1 back to the default, after 0
	assert.Equal(t, []allocator.BlockID{2, 0, 1}, c.victims(3))
}
