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
