package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Tests written for the fourth round of mutation testing (session 23,
// docs/testing.md): each kills a mutation the property tests and the rest
// of the package let survive.

// victims pops p's victims until it has none.
func audit45Victims(p Policy) []allocator.BlockID {
	var got []allocator.BlockID
	for {
		id, ok := p.Victim()
		if !ok {
			return got
		}
		got = append(got, id)
	}
}

// TestAudit45S3FIFOCountersSaturateAtThree: a block in M keeps up to three
// hits (M240 let it keep two). Blocks 0 and 1 reach M with no hits; then 0
// is hit three times and 1 twice. M's clock takes a hit from 0, from 1,
// from 0, from 1 (now 0 has one left, 1 none), from 0, and gives up 1.
// With counters saturating at two, 0 runs out first and goes.
func TestAudit45S3FIFOCountersSaturateAtThree(t *testing.T) {
	p := NewS3FIFO(10).(*S3FIFO) // S's share: one block
	for _, id := range []allocator.BlockID{0, 1} {
		p.Insert(id)
		p.Access(id)
		p.Access(id)
	}
	p.Insert(2)
	// 0 and 1 were hit twice in S: they move to M; 2 was not: it goes.
	v, ok := p.Victim()
	require.True(t, ok)
	require.Equal(t, allocator.BlockID(2), v)
	require.Equal(t, 2, p.main.n)
	for range 3 {
		p.Access(0)
	}
	p.Access(1)
	p.Access(1)
	assert.Equal(t, []allocator.BlockID{1, 0}, audit45Victims(p))
}

// TestAudit45PriorityDefaultRetainIsNoPromise: a promise at or below the
// default level counts only while the content's own lower level lasts
// (Retain's comment); on content at the default it is no promise at all,
// and Retains does not count it (M248 counted one at exactly the default).
func TestAudit45PriorityDefaultRetainIsNoPromise(t *testing.T) {
	p := NewPriority(2).(*Priority)
	p.Hint(0, Hint{Key: 1, Parent: allocator.NoBlock, Priority: DefaultPriority})
	p.Retain(0, DefaultPriority, 0)
	p.Retain(0, DefaultPriority, 7)
	p.Retain(0, 10, 7)
	assert.Equal(t, uint64(0), p.Retains())
	assert.False(t, p.exp.queued(0), "a promise that is none queues no expiry")
	// Content committed at 10 until tick 8: a default promise counts.
	p.Hint(1, Hint{Key: 2, Parent: allocator.NoBlock, Priority: 10, Expires: 8})
	p.Retain(1, DefaultPriority, 20)
	assert.Equal(t, uint64(1), p.Retains())
}

// TestAudit45ChainTiesGoToTheOlder: between candidates of equal score,
// Chain gives up the one released longer ago. Without hints every score is
// 0, so with leaves not preferred (the branch Victim takes when no
// candidate is a leaf) the order is LRU's; M254, giving ties to the newer
// candidate, took a segment's first block from the back of the class.
func TestAudit45ChainTiesGoToTheOlder(t *testing.T) {
	p := NewChain(4).(*Chain)
	p.leavesFirst = false
	for _, id := range []allocator.BlockID{2, 0, 3, 1} {
		p.Insert(id) // four releases: four segments of one class
	}
	assert.Equal(t, []allocator.BlockID{2, 0, 3, 1}, audit45Victims(p))
}

// TestAudit45ARCGhostHitUsesTheGhostUp: content whose key is a ghost
// moves p once and takes the ghost out (M227 left it, and the key's next
// commit, after content dropped without an eviction, moved p again and
// went to T2 as if it had been evicted a second time).
func TestAudit45ARCGhostHitUsesTheGhostUp(t *testing.T) {
	p := NewARC(4).(*ARC)
	p.Hint(0, Hint{Key: 7, Parent: allocator.NoBlock})
	p.Insert(0)
	v, ok := p.Victim()
	require.True(t, ok)
	require.Equal(t, allocator.BlockID(0), v)
	require.Equal(t, 1, p.g.len(ghostB1))
	p.Hint(1, Hint{Key: 7, Parent: allocator.NoBlock}) // a B1 ghost hit
	assert.Equal(t, 1, p.p)
	assert.Equal(t, arcT2, p.tag[1])
	l, _ := p.g.find(7)
	assert.Equal(t, -1, l, "the ghost is used up")
	assert.Equal(t, 0, p.g.len(ghostB1))
	p.Forget(1) // dropped, not evicted: no ghost
	p.Hint(2, Hint{Key: 7, Parent: allocator.NoBlock})
	assert.Equal(t, 1, p.p, "no ghost, no adaptation")
	assert.Equal(t, arcT1, p.tag[2])
}

// TestAudit45S3FIFOGhostHitUsesTheGhostUp: content whose key is in G goes
// to M and takes the key out of G (M239 left it, and the key's next
// commit, after content dropped without an eviction, went to M again).
func TestAudit45S3FIFOGhostHitUsesTheGhostUp(t *testing.T) {
	p := NewS3FIFO(10).(*S3FIFO)
	p.Hint(0, Hint{Key: 7, Parent: allocator.NoBlock})
	p.Insert(0)
	v, ok := p.Victim() // from S, unhit: evicted, its key into G
	require.True(t, ok)
	require.Equal(t, allocator.BlockID(0), v)
	p.Hint(1, Hint{Key: 7, Parent: allocator.NoBlock})
	assert.Equal(t, queueMain, p.queue[1])
	l, _ := p.g.find(7)
	assert.Equal(t, -1, l, "the ghost is used up")
	p.Forget(1) // dropped, not evicted: no ghost
	p.Hint(2, Hint{Key: 7, Parent: allocator.NoBlock})
	assert.Equal(t, queueSmall, p.queue[2])
}
