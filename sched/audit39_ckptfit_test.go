package sched_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit39CheckpointHitFitsExactlyServed: paged's
// TestAudit39CheckpointHitFitsExactly through the scheduler. A 24-token
// prompt that takes every usable block of the pool computed from scratch
// (blocks of 4: 6 blocks and a State group's 2 pages, and 6 window blocks
// on the window layout) shares its first 8 tokens with earlier requests
// that branched there, so a state checkpoint is cached at 8 tokens: with
// the hit it needs the checkpoint's 2 pages more. Submit accepts it; it
// is served, whole or in chunks, never aborted: computed from scratch
// (the hit dropped: Stats.CheckpointHitsDropped) whole or in chunks whose
// prefill does not fit with the hit, with the hit in chunks that do
// (audit40).
// docs/hybrid.md's Limits said a scheduler aborted it (ErrNoSpace in an
// empty pool) until d8cbb9c (the miss fallback, after the Limits bullet
// was written in d30aba0; reverted and restored in e6d8021).
func TestAudit39CheckpointHitFitsExactlyServed(t *testing.T) {
	layouts := []struct {
		name   string
		groups []paged.Group
		blocks int
	}{
		{"state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}, 9},
		{"window+state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 2}}, 15},
	}
	with := func(tail int32, n int) []int32 {
		p := make([]int32, 0, 8+n)
		for i := range 8 {
			p = append(p, int32(i+1))
		}
		for i := range n {
			p = append(p, tail+int32(i))
		}
		return p
	}
	for _, l := range layouts {
		// 0: whole; else chunks of that many tokens.
		for _, chunk := range []int{0, 4, 8, 12} {
			t.Run(fmt.Sprintf("%s/chunk=%d", l.name, chunk), func(t *testing.T) {
				m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: l.blocks, Groups: l.groups})
				cfg := sched.Config{MaxBatchTokens: 32}
				if chunk > 0 {
					cfg = sched.Config{MaxBatchTokens: chunk, ChunkedPrefill: true}
				}
				aborted := 0
				cfg.Hooks.Aborted = func(*sched.Request, error) { aborted++ }
				s, err := sched.New(m, cfg)
				require.NoError(t, err)
				// Two requests branching after 8 tokens, then one that
				// hits the checkpoint there (it fits with it).
				for i, tail := range []int32{100, 200, 300} {
					r, err := s.Submit(with(tail, 5), sched.Options{MaxTokens: 1})
					require.NoError(t, err)
					drain(t, s, 7)
					require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
					if i == 2 {
						require.Equal(t, 8, r.Cached(), "the checkpoint hit")
					}
				}
				require.Zero(t, m.Stats().CheckpointHitsDropped)
				r, err := s.Submit(with(400, 16), sched.Options{MaxTokens: 1})
				require.NoError(t, err, "a prompt that fits the empty pool")
				drain(t, s, 7)
				assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
				assert.NoError(t, r.Err())
				assert.Zero(t, aborted)
				// In chunks whose prefill fits with the hit, the hit is
				// kept (paged's TestAudit40ChunkHitKept): on the window
				// layout in chunks of 4 to 12, on the other in chunks of
				// 4 and 8 (12 hold 9 blocks of 8 at the first chunk).
				if chunk > 0 && (chunk < 12 || l.name == "window+state") {
					assert.Equal(t, 8, r.Cached(), "the checkpoint hit, kept in chunks")
					assert.Zero(t, m.Stats().CheckpointHitsDropped)
				} else {
					assert.Zero(t, r.Cached(), "computed from scratch")
					assert.Positive(t, m.Stats().CheckpointHitsDropped)
				}
				require.NoError(t, m.Check())
			})
		}
	}
}
