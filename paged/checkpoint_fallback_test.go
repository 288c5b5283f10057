package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

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
		prefix := seqOf(1, 8) // 2 blocks
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
		// 17 tokens: 5 blocks and 2 pages computed from scratch (7 of 8),
		// 9 with the hit (its 2 blocks are evictable, its 2 checkpoint
		// pages too).
		c, err := m.Add(with(300, 9), nil)
		require.NoError(t, err)
		a2, err := m.CanAdmit(c)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitOK, a2)
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
