package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// The eighty-second mutation round (docs/testing.md): Chain and S3-FIFO;
// every survivor was Chain's.
// Each test closes a mutation that survived it.

// TestAudit129ChainRemoveEndsTheRelease: a block taken out of the policy
// (claimed by a new request) ends the release under way, so its parent,
// released next, is a release of its own and not the tail-first rest of
// the child's. Blocks 0 and 1 are a chain; 1 alone is released (its
// request's last block), then claimed for a hit, then 0 is released by
// another request: 0 is that request's last block, in a tail class of
// its own turn and run (one block at turn 0), never the child's inner
// class.
func TestAudit129ChainRemoveEndsTheRelease(t *testing.T) {
	p := NewChain(8).(*Chain)
	ids := a60Chain(p, 0, 1, 2, -1)
	p.Insert(ids[1])
	p.Remove(ids[1])
	p.Insert(ids[0])
	assert.Equal(t, classOf(0, 1, true), p.cls[ids[0]])
}

// TestAudit129ChainEveryReleaseRecordsItsTurnStart: each release, not
// only the first, leaves the record of weight 0 at its turn's first block
// that tells a later request recomputing that content which turn it was.
// Two requests of three blocks each (keys 10.. and 20..) are released one
// after the other; the root of the second, recomputed in a fresh block,
// is the next turn (1) with nothing added yet.
func TestAudit129ChainEveryReleaseRecordsItsTurnStart(t *testing.T) {
	p := NewChain(16).(*Chain)
	a60Release(p, a60Chain(p, 0, 10, 3, -1))
	a60Release(p, a60Chain(p, 3, 20, 3, -1))
	p.Hint(8, Hint{Key: 20, Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
	assert.Equal(t, uint16(1), p.turn[8], "turn of the recomputed root")
	assert.Equal(t, uint16(0), p.run[8], "run of the recomputed root")
}

// TestAudit129ChainHitsCountOncePerBlock: a held block's hit counts its
// share of its release's record once, however often it is hit before it
// is released again; and a hit on a block whose content keys a record
// closes that record, counting the blocks it still stands for as reused.
// A chain of three blocks (keys 10, 11, 12, one release, so each block
// weighs 1/3) leaves a record at depth 1 standing for depths 1 and 0.
func TestAudit129ChainHitsCountOncePerBlock(t *testing.T) {
	// Block 0 hit by two requests at once: one share.
	p := NewChain(16).(*Chain)
	a60Release(p, a60Chain(p, 0, 10, 3, -1))
	p.Access(0)
	p.Remove(0)
	p.Access(0)
	assert.InDelta(t, 1.0/3, a60Sum(&p.reuse), 1e-9, "two hits on one held block")

	// Block 1 hit: its own share, and the record it keys closes with
	// block 0's share as a reuse too.
	q := NewChain(16).(*Chain)
	a60Release(q, a60Chain(q, 0, 10, 3, -1))
	q.Access(1)
	assert.Equal(t, int32(-1), a60Slot(q, 11), "the hit key's record is closed")
	assert.InDelta(t, 2.0/3, a60Sum(&q.reuse), 1e-9, "a hit on the record's key")
}

// TestAudit129ChainEvictionEndsTheRelease: a block given up ends the
// release under way, so a block released later is not taken for the
// parent of that evicted block's next content. Block 0 is released alone
// and given up; it is then given new content below block 1's, and 1 is
// released while 0 is still in use: 1 is its release's last block, in a
// tail class, not the inner class of 0's old release.
func TestAudit129ChainEvictionEndsTheRelease(t *testing.T) {
	p := NewChain(8).(*Chain)
	p.Hint(0, Hint{Key: 1, Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
	p.Insert(0)
	assert.Equal(t, []allocator.BlockID{0}, victims(t, p, 1))
	p.Hint(1, Hint{Key: 2, Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
	p.Hint(0, Hint{Key: 3, Depth: 1, Parent: 1, Priority: DefaultPriority})
	p.Insert(1)
	assert.Equal(t, classOf(0, 1, true), p.cls[1])
}

// TestAudit129ChainOrphanKeepsItsPlace: a held orphan keeps its place on
// the orphans' list when a block below it is released: orphans go in the
// order they became orphans. Blocks 1 and 2 are children of 0, 3 a child
// of 2 in use; 2 and 1 are released, 0's content is forgotten (2 and 1
// become orphans, in that order), then 3 is released below 2.
func TestAudit129ChainOrphanKeepsItsPlace(t *testing.T) {
	p := NewChain(8).(*Chain)
	hint := func(id, par allocator.BlockID, depth int32) {
		p.Hint(id, Hint{Key: uint64(100 + id), Depth: depth, Parent: par, Priority: DefaultPriority})
	}
	hint(0, allocator.NoBlock, 0)
	hint(1, 0, 1)
	hint(2, 0, 1)
	hint(3, 2, 2)
	p.Insert(2)
	p.Insert(1)
	p.Forget(0)
	p.checkSegments(t)
	require.Equal(t, 2, p.lists[chainClasses].n)
	require.Equal(t, allocator.BlockID(2), allocator.BlockID(p.lists[chainClasses].links[p.lists[chainClasses].sentinel].next))
	p.Insert(3)
	p.checkSegments(t)
	assert.Equal(t, []allocator.BlockID{2, 1, 3}, victims(t, p, 3))
}

// TestAudit129ChainNewRecordClosesTheOld: a release records its content
// anew; the key's earlier record, still open, is closed first as not
// reused (censored at its age), so one key has one record. Block 0 is
// released alone, claimed without a hit and released again.
func TestAudit129ChainNewRecordClosesTheOld(t *testing.T) {
	p := NewChain(8).(*Chain)
	p.Hint(0, Hint{Key: 10, Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
	p.Insert(0)
	assert.Zero(t, a60Sum(&p.cens))
	p.Remove(0)
	p.Insert(0)
	assert.InDelta(t, 1, a60Sum(&p.cens), 1e-9, "the first release's record, closed unreused")
	assert.Equal(t, 1, p.recs.lists[0].n, "open records")
}

// TestAudit129ChainHalvingHalvesTheTotal: when the statistics are halved,
// so is the weight of the outcomes before the last rebuild, so that the
// next rebuild comes when the fresh outcomes match the halved total. In
// a pool of 16, 16 outcomes halve the statistics (and rebuild the tables,
// the first outcomes): 8 fresh then match the 8 left, 7 do not.
func TestAudit129ChainHalvingHalvesTheTotal(t *testing.T) {
	p := NewChain(16).(*Chain)
	rebuilt := rebuildProbe(p)
	c := classOf(1, 2, false)
	p.recorded(16)
	require.True(t, rebuilt(), "the first outcomes")
	require.Equal(t, 0.5, p.reuse[c][0], "halved")
	p.recorded(7)
	assert.False(t, rebuilt(), "7 fresh after 8")
	p.recorded(1)
	assert.True(t, rebuilt(), "8 fresh after 8")
}

// TestAudit129ChainHazardIsAtMostOne: a class whose records were reused
// more often than the baseline predicts cannot be reused in a bucket more
// than certainly. Class a was reused at ages in buckets 0 and 5, class b
// once in bucket 5 and almost never young (1000 records censored in
// bucket 0): the baseline hazard is 1 in bucket 5 and a's factor about 2.
// Content of class a still unused in bucket 5 is then reused there for
// sure: one hit for the half bucket it holds on average, a density of 2,
// not the hundreds an uncapped hazard (a mass above what survives, and no
// space left) gives.
func TestAudit129ChainHazardIsAtMostOne(t *testing.T) {
	p := NewChain(16).(*Chain)
	a, b := classOf(1, 2, false), classOf(0, 1, true)
	p.reuse[a][0], p.reuse[a][5] = 1, 1
	p.cens[b][0], p.reuse[b][5] = 1000, 1
	p.rebuild()
	assert.InDelta(t, 2, p.score[a][5], 1e-9)
}
