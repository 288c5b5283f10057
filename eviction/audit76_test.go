package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// The thirtieth mutation round (docs/testing.md): the retention-priority
// LRU (Priority). Each test closes a mutation that survived it.

// TestAudit76OrphansKeepTheirOrder: orphans (blocks whose chain lost an
// ancestor) go first, in the order they became orphans, whatever their
// level: a promise recorded for an orphan in the policy (Retain) or its
// level lapsing (Advance) changes its level, not its place among the
// orphans. Block 0 is evicted while its children 1 and 2 are held; 2 and
// 1 are released as orphans, then a promise is made for 2 and its own
// level lapses. M1385 took an orphan for a block on its level's list,
// and moved 2 behind 1.
func TestAudit76OrphansKeepTheirOrder(t *testing.T) {
	for _, change := range []string{"Retain", "Advance"} {
		c := newCache(t, NewPriority, 4)
		p := c.p.(*Priority)
		c.commit(0, prio(0, 0))
		c.commit(1, child(100, 0, 0))
		c.commit(2, child(80, 5, 0)) // 1's sibling, level 80 until tick 5
		c.commit(3, prio(0, 0))
		c.p.Insert(0)
		require.Equal(t, []allocator.BlockID{0}, c.victims(1))
		c.p.Insert(2)
		c.p.Insert(1)
		c.p.Insert(3)
		if change == "Retain" {
			p.Retain(2, 90, 0)
		} else {
			p.Advance(5)
		}
		assert.Equal(t, []allocator.BlockID{2, 1, 3}, c.victims(3), change)
	}
}

// TestAudit76DefaultStepDoesNotStretchAMerge: a promise at the default
// that ends (here one capped by the content's own level below the
// default, which lapses at 100) is no step once it is the last: the
// block is at the default after it either way. Counted as a step, it
// made a third promise merge: 60 until 40, promised, was kept until 100
// (more than promised, which the staircase allows, but for no promise at
// all). Found while arguing M1389 of the thirtieth mutation round.
func TestAudit76DefaultStepDoesNotStretchAMerge(t *testing.T) {
	for _, tc := range []struct {
		at   int64
		want []allocator.BlockID
	}{
		{30, []allocator.BlockID{1, 0}}, // 60 until 40
		{50, []allocator.BlockID{0, 1}}, // the default after 40
	} {
		c := newCache(t, NewPriority, 2)
		p := c.p.(*Priority)
		c.commit(0, prio(10, 100))
		p.Retain(0, DefaultPriority, 0) // the default while the 10 lasts: to 100
		p.Retain(0, 70, 20)
		p.Retain(0, 60, 40)
		c.commit(1, prio(DefaultPriority+20, 0))
		p.Insert(1)
		p.Insert(0)
		p.Advance(tc.at)
		assert.Equal(t, tc.want, c.victims(2), "at %d", tc.at)
	}
}

// TestAudit76DefaultStepWithAnEndIsAPromise: a promise at the default
// with an end, above a lower level for good, is a promise in force: the
// block is at the default until it ends, then at the lower level. A
// higher promise made meanwhile must keep it. Content at 0 for good, a
// promise at the default until 30, one at 80 until 10: at 20 the block
// is at the default or above (above: the staircase merges the two lower
// steps, over-keeping). M1389 dropped the default promise when it
// counted the steps in force, and the block fell to 0 at 10.
func TestAudit76DefaultStepWithAnEndIsAPromise(t *testing.T) {
	c := newCache(t, NewPriority, 2)
	p := c.p.(*Priority)
	c.commit(0, prio(0, 0))
	p.Retain(0, DefaultPriority, 30)
	p.Retain(0, 80, 10)
	c.commit(1, prio(DefaultPriority-10, 0))
	p.Insert(1)
	p.Insert(0)
	p.Advance(20)
	assert.Equal(t, []allocator.BlockID{1, 0}, c.victims(2), "at 20, the default at least")
}

// TestAudit76RetainedBlockJoinsItsLevelLast: a promise recorded for a
// block in the policy moves it to its level's list as the most recently
// released, as a lapse does (Retain's doc): raised to 60, block 1 goes
// after block 0, released earlier at 60. M1395 put it at the front, the
// next victim of its level.
func TestAudit76RetainedBlockJoinsItsLevelLast(t *testing.T) {
	c := newCache(t, NewPriority, 2)
	p := c.p.(*Priority)
	c.commit(0, prio(60, 0))
	c.commit(1, prio(DefaultPriority, 0))
	p.Insert(0)
	p.Insert(1)
	p.Retain(1, 60, 0)
	assert.Equal(t, []allocator.BlockID{0, 1}, c.victims(2))
}

// TestAudit76DefaultHintExpiryMovesNothing: content committed at the
// default level with an expiry has nothing to fall back from: when the
// expiry comes, the block keeps its place in the default level's list
// (only a level that changes joins its new level as the most recently
// released). M1387 queued the expiry, and at it block 0 went behind
// block 1, released after it.
func TestAudit76DefaultHintExpiryMovesNothing(t *testing.T) {
	c := newCache(t, NewPriority, 2)
	c.commit(0, prio(DefaultPriority, 5))
	c.commit(1, prio(DefaultPriority, 0))
	c.p.Insert(0)
	c.p.Insert(1)
	c.p.(Ticker).Advance(5)
	assert.Equal(t, []allocator.BlockID{0, 1}, c.victims(2))
}

// TestAudit76DefaultPromiseCountsWhileContentLevelLasts: a promise at or
// below the default counts while the content's own level below the
// default lasts (Retain), also once a promise at the default, cut to
// that level's end, hides it: content at 10 until 100, a promise at the
// default (to 100), then one at 20 until 50, which is recorded (Retains)
// and, for a block in the policy, moves it behind its level's others as
// every recorded promise does. Before the thirtieth round (M1390) the
// hidden level was not seen and the promise was dropped.
func TestAudit76DefaultPromiseCountsWhileContentLevelLasts(t *testing.T) {
	c := newCache(t, NewPriority, 2)
	p := c.p.(*Priority)
	c.commit(0, prio(10, 100))
	p.Retain(0, DefaultPriority, 0)
	c.commit(1, prio(DefaultPriority, 0))
	p.Insert(0)
	p.Insert(1)
	require.Equal(t, uint64(1), p.Retains())
	p.Retain(0, 20, 50)
	assert.Equal(t, uint64(2), p.Retains())
	assert.Equal(t, []allocator.BlockID{1, 0}, c.victims(2))
	// Content at the default has no lower level: no promise.
	c.commit(0, prio(DefaultPriority, 0))
	p.Retain(0, 20, 50)
	assert.Equal(t, uint64(2), p.Retains())
}
