package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit172FastHasherReadsEveryToken: changing any one token of a
// block, at an even or odd position, of an even or odd length, changes
// FastHasher's hash.
func TestAudit172FastHasherReadsEveryToken(t *testing.T) {
	var parent paged.Hash
	for _, n := range []int{2, 15, 16} {
		base := seqOf(100, n)
		want := paged.FastHasher{}.Sum(&parent, base, nil)
		for i := range base {
			other := append([]int32(nil), base...)
			other[i] += 7
			assert.NotEqual(t, want, paged.FastHasher{}.Sum(&parent, other, nil), "%d tokens, token %d changed", n, i)
		}
	}
}

// TestAudit172UnifiedFreeQueueKeepsTheLongestHit: TestLongestHitFallsBack's
// prompt under UnifiedFreeQueue: vLLM's decisions never fall back, so
// the longest hit's refusal stands in chunks too, and no fallback is
// counted.
func TestAudit172UnifiedFreeQueueKeepsTheLongestHit(t *testing.T) {
	prompt := seqOf(1, 21)
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 13, Groups: fallbackLayout, UnifiedFreeQueue: true})
	require.NoError(t, err)
	cachePrompt(t, m, prompt[:20])
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	for _, chunk := range []int{1, 2, 4} {
		a, err := m.CanAdmitChunk(id, chunk)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitNever, a, "chunk %d", chunk)
		_, _, err = m.AdmitChunk(id, chunk, nil)
		require.ErrorIs(t, err, paged.ErrNever, "chunk %d", chunk)
	}
	assert.Zero(t, m.Stats().HitFallbacks)
	require.NoError(t, m.Check())
}

// TestAudit172FallbackTakesTheLongestShorterHit: in
// TestLongestHitFallsBack's pool, admitted in chunks of 1 or 2 tokens,
// the 10-block hit is refused for good and the 9-block one is not: the
// admission falls back to it (18 tokens), not to a shorter hit still.
func TestAudit172FallbackTakesTheLongestShorterHit(t *testing.T) {
	prompt := seqOf(1, 21)
	for _, chunk := range []int{1, 2} {
		m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 13, Groups: fallbackLayout})
		require.NoError(t, err)
		cachePrompt(t, m, prompt[:20])
		id, err := m.Add(prompt, nil)
		require.NoError(t, err)
		cached, _, err := m.AdmitChunk(id, chunk, nil)
		require.NoError(t, err, "chunk %d", chunk)
		assert.Equal(t, 18, cached, "chunk %d: the longest shorter hit", chunk)
		assert.Equal(t, uint64(1), m.Stats().HitFallbacks)
		require.NoError(t, m.Check())
	}
}

// TestAudit172PrefillFloorCornerLayouts runs checkPrefillFloor on two
// layouts TestPrefillFloor's table does not hold. Blocks of one token and
// a sequence window of 1: a two-token prompt computed in chunks holds one
// block when its last token is computed alone (its window no longer reads
// block 0), where admitted whole it holds two. Full attention, a window
// of 1 and chunks of 8 in blocks of 4: at 17 tokens the longest whole hit
// (4 blocks) frees the chunked group's first 4 blocks and the window's
// first 3, and a last step of its own frees the window's 4 (block 3 too)
// but keeps the chunked group's last cached block (3): neither way frees
// both groups' most, so the floor is 8 blocks, not 7.
func TestAudit172PrefillFloorCornerLayouts(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    paged.Config
		window int
	}{
		{"sequence window 1, blocks of 1", paged.Config{BlockSize: 1, NumBlocks: 64}, 1},
		{"window 1 + chunked 8", paged.Config{BlockSize: 4, NumBlocks: 200, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}, {Kind: paged.ChunkedLocal, Chunk: 8}}}, 0},
	} {
		var opts *paged.SeqOptions
		if c.window > 0 {
			opts = &paged.SeqOptions{Window: c.window}
		}
		for _, off := range []bool{false, true} {
			cfg := c.cfg
			cfg.DisablePrefixCaching = off
			for _, chunked := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/chunked=%v/caching=%v", c.name, chunked, !off), func(t *testing.T) {
					for n := 1; n <= 20; n++ {
						checkPrefillFloor(t, cfg, opts, n, chunked, nil)
					}
				})
			}
		}
	}
}
