package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// The fifteenth mutation round (docs/testing.md, session 28): tests of
// Chain's learning that the round found missing. Each names the mutations
// it catches.

// a60Chain hints a chain of n blocks, IDs first.., content keys key..,
// depths 0..n-1, each block's parent the one before; a hit on the block
// at depth hitAt (-1: none) before the next is hinted starts a new turn
// there. It returns the IDs, root first.
func a60Chain(p *Chain, first allocator.BlockID, key uint64, n, hitAt int) []allocator.BlockID {
	ids := make([]allocator.BlockID, n)
	for i := range ids {
		par := allocator.NoBlock
		if i > 0 {
			par = ids[i-1]
		}
		ids[i] = first + allocator.BlockID(i)
		p.Hint(ids[i], Hint{Key: key + uint64(i), Depth: int32(i), Parent: par, Priority: DefaultPriority})
		if i == hitAt {
			p.Access(ids[i])
		}
	}
	return ids
}

// a60Release inserts ids tail first, as the manager releases a request.
func a60Release(p *Chain, ids []allocator.BlockID) {
	for i := len(ids) - 1; i >= 0; i-- {
		p.Insert(ids[i])
	}
}

// a60Slot returns the record slot open for content key, or -1.
func a60Slot(p *Chain, key uint64) int32 {
	_, s := p.recs.find(key)
	return s
}

// a60Sum adds up one of Chain's outcome tables over every class and age.
func a60Sum(t *[chainClasses][chainBuckets]float64) float64 {
	sum := 0.0
	for c := range t {
		for b := range t[c] {
			sum += t[c][b]
		}
	}
	return sum
}

// TestAudit60ChainRecordsAtTheCuts: a release leaves records where later
// requests are likely to leave its chain (Chain's doc): its last block,
// the block above it, the block before its own turn began, and the middle
// block, each standing for the blocks down to the next; and a record of
// weight 0 at its turn's first block. The weights add up to the release's
// blocks, nothing is counted as an outcome yet, and every block between
// two cuts belongs to the record above it (M768, M770, M771).
func TestAudit60ChainRecordsAtTheCuts(t *testing.T) {
	t.Run("ten blocks, the last four a turn of their own", func(t *testing.T) {
		p := NewChain(64).(*Chain)
		// A hit on depth 5: depths 6..9 are the request's own turn (run 4).
		ids := a60Chain(p, 0, 100, 10, 5)
		a60Release(p, ids)
		// Depth 9 the last block, 8 above it, 5 before the turn began,
		// 4 the middle; 6 starts the turn.
		want := map[int]float64{9: 1, 8: 3, 5: 1, 4: 5, 6: 0}
		total := 0.0
		for d := range 10 {
			s := a60Slot(p, 100+uint64(d))
			w, ok := want[d]
			if !ok {
				assert.Negative(t, s, "depth %d opened a record", d)
				continue
			}
			require.GreaterOrEqual(t, s, int32(0), "no record at depth %d", d)
			assert.Equal(t, w, p.rweight[s], "record at depth %d", d)
			total += p.rweight[s]
		}
		assert.Equal(t, 10.0, total, "the records stand for the release's blocks")
		for _, d := range []int{7, 6} {
			assert.Equal(t, a60Slot(p, 108), p.brec[ids[d]], "depth %d belongs to the record at 8", d)
		}
		for _, d := range []int{3, 2, 1, 0} {
			assert.Equal(t, a60Slot(p, 104), p.brec[ids[d]], "depth %d belongs to the record at 4", d)
		}
		assert.Zero(t, a60Sum(&p.cens)+a60Sum(&p.reuse), "no outcome yet")
	})
	t.Run("a last block that starts its turn", func(t *testing.T) {
		p := NewChain(64).(*Chain)
		// A hit on depth 2: the last block, depth 3, is a turn of one
		// block; its record stands for it, not for nothing.
		ids := a60Chain(p, 0, 200, 4, 2)
		a60Release(p, ids)
		s := a60Slot(p, 203)
		require.GreaterOrEqual(t, s, int32(0))
		assert.Equal(t, 1.0, p.rweight[s])
		assert.Zero(t, a60Sum(&p.cens), "a record of this release closed unreused")
	})
}

// TestAudit60ChainParentJoinsOnlyItsChildsContent: a block released right
// after its child joins the child's class only while it holds the content
// the child was committed after; a block whose content changed since
// (forgotten while in use, then given new content) is a release of its
// own (M765, M779).
func TestAudit60ChainParentJoinsOnlyItsChildsContent(t *testing.T) {
	p := NewChain(8).(*Chain)
	ids := a60Chain(p, 0, 1, 2, -1)
	par, child := ids[0], ids[1]
	p.Forget(par)
	p.Hint(par, Hint{Key: 50, Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
	p.Insert(child)
	p.Insert(par)
	assert.Equal(t, uint8(chainClasses), p.cls[child], "the child, its parent's content gone, is an orphan")
	assert.Equal(t, classOf(0, 1, true), p.cls[par], "the new content joined the class of a child it never had")

	// Its content unchanged, the parent joins.
	q := NewChain(8).(*Chain)
	a60Release(q, a60Chain(q, 0, 1, 2, -1))
	assert.Equal(t, classOf(0, 2, false), q.cls[0])
}

// TestAudit60ChainHitStartsATurn: a block committed right after a block
// that was hit starts a new turn, one more than that block's, with a run
// of one block; after a block not hit it continues its parent's turn, one
// block longer (M776).
func TestAudit60ChainHitStartsATurn(t *testing.T) {
	p := NewChain(8).(*Chain)
	ids := a60Chain(p, 0, 1, 4, 1)
	assert.Equal(t, []uint16{0, 0, 1, 1}, []uint16{p.turn[ids[0]], p.turn[ids[1]], p.turn[ids[2]], p.turn[ids[3]]})
	assert.Equal(t, []uint16{1, 2, 1, 2}, []uint16{p.run[ids[0]], p.run[ids[1]], p.run[ids[2]], p.run[ids[3]]})
}

// TestAudit60ChainRecomputedContentResumesItsTurn: content recomputed
// after an eviction resumes the turn its release record remembers, plus
// one, and that turn has added nothing yet (M777, M778).
func TestAudit60ChainRecomputedContentResumesItsTurn(t *testing.T) {
	p := NewChain(8).(*Chain)
	// Depth 1 is a turn of its own (turn 1), after a hit on depth 0; the
	// release joins both blocks to it and leaves a record at each.
	ids := a60Chain(p, 0, 10, 2, 0)
	a60Release(p, ids)
	for range 2 {
		_, ok := p.Victim()
		require.True(t, ok)
	}
	// The same two blocks' content, recomputed in blocks 2 and 3.
	a60Chain(p, 2, 10, 2, -1)
	assert.Equal(t, uint16(2), p.turn[2], "turn of the recomputed root")
	assert.Equal(t, uint16(0), p.run[2], "run of the recomputed root")
	assert.Equal(t, uint16(2), p.turn[3])
	assert.Equal(t, uint16(0), p.run[3])
}

// TestAudit60ChainStaleRecordSlot: a held block counts its hit for the
// record it was released with, not for a later record that took the same
// slot after that one closed (M774).
func TestAudit60ChainStaleRecordSlot(t *testing.T) {
	p := NewChain(16).(*Chain)
	// Three blocks, no hit: the record at depth 1 stands for depths 1
	// and 0.
	ids := a60Chain(p, 0, 10, 3, -1)
	a60Release(p, ids)
	s := a60Slot(p, 11)
	require.GreaterOrEqual(t, s, int32(0))
	require.Equal(t, s, p.brec[ids[0]])
	// Depth 1's content is recomputed elsewhere (taken from the policy
	// and forgotten first): its record closes as a reuse.
	p.Remove(ids[1])
	p.Forget(ids[1])
	p.Hint(5, Hint{Key: 11, Depth: 1, Parent: allocator.NoBlock, Priority: DefaultPriority})
	require.Negative(t, a60Slot(p, 11))
	reused := a60Sum(&p.reuse)
	// A release of one block takes the freed slot.
	p.Hint(6, Hint{Key: 99, Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
	p.Insert(6)
	s2 := a60Slot(p, 99)
	require.Equal(t, s, s2, "the new record reuses the slot (else this test shows nothing)")
	p.Access(ids[0])
	assert.Equal(t, 1.0, p.rweight[s2], "the new record lost a block to a hit on the old one's")
	assert.Equal(t, reused, a60Sum(&p.reuse), "a hit counted for a record already closed")
}

// TestAudit60ChainCensoredReleaseCountsOnce: records pushed out of the
// ring unreused count their release once, each block 1/n, as reuses do
// (TestChainCountsReleasesNotBlocks) (M787).
func TestAudit60ChainCensoredReleaseCountsOnce(t *testing.T) {
	const pool = 16
	p := NewChain(pool).(*Chain)
	require.Len(t, p.recs.keys, pool, "one record slot per block")
	a60Release(p, a60Chain(p, 0, 1000, 4, -1))
	// Releases of one block, one record each, push the four out.
	for i := range pool {
		id := allocator.BlockID(4 + i%12)
		if p.in(id) {
			p.Remove(id)
		}
		p.Hint(id, Hint{Key: 2000 + uint64(i), Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
		p.Insert(id)
	}
	for d := range 4 {
		require.Negative(t, a60Slot(p, 1000+uint64(d)), "depth %d still recorded", d)
	}
	single := classOf(0, 1, true)
	var four, singles float64
	for c := range p.cens {
		for b := range p.cens[c] {
			if uint8(c) == single {
				singles += p.cens[c][b]
			} else {
				four += p.cens[c][b]
			}
		}
	}
	assert.InDelta(t, 1.0, four, 1e-12, "the release of four blocks")
	assert.Zero(t, singles, "no release of one block was pushed out")
}

// TestAudit60ChainHalvesEveryOutcome: the statistics are halved, reuses
// and censored outcomes alike, each time as many block outcomes as the
// pool has blocks have been recorded (M788).
func TestAudit60ChainHalvesEveryOutcome(t *testing.T) {
	p := NewChain(16).(*Chain)
	c := classOf(1, 2, false)
	p.reuse[c][5], p.cens[c][5] = 8, 8
	p.recorded(15)
	assert.Equal(t, 8.0, p.cens[c][5], "halved early")
	p.recorded(1)
	assert.Equal(t, 4.0, p.reuse[c][5])
	assert.Equal(t, 4.0, p.cens[c][5])
}

// TestAudit60ChainRebuildsWhenFreshOutcomesMatchTheOld: the tables are
// rebuilt whenever the outcomes since the last rebuild weigh as much as
// those before it, and not before (M789).
func TestAudit60ChainRebuildsWhenFreshOutcomesMatchTheOld(t *testing.T) {
	p := NewChain(1000).(*Chain)
	rebuilt := rebuildProbe(p)
	p.recorded(4)
	assert.True(t, rebuilt(), "the first outcomes")
	p.recorded(3)
	assert.False(t, rebuilt(), "3 fresh after 4")
	p.recorded(1)
	assert.True(t, rebuilt(), "4 fresh after 4")
	p.recorded(7)
	assert.False(t, rebuilt(), "7 fresh after 8")
	p.recorded(1)
	assert.True(t, rebuilt(), "8 fresh after 8")
}

// TestAudit60ChainBucketsAreQuarterOctaves: an age of u sixteenths of a
// pool turnover is bucket u below 4, and above, each octave [2^k, 2^k+1)
// is cut into four buckets of equal width; bucketWidth, which the tables
// charge for the space content holds in a bucket, is that width (M790,
// M791).
func TestAudit60ChainBucketsAreQuarterOctaves(t *testing.T) {
	width := make([]int, chainBuckets)
	prev := -1
	for u := range uint64(1 << 18) {
		b := bucketOfU(u)
		if u < 4 {
			require.Equal(t, int(u), b)
		}
		require.Contains(t, []int{prev, prev + 1}, b, "u=%d", u)
		prev = b
		width[b]++
		if k := bits64Len(u) - 1; u >= 4 && u == 1<<k && 4*(k-1) < chainBuckets {
			require.Equal(t, 4*(k-1), b, "the octave from %d", u)
		}
	}
	for b := range prev { // the last bucket reached may be cut short
		assert.Equal(t, float64(width[b]), bucketWidth(b), "bucket %d", b)
	}
	assert.Equal(t, chainBuckets-1, bucketOfU(1<<62), "capped")
}

// bits64Len is bits.Len64 by hand, so the test does not share the code's
// arithmetic.
func bits64Len(u uint64) int {
	n := 0
	for ; u != 0; u >>= 1 {
		n++
	}
	return n
}

// TestAudit60ChainScoreByHand: one class, one age bucket: a reuse and
// two outcomes censored there. Censored outcomes count at risk for half
// their bucket (they left it somewhere in it), so the hazard is 1 in 2;
// content still unused at that age is then hit in the bucket with
// chance 1/2 and holds space 1/2 x 1 (not reused) + 1/2 x 1/2 (reused,
// half way through on average) = 3/4 of the bucket: a hit density of
// 2/3. Older buckets saw no reuse: 0. Open records count at risk as
// censored ones do (M792, M795).
func TestAudit60ChainScoreByHand(t *testing.T) {
	p := NewChain(1600).(*Chain)
	c := classOf(1, 2, false)
	p.reuse[c][0], p.cens[c][0] = 1, 2
	p.rebuild()
	assert.InDelta(t, 2.0/3, p.score[c][0], 1e-12)
	assert.Zero(t, p.score[c][1])

	// The same with the two outcomes open: two releases of one block
	// still recorded at age bucket 0.
	q := NewChain(1600).(*Chain)
	for id := range allocator.BlockID(2) {
		q.Hint(id, Hint{Key: 7 + uint64(id), Depth: 0, Parent: allocator.NoBlock, Priority: DefaultPriority})
		q.Insert(id)
	}
	open := classOf(0, 1, true)
	q.reuse[open][0] = 1
	q.rebuild()
	assert.InDelta(t, 2.0/3, q.score[open][0], 1e-12)
}

// rebuildProbe gives class (1, 2, not hit) a reuse in bucket 0 and
// returns a probe that tells whether the tables were rebuilt since it was
// last called (the class's score, cleared by each call, is set again only
// by a rebuild).
func rebuildProbe(p *Chain) func() bool {
	c := classOf(1, 2, false)
	p.reuse[c][0] = 1
	return func() bool {
		ok := p.score[c][0] > 0
		p.score[c][0] = 0
		return ok
	}
}
