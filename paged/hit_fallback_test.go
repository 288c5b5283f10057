package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// fallbackLayout is the layout of TestLongestHitFallsBack: full
// attention, a group sharing its table, a sliding window of 1 token.
var fallbackLayout = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared}, {Kind: paged.SlidingWindow, Window: 1}}

// cachePrompt computes prompt (admitted in chunks of 1 token) and frees
// it, leaving its full blocks cached.
func cachePrompt(t *testing.T, m *paged.Manager, prompt []int32) {
	t.Helper()
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	_, err = chunkByChunk(m, id, 1)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
}

// TestLongestHitFallsBack: a 21-token prompt with its first 20 tokens
// cached, blocks of 2 tokens, 12 usable blocks. With the hit the
// admission computes 1 token: the whole admission holds the 11 full
// blocks and the window's 2 (the hit's last block, the window before the
// new token, and the new token's), 13: never. With an empty cache the
// prompt fits in chunks of 1, 2 or 4. Before, AdmitChunk always took the
// longest hit and refused the prompt as never at every chunk size; the
// cached blocks of an idle pool are not evicted by a refusal, so the
// prompt was refused for good. Now the admission falls back to the
// longest shorter hit that fits (or a miss).
func TestLongestHitFallsBack(t *testing.T) {
	prompt := seqOf(1, 21)
	for _, chunk := range []int{0, 1, 2, 4} {
		m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 13, Groups: fallbackLayout})
		require.NoError(t, err)
		// With an empty cache.
		if chunk > 0 {
			e, err := m.Add(prompt, nil)
			require.NoError(t, err)
			a, err := m.CanAdmitChunk(e, chunk)
			require.NoError(t, err)
			require.Equal(t, paged.AdmitOK, a, "chunk %d, empty cache", chunk)
			require.NoError(t, m.Free(e))
		}
		cachePrompt(t, m, prompt[:20])
		id, err := m.Add(prompt, nil)
		require.NoError(t, err)
		before := m.Stats()
		if chunk == 0 {
			a, err := m.CanAdmit(id)
			require.NoError(t, err)
			assert.Equal(t, paged.AdmitNever, a, "whole, with or without a hit")
			_, err = m.Admit(id)
			require.ErrorIs(t, err, paged.ErrNever)
			require.NoError(t, m.Check())
			continue
		}
		a, err := m.CanAdmitChunk(id, chunk)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitOK, a, "chunk %d", chunk)
		cached, rest, err := m.AdmitChunk(id, chunk, nil)
		require.NoError(t, err, "chunk %d", chunk)
		assert.Less(t, cached, 20, "a shorter hit")
		t.Logf("chunk %d: %d cached", chunk, cached)
		assert.Zero(t, cached%2, "at a block boundary")
		after := m.Stats()
		assert.Equal(t, before.HitFallbacks+1, after.HitFallbacks, "counted")
		assert.Equal(t, before.PrefixHitTokens+uint64(cached), after.PrefixHitTokens, "the hit taken")
		require.NoError(t, m.Check())
		for len(rest) > 0 {
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			c := min(chunk, len(rest))
			require.NoError(t, m.Append(id, rest[:c]...), "chunk %d: alone in the pool", chunk)
			rest = rest[c:]
			require.NoError(t, m.Check())
		}
	}
}
