package sched_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestSubmitEdgePerLayout: on every kind of KV cache group layout Submit
// accepts the longest request that can run (and it runs alone to its
// end) and refuses, with ErrNever and nothing changed, one output more.
// Blocks of 4 tokens, 20 in the pool (19 usable), a prompt of 8 unless
// said; kv is the prompt and every output but the last.
func TestSubmitEdgePerLayout(t *testing.T) {
	full := paged.Group{Kind: paged.FullAttention}
	for _, tc := range []struct {
		name   string
		groups []paged.Group
		noHits bool // prefix caching off
		cfg    sched.Config
		prompt int
		// edge is the most outputs accepted.
		edge int
	}{
		// A token takes a slot in each group: 2 x 9 blocks of 4 at 36
		// tokens of KV, 2 x 10 at 37.
		{name: "two full", groups: []paged.Group{full, full}, edge: 36 - 8 + 1},
		// Readmitted after its longest hit, a sequence of n tokens holds
		// ceil(n/4) blocks of full attention and the window's 2 (its
		// first needed block is the one before the hit's end): 17 + 2 at
		// 68 tokens, 18 + 2 at 69.
		{name: "full + window", groups: []paged.Group{full, {Kind: paged.SlidingWindow, Window: 4}}, edge: 68 - 8 + 1},
		// The same in chunks: the last token computed alone reads one
		// block of the window at 68 tokens (17 + 1), two at 69 (18 + 2).
		{name: "full + window, chunked prefill", groups: []paged.Group{full, {Kind: paged.SlidingWindow, Window: 4}},
			cfg: sched.Config{ChunkedPrefill: true, MaxBatchTokens: 16}, edge: 68 - 8 + 1},
		// Without prefix caching a prompt in chunks is computed from its
		// first token, and the step computing the 4q-1st token reads two
		// window blocks where the 4q-th reads one: a 64-token prompt
		// peaks at 63 tokens with 16 + 2 of the 18 usable (19 blocks).
		// (A 68-token prompt's last step holds 17 + 1, but its step at
		// 67 tokens 17 + 2: it never fits, and is refused.)
		{name: "full + window, chunked prefill, no caching", groups: []paged.Group{full, {Kind: paged.SlidingWindow, Window: 4}},
			noHits: true, cfg: sched.Config{ChunkedPrefill: true, MaxBatchTokens: 16}, prompt: 64, edge: 1},
		// A chunk of 8 after the longest hit: the chunk's blocks from
		// the hit's chunk start, 1 or 2 beside the full attention's: at
		// most 18 up to 68 tokens, 18 + 2 at 69. Alone, a decode at 68
		// tokens keeps the chunk's last cached block besides: 17 + 2.
		{name: "full + chunked", groups: []paged.Group{full, {Kind: paged.ChunkedLocal, Chunk: 8}}, edge: 68 - 8 + 1},
		// Three state pages beside the full attention blocks: 16 + 3 at
		// 64 tokens, 17 + 3 at 65.
		{name: "full + state", groups: []paged.Group{full, {Kind: paged.State, Pages: 3}}, edge: 64 - 8 + 1},
		// A shared group holds nothing: 19 blocks, 76 tokens.
		{name: "full + shared", groups: []paged.Group{full, {Kind: paged.Shared}}, edge: 76 - 8 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.prompt
			if p == 0 {
				p = 8
			}
			blocks := 20
			if tc.noHits {
				blocks = 19
			}
			m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: blocks, MaxModelLen: 256, Groups: tc.groups, DisablePrefixCaching: tc.noHits})
			s, err := sched.New(m, tc.cfg)
			require.NoError(t, err)
			prompt := make([]int32, p)
			for i := range prompt {
				prompt[i] = int32(i + 1)
			}
			r, err := s.Submit(prompt, sched.Options{MaxTokens: tc.edge + 1})
			require.ErrorIs(t, err, sched.ErrNever, "one output past the edge")
			assert.Nil(t, r)
			assert.False(t, s.Busy())
			assert.Zero(t, m.Stats().Sequences, "nothing added")
			if tc.noHits {
				// The longer prompt whose last step fits, its 67th
				// token's not.
				_, err := s.Submit(make([]int32, 68), sched.Options{MaxTokens: 1})
				require.ErrorIs(t, err, sched.ErrNever)
				assert.Contains(t, err.Error(), "admitted at 67 tokens")
			}
			r, err = s.Submit(prompt, sched.Options{MaxTokens: tc.edge})
			require.NoError(t, err, "at the edge")
			drain(t, s, 5)
			assert.Equal(t, sched.Finished, r.State(), fmt.Sprint(r.Err()))
			assert.Equal(t, tc.edge, r.Outputs(0))
		})
	}
}
