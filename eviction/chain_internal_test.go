package eviction

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestChainHazardsShareOneBaseline: Chain's tables follow a proportional-
// hazards model, so a class whose records were only watched while young
// still has a hit density at older ages (the shape of every class's
// pooled outcomes, at its own level), while a class never reused has none.
// With a hazard estimated per class alone, the young class would be worth
// nothing at ages its records never reached, and go first.
func TestChainHazardsShareOneBaseline(t *testing.T) {
	p := NewChain(1600).(*Chain)
	often := classOf(2, 2, false) // later turns: reused at many ages
	young := classOf(1, 4, false) // first turns: watched only while young
	never := classOf(1, 4, true)  // last blocks: never reused
	for b := 8; b <= 20; b++ {
		p.reuse[often][b] = 10
	}
	p.cens[often][24] = 100
	p.reuse[young][4] = 2
	p.cens[young][6] = 18
	p.cens[never][24] = 100
	p.rebuild()

	const old = 12 // older than any record of class young
	assert.Positive(t, p.score[often][old])
	assert.Positive(t, p.score[young][old], "a class seen young keeps the baseline's shape")
	assert.Zero(t, p.score[never][old])
	// The same outcomes at a tenth of the weight are the same class.
	for b := range chainBuckets {
		p.reuse[young][b] = p.reuse[often][b] / 10
		p.cens[young][b] = p.cens[often][b] / 10
	}
	p.rebuild()
	for b := range chainBuckets {
		assert.InDelta(t, p.score[often][b], p.score[young][b], 1e-12*(1+p.score[often][b]), "bucket %d", b)
	}
}

// TestChainCountsReleasesNotBlocks: a release's blocks come back together
// or not at all, so Chain's statistics count each release once, its blocks
// 1/n each. Of four releases of one class, one of 100 blocks returns and
// three of 64 do not: the class returned once in four, not 99 blocks in
// 288 as a count by blocks would say.
func TestChainCountsReleasesNotBlocks(t *testing.T) {
	p := NewChain(400).(*Chain)
	next := allocator.BlockID(0)
	key := uint64(1)
	release := func(n int) []allocator.BlockID {
		ids := make([]allocator.BlockID, n)
		for i := range ids {
			par := allocator.NoBlock
			if i > 0 {
				par = ids[i-1]
			}
			ids[i] = next
			p.Hint(next, Hint{Key: key, Depth: int32(i), Parent: par, Priority: DefaultPriority})
			next++
			key++
		}
		for i := n - 1; i >= 0; i-- {
			p.Insert(ids[i])
		}
		return ids
	}
	back := release(100)
	for range 3 {
		release(64)
	}
	for _, id := range back {
		p.Access(id)
	}
	p.rebuild()
	c := classOf(0, 100, false)
	require.Equal(t, c, classOf(0, 64, false), "one class")
	var reused, all float64
	for b := range chainBuckets {
		reused += p.reuse[c][b]
		all += p.reuse[c][b] + p.cens[c][b] + p.open[c][b]
	}
	assert.InDelta(t, 99.0/100, reused, 1e-9)
	assert.InDelta(t, 99.0/100+3*63.0/64, all, 1e-9)
}

// checkSegments verifies that every class list is cut into its releases'
// segments with both ends linked: Victim's second candidate per class is
// read from them.
func (p *Chain) checkSegments(t require.TestingT) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	for c := range p.lists[:chainClasses] {
		q := &p.lists[c]
		start := allocator.NoBlock
		for x := q.links[q.sentinel].next; x != q.sentinel; x = q.links[x].next {
			id := allocator.BlockID(x)
			if start < 0 {
				start = id
			}
			if nx := q.links[x].next; nx == q.sentinel || p.seg[nx] != p.seg[id] {
				require.Equal(t, start, p.first[id], "class %d: segment ending at %d", c, id)
				require.Equal(t, id, p.final[start], "class %d: segment starting at %d", c, start)
				start = allocator.NoBlock
			}
		}
	}
	p.checkTree(t)
}

// checkTree verifies the chain tree (chainTree.check) and that, with
// orphansFirst, exactly the held orphans are on the orphans' list.
func (p *Chain) checkTree(t require.TestingT) {
	require.NoError(t, p.tree.check())
	for x := range allocator.BlockID(len(p.tree.node)) {
		if p.in(x) {
			require.Equal(t, p.orphansFirst && p.tree.node[x].orphan, p.cls[x] == chainClasses, "block %d on the orphans' list", x)
		}
	}
	require.Equal(t, p.tree.heldOrphans()*b2i(p.orphansFirst), p.lists[chainClasses].n, "orphans listed")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestChainSegmentsStayLinked drives Chain as a manager does (requests
// that hit some evictable blocks, add new ones after them, and release
// the whole chain tail first; evictions to make room) and checks the
// release segments after every step.
func TestChainSegmentsStayLinked(t *testing.T) {
	const capacity = 64
	p := NewChain(capacity).(*Chain)
	rng := rand.New(rand.NewPCG(7, 7))
	free := make([]allocator.BlockID, 0, capacity)
	for id := range allocator.BlockID(capacity) {
		free = append(free, id)
	}
	key := uint64(0)
	for step := range 4000 {
		var chain []allocator.BlockID
		// Hit a few evictable blocks (claimed out of the policy).
		for range rng.IntN(4) {
			id := allocator.BlockID(rng.IntN(capacity))
			if p.Contains(id) {
				p.Access(id)
				p.Remove(id)
				chain = append(chain, id)
			}
		}
		// Add new blocks after them, evicting when nothing is free.
		for range 1 + rng.IntN(6) {
			var id allocator.BlockID
			if n := len(free); n > 0 {
				id, free = free[n-1], free[:n-1]
			} else {
				v, ok := p.Victim()
				if !ok {
					break
				}
				id = v
			}
			par := allocator.NoBlock
			if n := len(chain); n > 0 {
				par = chain[n-1]
			}
			key++
			p.Hint(id, Hint{Key: key, Depth: int32(len(chain)), Parent: par, Priority: DefaultPriority})
			chain = append(chain, id)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			p.Insert(chain[i])
		}
		if step%7 == 0 && len(chain) > 0 {
			// Forget a block's content now and then, as the manager does
			// when it frees uncached blocks.
			id := chain[rng.IntN(len(chain))]
			p.Remove(id)
			p.Forget(id)
			free = append(free, id)
		}
		p.checkSegments(t)
	}
}

// TestChainVictimTriesBothEnds: within a class, the victim is the oldest
// block where the hit density falls with age, and the youngest release's
// deepest block where content just released is worth less (a returning
// user pauses first); never a block whose deeper block of the same
// release is still held.
func TestChainVictimTriesBothEnds(t *testing.T) {
	release := releaseChain
	for _, young := range []bool{false, true} {
		p := NewChain(100).(*Chain)
		// The candidates by score alone: evicting 2 or 6 would otherwise
		// wait for their leaves (3, 7), and orphan-first order is
		// TestChainOrphansFirst's.
		p.orphansFirst, p.leavesFirst = false, false
		release(p, 0, 1, 2, 3) // old: 3 is its last block, 2 the deepest of the rest
		p.now += 100
		release(p, 4, 5, 6, 7) // young
		c := p.cls[5]
		require.Equal(t, c, p.cls[1], "one class")
		for k := range p.score {
			for b := range p.score[k] {
				p.score[k][b] = 1
			}
		}
		youngBucket := p.bucket(p.now - p.stamp[6])
		oldBucket := p.bucket(p.now - p.stamp[2])
		require.NotEqual(t, youngBucket, oldBucket)
		if young {
			p.score[c][youngBucket] = 0.5
		} else {
			p.score[c][oldBucket] = 0.5
		}
		want := []allocator.BlockID{2, 1, 0}
		if young {
			want = []allocator.BlockID{6, 5, 4}
		}
		assert.Equal(t, want, victims(t, p, 3), "young %v", young)
		p.checkSegments(t)
	}
}

// releaseChain hints ids as one chain and releases it tail first, as a
// manager releases a request.
func releaseChain(p *Chain, ids ...allocator.BlockID) {
	for i, id := range ids {
		par := allocator.NoBlock
		if i > 0 {
			par = ids[i-1]
		}
		p.Hint(id, Hint{Key: uint64(100 + id), Depth: int32(i), Parent: par, Priority: DefaultPriority})
	}
	for i := len(ids) - 1; i >= 0; i-- {
		p.Insert(ids[i])
	}
}

// twoReleases builds TestChainVictimTriesBothEnds's young case: releases
// 0-3 and, later, 4-7, each with its last block in the tail class and the
// rest in one class whose youngest bucket scores lowest, so that by score
// alone Victim gives up 6, 5, 4, the inner blocks of the young release.
func twoReleases(t *testing.T, orphansFirst, leavesFirst bool) *Chain {
	p := NewChain(100).(*Chain)
	p.orphansFirst, p.leavesFirst = orphansFirst, leavesFirst
	releaseChain(p, 0, 1, 2, 3)
	p.now += 100
	releaseChain(p, 4, 5, 6, 7)
	for k := range p.score {
		for b := range p.score[k] {
			p.score[k][b] = 1
		}
	}
	p.score[p.cls[5]][p.bucket(p.now-p.stamp[6])] = 0.5
	p.checkSegments(t)
	return p
}

// TestChainOrphansFirst: giving up 6 orphans 7 (its child, the release's
// last block, held in another class): with orphansFirst 7 goes next,
// ahead of every score; with leavesFirst no candidate with a child held
// goes while a leaf candidate is left, so nothing is orphaned, and the
// leaves go oldest first at equal scores (3, then 2, whose child 3 is
// gone).
func TestChainOrphansFirst(t *testing.T) {
	for _, c := range []struct {
		orphans, leaves bool
		want            []allocator.BlockID
		orphaned        int // orphans held after the first victim
	}{
		{false, false, []allocator.BlockID{6, 5, 4}, 1},
		{true, false, []allocator.BlockID{6, 7, 5}, 1},
		{false, true, []allocator.BlockID{3, 2, 1}, 0},
		{true, true, []allocator.BlockID{3, 2, 1}, 0},
	} {
		p := twoReleases(t, c.orphans, c.leaves)
		got := victims(t, p, 1)
		require.Equal(t, c.orphaned, p.tree.heldOrphans(), "orphans %v leaves %v", c.orphans, c.leaves)
		got = append(got, victims(t, p, 2)...)
		assert.Equal(t, c.want, got, "orphans %v leaves %v", c.orphans, c.leaves)
		p.checkSegments(t)
	}
}

// TestChainOrphansOfForgottenBlocks: content forgotten while in use (its
// block overwritten or dropped) orphans the held blocks below it, and
// they go before any other, whole subtree, the root first; a block
// released below a forgotten one is an orphan from its release.
func TestChainOrphansOfForgottenBlocks(t *testing.T) {
	p := NewChain(32).(*Chain)
	hint := func(id, par allocator.BlockID, depth int32) {
		p.Hint(id, Hint{Key: uint64(1000 + id), Depth: depth, Parent: par, Priority: DefaultPriority})
	}
	// An older chain 0-1, released, then 10 (in use) with 11 and 12
	// below it, and 13 below 12 still in use.
	hint(0, allocator.NoBlock, 0)
	hint(1, 0, 1)
	p.Insert(1)
	p.Insert(0)
	hint(10, allocator.NoBlock, 0)
	hint(11, 10, 1)
	hint(12, 11, 2)
	hint(13, 12, 3)
	p.Insert(12)
	p.Insert(11)
	p.checkSegments(t)
	require.Zero(t, p.tree.heldOrphans())
	p.Forget(10)
	require.Equal(t, 2, p.tree.heldOrphans())
	p.Insert(13) // below an orphan: one too
	require.Equal(t, 3, p.tree.heldOrphans())
	p.checkSegments(t)
	assert.Equal(t, []allocator.BlockID{11, 12, 13, 1, 0}, victims(t, p, 5))
	p.checkSegments(t)
	// A reused block's new content is no orphan.
	hint(11, allocator.NoBlock, 0)
	p.Insert(11)
	require.Zero(t, p.tree.heldOrphans())
	p.checkSegments(t)
}

func victims(t *testing.T, p Policy, n int) []allocator.BlockID {
	t.Helper()
	var out []allocator.BlockID
	for range n {
		id, ok := p.Victim()
		require.True(t, ok)
		out = append(out, id)
	}
	return out
}
