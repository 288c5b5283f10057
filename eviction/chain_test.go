package eviction_test

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// conversations replays, through a real manager of capacity blocks, rounds
// in which one of eight conversations returns with its chain two blocks
// longer and eight one-shot prompts of eight blocks each pass by; it
// returns the hit rate of the conversations' requests. A conversation
// returns every eight rounds, after 512 one-shot blocks, so a 400-block LRU
// has lost it by then, while the eight conversations (at most 320 blocks
// in 160 rounds) fit.
func conversations(t *testing.T, f eviction.Factory, capacity, rounds int) float64 {
	t.Helper()
	m, hash, run := chainReplayer(t, f, capacity)
	chains := make([][]paged.Hash, 8)
	next := uint64(1)
	var hits, refs int
	for r := range rounds {
		c := r % 8
		for range 2 {
			chains[c] = append(chains[c], hash(next))
			next++
		}
		if r >= 8 {
			hits += run(chains[c])
			refs += len(chains[c])
		} else {
			run(chains[c])
		}
		for range 8 {
			run(oneShot(hash, &next, nil))
		}
		require.NoError(t, m.Check())
	}
	return float64(hits) / float64(refs)
}

// TestChainKeepsReturningConversations: the conversations are the only
// chains ever extended, so Chain learns that their turn class returns and
// the one-shot class does not, and keeps the conversations through the
// one-shot flood that pushes them out of LRU. With turn counting or the
// reuse statistics broken, Chain would be LRU and hit as little.
func TestChainKeepsReturningConversations(t *testing.T) {
	lru := conversations(t, eviction.NewLRU, 400, 160)
	chain := conversations(t, eviction.NewChain, 400, 160)
	t.Logf("conversation hit rate: lru %.3f, chain %.3f", lru, chain)
	assert.Less(t, lru, 0.1)
	assert.Greater(t, chain, 0.5)
}

// rewrittenTails is like conversations, except that each returning turn
// drops its previous request's last block (a partial block that the next
// turn rewrites, as chat turns do) before adding three, and the one-shot
// prompts come in a second kind too: prompts that share a 4-block document
// with the previous one-shot, so not everything extended is a
// conversation. The conversations' last blocks are never asked for again,
// so a policy must tell them from the rest of the chain.
func rewrittenTails(t *testing.T, f eviction.Factory, capacity, rounds int) float64 {
	t.Helper()
	m, hash, run := chainReplayer(t, f, capacity)
	chains := make([][]paged.Hash, 8)
	next := uint64(1)
	var hits, refs int
	for r := range rounds {
		c := r % 8
		if n := len(chains[c]); n > 0 {
			chains[c] = chains[c][:n-1]
		}
		for range 3 {
			chains[c] = append(chains[c], hash(next))
			next++
		}
		got := run(chains[c])
		if r >= 8 {
			hits += got
			refs += len(chains[c]) - 2 // what a hit can cover
		}
		doc := []paged.Hash{hash(next), hash(next + 1), hash(next + 2), hash(next + 3)}
		next += 4
		for k := range 8 {
			var shared []paged.Hash
			if k%2 == 1 {
				shared = doc
			}
			run(oneShot(hash, &next, shared))
		}
		require.NoError(t, m.Check())
	}
	return float64(hits) / float64(refs)
}

// TestChainKeepsConversationsThatRewriteTheirTails: Chain learns from its
// release records that a conversation's chain returns without its last
// block, and keeps the chains through the flood that pushes them out of
// LRU, though no request ever asks for a block the previous one ended
// with. With the records broken, Chain would see no return and be LRU.
func TestChainKeepsConversationsThatRewriteTheirTails(t *testing.T) {
	lru := rewrittenTails(t, eviction.NewLRU, 400, 160)
	chain := rewrittenTails(t, eviction.NewChain, 400, 160)
	t.Logf("conversation hit rate: lru %.3f, chain %.3f", lru, chain)
	assert.Less(t, lru, 0.1)
	assert.Greater(t, chain, 0.5)
}

// TestChainWithoutHintsIsLRU: with no hints every block is in one class,
// so victims come in release order.
func TestChainWithoutHintsIsLRU(t *testing.T) {
	p := eviction.NewChain(16)
	for _, id := range []allocator.BlockID{5, 3, 9, 1} {
		p.Insert(id)
	}
	p.Remove(3)
	p.Insert(3)
	var got []allocator.BlockID
	for {
		id, ok := p.Victim()
		if !ok {
			break
		}
		got = append(got, id)
	}
	assert.Equal(t, []allocator.BlockID{5, 9, 1, 3}, got)
}

// TestChainNoAllocs: the steady state of the conversation workload's
// operations allocates nothing once the policy is built.
func TestChainNoAllocs(t *testing.T) {
	const n = 256
	p := eviction.NewChain(n)
	h := p.(eviction.Hinter)
	a := p.(eviction.Accessor)
	key := uint64(0)
	step := func() {
		// Give up a victim, commit new content as a child of a hit block,
		// release it, and hit and release another block.
		id, ok := p.Victim()
		if !ok {
			return
		}
		key++
		par := allocator.BlockID((key * 7) % n)
		if par == id || !p.Contains(par) {
			par = allocator.NoBlock
		}
		if par >= 0 {
			a.Access(par)
		}
		h.Hint(id, eviction.Hint{Key: key % (3 * n), Parent: par, Depth: 1})
		p.Insert(id)
		if o := allocator.BlockID((key * 13) % n); o != id && p.Contains(o) {
			a.Access(o)
			p.Remove(o)
			p.Insert(o)
		}
	}
	for id := range allocator.BlockID(n) {
		p.Insert(id)
	}
	for range 20 * n {
		step()
	}
	assert.Zero(t, testing.AllocsPerRun(1000, step))
}

// chainReplayer returns a manager of capacity blocks of 16 tokens under
// policy f, a block hash made from a number, and a function that runs one
// request of the given block hashes on the manager (create, then free)
// and returns how many of its blocks were hits.
func chainReplayer(t *testing.T, f eviction.Factory, capacity int) (*paged.Manager, func(uint64) paged.Hash, func([]paged.Hash) int) {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: capacity + 1, Policy: f})
	require.NoError(t, err)
	hash := func(x uint64) paged.Hash {
		var h paged.Hash
		binary.LittleEndian.PutUint64(h[:], x)
		return h
	}
	run := func(hs []paged.Hash) int {
		id, cached, err := m.CreateFromHashes(hs, len(hs)*16, &paged.SeqOptions{AllowFullHit: true})
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
		return cached / 16
	}
	return m, hash, run
}

// oneShot returns the eight block hashes of a one-shot prompt: fresh
// content numbered from *next (which it advances), its first blocks
// replaced by shared (a document it shares with other prompts), if any.
func oneShot(hash func(uint64) paged.Hash, next *uint64, shared []paged.Hash) []paged.Hash {
	one := make([]paged.Hash, 8)
	for i := range one {
		one[i] = hash(*next)
		*next++
	}
	copy(one, shared)
	return one
}
