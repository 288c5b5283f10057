package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// branchedAt returns a prompt maker for prompts that start with prefix
// (whole blocks) and go on with n tokens from tail, after computing two
// of them that branch at the prefix's end and freeing them, so that a
// state checkpoint is cached there (and the prefix's blocks).
func branchedAt(t *testing.T, m *paged.Manager, prefix []int32) func(tail int32, n int) []int32 {
	with := func(tail int32, n int) []int32 {
		p := append([]int32(nil), prefix...)
		for i := range n {
			p = append(p, tail+int32(i))
		}
		return p
	}
	a, _, err := m.Create(with(100, 5), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	b, cached, err := m.Create(with(200, 5), nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	require.Len(t, m.TakeCheckpoints(nil), 1, "the branch point's checkpoint")
	m.TakeCopies(nil)
	require.NoError(t, m.Free(b))
	return with
}

// TestCheckpointHitFallsBackToMiss: a checkpoint hit costs the pool the
// checkpoint's evictable pages besides the sequence's own state pages, so
// in a pool that holds the sequence computed from scratch but not the
// hit, admission computes it from scratch (cached 0) instead of refusing
// it for good: nothing else runs, so ErrNoSpace would never clear.
func TestCheckpointHitFallsBackToMiss(t *testing.T) {
	// AdmitChunk: 0 admits whole (Admit); 64 tokens a chunk take the
	// prompt at once; 12 cut it where the hit would fit the cut alone
	// but, pinned to the end, not the rest.
	for _, chunk := range []int{0, 64, 12} {
		// 8 usable blocks: the first two sequences (4 blocks, 2 pages,
		// the asked checkpoint's 2 pages) fit alone.
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
		require.NoError(t, err)
		with := branchedAt(t, m, seqOf(1, 8)) // 2 blocks
		// 17 tokens: 5 blocks and 2 pages computed from scratch (7 of 8),
		// 9 with the hit (its 2 blocks are evictable, its 2 checkpoint
		// pages too).
		c, err := m.Add(with(300, 9), nil)
		require.NoError(t, err)
		a2, err := m.CanAdmit(c)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitOK, a2)
		var cached int
		if chunk > 0 {
			a2, err := m.CanAdmitChunk(c, chunk)
			require.NoError(t, err)
			assert.Equal(t, paged.AdmitOK, a2)
			cached, rest, err := m.AdmitChunk(c, chunk, nil)
			require.NoError(t, err)
			assert.Zero(t, cached, "chunk %d", chunk)
			m.TakeCopies(nil)
			if len(rest) > 0 {
				require.NoError(t, m.Append(c, rest...), "the rest, alone in the pool")
			}
		} else {
			cached, err = m.Admit(c)
			require.NoError(t, err, "a pool that holds the sequence computed from scratch")
			assert.Zero(t, cached, "no checkpoint restored")
		}
		assert.Empty(t, m.TakeCopies(nil), "no state copied from the checkpoint")
		require.NoError(t, m.Check())
		assert.Zero(t, m.Stats().PrefixHitTokens, "the admission hit nothing")
		assert.Equal(t, uint64(1), m.Stats().CheckpointHitsDropped, "chunk %d", chunk)
	}
}

// TestCheckpointHitDroppedForTheCut: the whole prompt keeps its checkpoint
// hit (it fits in the pool, not now, with or without it) and the cut
// AdmitChunk admits does not fit now with the hit, but does from scratch.
// Beside a running sequence, which will give its blocks back, the cut
// keeps the hit and waits (ErrNoSpace), as any admission. In an idle
// pool whose room lasting prefix pins hold, waiting would not clear: the
// cut drops the hit for a miss, as Admit would drop it admitting the
// cut, and counts it as dropped, with no hit in the prefix statistics.
// Before, such a drop went uncounted (CheckpointHitsDropped 0,
// PrefixHitTokens 8 for an admission that returned 0 cached tokens):
// internal/integration's TestServerLoop found it at seed
// 15908396142908145232 through sched's chunked admission (where the cut
// dropped it beside running sequences too).
func TestCheckpointHitDroppedForTheCut(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}
	t.Run("running", func(t *testing.T) {
		// 14 usable blocks, a watermark of 1.
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 15, Watermark: 0.05, Groups: groups})
		require.NoError(t, err)
		with := branchedAt(t, m, seqOf(1, 8))
		// Cached: the prefix's 2 blocks and a's third, b's copies of
		// them (b hit nothing: no checkpoint yet), the checkpoint's 2
		// pages. A filler takes every free block (4 blocks and its 2
		// pages), leaving those 8 evictable, 7 above the watermark.
		require.Equal(t, 8, m.Stats().CachedBlocks)
		require.Equal(t, 6, m.Stats().FreeBlocks)
		filler, _, err := m.Create(seqOf(1000, 16), nil)
		require.NoError(t, err)
		require.Equal(t, 8, m.Stats().CachedBlocks, "the filler evicted nothing")
		// 28 tokens: 9 blocks from scratch, 11 with the hit (its 2
		// evictable blocks and 2 pages claimed). Cut at the hit and 8
		// new tokens: 6 from scratch, 8 with the hit.
		c := addLater(t, m, with(300, 20))
		adm, err := m.CanAdmitChunk(c, 8)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitLater, adm, "the cut with the hit")
		_, _, err = m.AdmitChunk(c, 8, nil)
		require.ErrorIs(t, err, paged.ErrNoSpace, "the cut with the hit, later")
		require.NoError(t, m.Free(filler))
		cached, rest, err := m.AdmitChunk(c, 8, nil)
		require.NoError(t, err)
		assert.Equal(t, 8, cached, "the hit, once the filler is gone")
		assert.Len(t, rest, 12)
		assert.Len(t, m.TakeCopies(nil), 2, "the checkpoint's pages copied")
		assert.Zero(t, m.Stats().CheckpointHitsDropped)
		require.NoError(t, m.Check())
	})
	t.Run("pinned", func(t *testing.T) {
		// 13 usable blocks; a lasting pin holds another prefix and its
		// checkpoint (4 blocks): 9 available for good.
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 14, Groups: groups})
		require.NoError(t, err)
		require.NoError(t, m.SetPinBudget(4))
		other := seqOf(500, 8)
		branchedAt(t, m, other)
		_, pinned, err := m.Pin(other, nil, 0)
		require.NoError(t, err)
		require.Equal(t, 8, pinned)
		with := branchedAt(t, m, seqOf(1, 12)) // 3 blocks
		st := m.Stats()
		require.Equal(t, 4, st.UsedBlocks, "the pin's")
		require.Zero(t, st.Running)
		// 32 tokens: 10 blocks from scratch, 12 with the hit (its 3
		// evictable blocks and 2 pages claimed). Cut at the hit and 12
		// new tokens: 8 from scratch, 10 with the hit. Cut at 12 tokens,
		// the cut finds no hit.
		c := addLater(t, m, with(300, 20))
		adm, err := m.CanAdmitChunk(c, 12)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitOK, adm, "the cut from scratch")
		before := m.Stats().PrefixHitTokens
		cached, rest, err := m.AdmitChunk(c, 12, nil)
		require.NoError(t, err)
		assert.Zero(t, cached, "the cut computed from scratch")
		assert.Len(t, rest, 20, "12 new tokens computed")
		assert.Empty(t, m.TakeCopies(nil), "no state copied from the checkpoint")
		require.NoError(t, m.Check())
		st = m.Stats()
		assert.Equal(t, before, st.PrefixHitTokens, "the admission hit nothing")
		assert.Equal(t, uint64(1), st.CheckpointHitsDropped)
	})
}

// addLater adds prompt to m, to be admitted later, with or without its
// checkpoint hit.
func addLater(t *testing.T, m *paged.Manager, prompt []int32) paged.SeqID {
	c, err := m.Add(prompt, nil)
	require.NoError(t, err)
	adm, err := m.CanAdmit(c)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitLater, adm, "the whole prompt, with or without the hit")
	return c
}
