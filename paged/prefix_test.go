package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

func seqOf(from, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(from + i)
	}
	return out
}

func table(t *testing.T, m *paged.Manager, id paged.SeqID) []allocator.BlockID {
	t.Helper()
	tb, err := m.Table(id)
	require.NoError(t, err)
	return append([]allocator.BlockID(nil), tb...)
}

// vllmIDs shifts vLLM's block IDs by one: vLLM's design-doc examples have no
// null block, ours reserves block 0.
func vllmIDs(ids ...int) []allocator.BlockID {
	out := make([]allocator.BlockID, len(ids))
	for i, id := range ids {
		out[i] = allocator.BlockID(id + 1)
	}
	return out
}

// TestVLLMDesignDocExample follows the worked example in vLLM's prefix
// caching design document (block size 4, ten blocks, one free queue): the
// same requests must give the same hits, the same free-queue order and the
// same evictions.
func TestVLLMDesignDocExample(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 11, UnifiedFreeQueue: true, Events: 64})
	require.NoError(t, err)
	check := func() { t.Helper(); require.NoError(t, m.Check()) }

	// Time 1: request 0, 15 prompt tokens: four blocks, three full and cached.
	r0prompt := seqOf(100, 15)
	r0, cached, err := m.Create(r0prompt, nil)
	require.NoError(t, err)
	assert.Zero(t, cached)
	assert.Equal(t, vllmIDs(0, 1, 2, 3), table(t, m, r0))
	assert.EqualValues(t, 3, m.Stats().BlocksStored)
	check()

	// Time 3: two decoded tokens fill block 3 (cached) and take block 4.
	require.NoError(t, m.Append(r0, 200))
	assert.EqualValues(t, 4, m.Stats().BlocksStored, "a block is cached as soon as it is full")
	require.NoError(t, m.Append(r0, 201))
	assert.Equal(t, vllmIDs(0, 1, 2, 3, 4), table(t, m, r0))
	check()

	// Time 4: request 1 shares the first 10 tokens: only two full blocks hit.
	r1prompt := append(seqOf(100, 10), seqOf(500, 4)...)
	r1, cached, err := m.Create(r1prompt, nil)
	require.NoError(t, err)
	assert.Equal(t, 8, cached)
	assert.Equal(t, vllmIDs(0, 1, 5, 6), table(t, m, r1))
	check()

	// Times 5 and 6: both finish; blocks return tail first.
	require.NoError(t, m.Free(r0))
	require.NoError(t, m.Free(r1))
	check()
	st := m.Stats()
	assert.Equal(t, 10, st.CachedBlocks, "with one free queue every unreferenced block sits in it")
	m.DrainEvents(nil)

	// Time 7: request 2 shares 12 tokens with request 0. The free queue was
	// 7 8 9 4 3 2 6 5 1 0; the hits 0 1 2 leave it first, then five blocks
	// come off its head, evicting block 3's cached content.
	r2prompt := append(seqOf(100, 12), seqOf(900, 17)...)
	r2, cached, err := m.Create(r2prompt, nil)
	require.NoError(t, err)
	assert.Equal(t, 12, cached)
	assert.Equal(t, vllmIDs(0, 1, 2, 7, 8, 9, 4, 3), table(t, m, r2))
	assert.EqualValues(t, 1, m.Stats().Evictions, "only block 3 held cached content")
	evs := m.DrainEvents(nil)
	require.NotEmpty(t, evs)
	assert.Equal(t, paged.BlockRemoved, evs[0].Kind)
	assert.Len(t, evs[0].Hashes, 1)
	check()
}

// TestDuplicateBlocks follows the design document's duplicated-block case:
// the same request sent twice fills a second block with content already
// cached. Tables are append-only, so both copies stay cached and a lookup
// returns the first.
func TestDuplicateBlocks(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 11, UnifiedFreeQueue: true})
	require.NoError(t, err)
	prompt := seqOf(1, 6) // A..F
	r1, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(r1, 7, 8, 9)) // G H I: block EFGH full
	assert.Equal(t, vllmIDs(0, 1, 2), table(t, m, r1))

	r2, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	assert.Equal(t, 4, cached, "ABCD hits; EF.. is not full")
	require.NoError(t, m.Append(r2, 7, 8))
	assert.Equal(t, vllmIDs(0, 3), table(t, m, r2), "block 3 duplicates block 1")
	assert.EqualValues(t, 3, m.Stats().BlocksStored)
	require.NoError(t, m.Check())

	r3, cached, err := m.Create(append(seqOf(1, 6), 7, 8, 9), nil)
	require.NoError(t, err)
	assert.Equal(t, 8, cached)
	assert.Equal(t, vllmIDs(0, 1), table(t, m, r3)[:2], "the first-inserted duplicate is hit")
	require.NoError(t, m.Check())
}

func TestLastPromptTokenIsRecomputed(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 8), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	_, cached, err := m.Create(seqOf(1, 8), nil)
	require.NoError(t, err)
	assert.Equal(t, 4, cached, "8 cached tokens, but the last one must be recomputed")
	_, cached, err = m.Create(seqOf(1, 8), &paged.SeqOptions{AllowFullHit: true})
	require.NoError(t, err)
	assert.Equal(t, 8, cached)
}

func TestSaltIsolatesTenants(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
	require.NoError(t, err)
	prompt := seqOf(1, 13)
	a, _, err := m.Create(prompt, &paged.SeqOptions{Salt: "tenant-a"})
	require.NoError(t, err)
	_, cached, err := m.Create(prompt, &paged.SeqOptions{Salt: "tenant-b"})
	require.NoError(t, err)
	assert.Zero(t, cached, "another salt never hits")
	_, cached, err = m.Create(prompt, nil)
	require.NoError(t, err)
	assert.Zero(t, cached, "no salt is a salt of its own")
	_, cached, err = m.Create(prompt, &paged.SeqOptions{Salt: "tenant-a"})
	require.NoError(t, err)
	assert.Equal(t, 12, cached, "the same salt hits")
	assert.Len(t, table(t, m, a), 4)
	require.NoError(t, m.Check())
}

func TestLoRAAndMultimodalKeys(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	require.NoError(t, err)
	prompt := seqOf(1, 13)
	_, _, err = m.Create(prompt, &paged.SeqOptions{LoRA: 3})
	require.NoError(t, err)
	_, cached, err := m.Create(prompt, &paged.SeqOptions{LoRA: 4})
	require.NoError(t, err)
	assert.Zero(t, cached, "another adapter computes other KV")
	_, cached, err = m.Create(prompt, &paged.SeqOptions{LoRA: 3})
	require.NoError(t, err)
	assert.Equal(t, 12, cached)

	// An image over positions 5..6 (block 1): another image shares block 0
	// only.
	img := func(h string) *paged.SeqOptions {
		return &paged.SeqOptions{MM: []paged.MMRange{{Start: 5, End: 7, Hash: h}}}
	}
	_, _, err = m.Create(prompt, img("cat"))
	require.NoError(t, err)
	_, cached, err = m.Create(prompt, img("dog"))
	require.NoError(t, err)
	assert.Equal(t, 4, cached)
	_, cached, err = m.Create(prompt, img("cat"))
	require.NoError(t, err)
	assert.Equal(t, 12, cached)

	_, _, err = m.Create(prompt, &paged.SeqOptions{MM: []paged.MMRange{{Start: 10, End: 20, Hash: "x"}}})
	assert.ErrorIs(t, err, paged.ErrInvalid, "a range past the prompt")
	require.NoError(t, m.Check())
}

func TestPrecomputedHashes(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 512, NumBlocks: 16})
	require.NoError(t, err)
	h := func(ids ...byte) []paged.Hash {
		out := make([]paged.Hash, len(ids))
		for i, id := range ids {
			out[i][0] = id
		}
		return out
	}
	opts := &paged.SeqOptions{AllowFullHit: true}
	a, cached, err := m.CreateFromHashes(h(1, 2, 3), 3*512, opts)
	require.NoError(t, err)
	assert.Zero(t, cached)
	require.NoError(t, m.Free(a))
	_, cached, err = m.CreateFromHashes(h(1, 2, 9), 3*512, opts)
	require.NoError(t, err)
	assert.Equal(t, 2*512, cached, "hits stop at the first miss")
	_, err = m.AddFromHashes(h(1, 2, 3, 4), 3*512, nil)
	assert.ErrorIs(t, err, paged.ErrInvalid)
	require.NoError(t, m.Check())
}

func TestLazyEvictionKeepsContentHittable(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 5, MaxModelLen: 64}) // 4 usable
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 5), nil) // 3 blocks, 2 full
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	st := m.Stats()
	assert.Equal(t, 2, st.CachedBlocks)
	assert.Equal(t, 2, st.FreeBlocks, "the partial block and the untouched one")

	// A sequence longer than the pool holds is refused when added.
	_, err = m.Add(seqOf(1, 9), nil) // 5 blocks: never fits in 4
	require.ErrorIs(t, err, paged.ErrNever)
	assert.Equal(t, paged.AdmitNever, m.CanAdmitTokens(9))

	// Admission counts a hit that sits in the policy as consuming capacity.
	c, cached, err := m.Create(seqOf(1, 7), nil) // 4 blocks, 2 hits
	require.NoError(t, err)
	assert.Equal(t, 4, cached)
	assert.Zero(t, m.Stats().Evictions, "free blocks were used before any cached one")
	require.NoError(t, m.Free(c))
	require.NoError(t, m.Check())
}

func TestResetCache(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 9, Events: 16})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	require.ErrorIs(t, m.ResetCache(), paged.ErrCacheInUse)
	require.NoError(t, m.Free(a))
	require.NoError(t, m.ResetCache())
	assert.Zero(t, m.Stats().CachedBlocks)
	evs := m.DrainEvents(nil)
	assert.Equal(t, paged.AllBlocksCleared, evs[len(evs)-1].Kind)
	_, cached, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	assert.Zero(t, cached)
	require.NoError(t, m.Check())
}

func TestEvents(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 4, Events: 3})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3, 4, 5}, &paged.SeqOptions{LoRA: 7})
	require.NoError(t, err)
	evs := m.DrainEvents(nil)
	require.Len(t, evs, 1)
	e := evs[0]
	assert.Equal(t, paged.BlockStored, e.Kind)
	assert.EqualValues(t, 1, e.Seq)
	assert.Len(t, e.Hashes, 2)
	assert.False(t, e.HasParent)
	assert.Equal(t, []int32{1, 2, 3, 4}, e.Tokens)
	assert.Equal(t, 2, e.BlockSize)
	assert.EqualValues(t, 7, e.LoRA)
	assert.Equal(t, paged.Device, e.Medium)

	require.NoError(t, m.Append(a, 6))
	evs = m.DrainEvents(evs[:0])
	require.Len(t, evs, 1)
	assert.True(t, evs[0].HasParent)
	assert.Equal(t, []int32{5, 6}, evs[0].Tokens)

	// Overflow: the buffer holds three events; the rest are counted and
	// their sequence numbers skipped.
	require.NoError(t, m.Free(a))
	for i := range 6 {
		id, _, err := m.Create([]int32{int32(10 * i), 1, 2}, nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
	}
	evs = m.DrainEvents(evs[:0])
	assert.Len(t, evs, 3)
	assert.NotZero(t, m.Stats().EventsDropped)
	assert.Equal(t, evs[0].Seq+1, evs[1].Seq)
}

func TestBlockHashesMatchTheManager(t *testing.T) {
	cfg := paged.Config{BlockSize: 4, NumBlocks: 32, HashSeed: []byte("fleet"), Events: 8}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	router, err := paged.New(cfg)
	require.NoError(t, err)
	opts := &paged.SeqOptions{LoRA: 2, Salt: "s", MM: []paged.MMRange{{Start: 5, End: 6, Hash: "img"}}}
	prompt := seqOf(1, 14)
	_, _, err = m.Create(prompt, opts)
	require.NoError(t, err)
	stored := m.DrainEvents(nil)[0].Hashes
	hs, err := router.BlockHashes(nil, prompt, opts)
	require.NoError(t, err)
	assert.Equal(t, stored, hs, "another manager with the same config computes the same chain")
	other, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
	require.NoError(t, err)
	hs2, err := other.BlockHashes(nil, prompt, opts)
	require.NoError(t, err)
	assert.NotEqual(t, hs, hs2, "another seed, another chain")
	_, err = router.BlockHashes(nil, prompt, &paged.SeqOptions{LoRA: -1})
	assert.ErrorIs(t, err, paged.ErrInvalid)
}
