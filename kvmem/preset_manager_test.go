package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// TestHybridPresetsMatchManager grows one sequence of each hybrid preset a
// token at a time in a paged.Manager with the preset's groups (one table
// per slice of LayersPerBlock layers) to 256K tokens, and checks at the
// boundaries of every group (1, bs-1, bs, bs+1, W-1, W, W+1, W+bs, C-1, C,
// C+1, 2C, 128K, 256K) that the most blocks it has held is the planner's
// SequenceBlocks, and that SequenceBytes is the formula, full
// layers x T + window layers x min(T, W) + chunked layers x min(T, C) +
// state bytes, plus less than the slack of the blocks allocated around it.
func TestHybridPresetsMatchManager(t *testing.T) {
	if testing.Short() {
		t.Skip("grows 256K-token sequences")
	}
	const bs = 16
	for _, name := range []string{"gpt-oss-120b", "gpt-oss-20b", "Gemma-3-27B", "Llama-4-Scout", "Qwen3-Next-80B-A3B"} {
		m, err := kvmem.LookupModel(name)
		require.NoError(t, err)
		s := m.Spec(kvmem.BF16, kvmem.Type{})
		layer, err := s.LayerBytes()
		require.NoError(t, err)
		growAndCheckPeaks(t, name, s, bs, 256<<10, false, func(T int) {
			// The formula, in bytes, per layer kind.
			var exact, slack int64
			for _, g := range s.Groups {
				n := int64(g.Layers)
				switch g.Kind {
				case kvmem.Full:
					exact += n * int64(T) * layer
					slack += n * (bs - 1) * layer
				case kvmem.Window:
					exact += n * int64(min(T, g.Window)) * layer
					slack += n * (2*bs - 1) * layer // partial blocks at both ends
				case kvmem.Chunked:
					exact += n * int64(min(T, g.Chunk)) * layer
					slack += n * (bs - 1) * layer
				case kvmem.State:
					exact += n * g.StateBytes
					slack += n * (bs*layer - 1)
				}
			}
			got, err := s.SequenceBytes(T, bs)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, got, exact, "%s at %d tokens", name, T)
			assert.Less(t, got-exact, slack+1, "%s at %d tokens", name, T)
		})
	}
}

// growAndCheckPeaks grows one sequence of spec s a token at a time to maxT
// tokens in a paged.Manager with its groups (pagedGroups), and checks at
// the boundaries of every group (1, bs-1, bs, bs+1, W-1, W, W+1, W+bs, 2W
// around every window or chunk W, 128K and 256K when reached, and maxT)
// that the most blocks it has held is the planner's SequenceBlocks, but
// for a chunked group's conservative excess just past a chunk: the
// planner adds each group's own peak, a chunked group peaks at the end of
// a chunk while the full groups keep growing, so just past a chunk the sum
// exceeds the joint peak by the full blocks grown since. also, when not
// nil, runs at each checked length.
func growAndCheckPeaks(t *testing.T, name string, s kvmem.Spec, bs, maxT int, caching bool, also func(T int)) {
	t.Helper()
	p, err := s.LayersPerBlock()
	require.NoError(t, err)
	checks := map[int]bool{1: true, bs - 1: true, bs: true, bs + 1: true, 128 << 10: true, 256 << 10: true, maxT: true}
	for _, g := range s.Groups {
		for _, span := range []int{g.Window, g.Chunk} {
			if span > 0 {
				for _, d := range []int{-1, 0, 1, bs, span} {
					checks[span+d] = true
				}
			}
		}
	}
	mgr, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 1 << 17, Groups: pagedGroups(t, s, bs), DisablePrefixCaching: !caching})
	require.NoError(t, err, name)
	id, _, err := mgr.Create([]int32{0}, nil)
	require.NoError(t, err)
	peak := mgr.Stats().UsedBlocks
	for T := 1; T <= maxT; T++ {
		if T > 1 {
			require.NoError(t, mgr.Append(id, int32(T)))
			peak = max(peak, mgr.Stats().UsedBlocks)
		}
		if !checks[T] {
			continue
		}
		want, err := s.SequenceBlocks(T, bs)
		require.NoError(t, err)
		over := int64(0)
		for _, g := range s.Groups {
			if g.Kind == kvmem.Chunked && T > g.Chunk && T%g.Chunk != 0 {
				over = int64(fullSlices(s, p)) * int64((T-1)/bs-(T/g.Chunk*g.Chunk-1)/bs)
			}
		}
		assert.LessOrEqual(t, int64(peak), want, "%s at %d tokens (caching %v)", name, T, caching)
		assert.LessOrEqual(t, want-int64(peak), over, "%s at %d tokens (caching %v)", name, T, caching)
		if also != nil {
			also(T)
		}
	}
	require.NoError(t, mgr.Check())
}

// fullSlices returns the tables of s's Full groups.
func fullSlices(s kvmem.Spec, p int) int {
	n := 0
	for _, g := range s.Groups {
		if g.Kind == kvmem.Full {
			n += g.Layers / p
		}
	}
	return n
}

// multiKindSpecs are layouts of several kinds (small heads, so that pages
// are small): the planner (kvmem) describes them and a Manager takes them.
var multiKindSpecs = []struct {
	name string
	spec kvmem.Spec
}{
	// Hymba: state heads in every layer, sliding-window layers and a few
	// full-attention ones.
	{"hymba-like", kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Window, Layers: 2, Window: 100}, {Kind: kvmem.State, Layers: 3, StateBytes: 5000}}}},
	// Phi-4-mini-flash (SambaY): state layers, sliding-window layers, one
	// full-attention layer whose KV later layers read.
	{"sambay-like", kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.State, Layers: 2, StateBytes: 3000}, {Kind: kvmem.Window, Layers: 2, Window: 64}, {Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Shared, Layers: 2, Of: 2}}}},
	// Phi-4-mini-flash-reasoning's own layout, from its config.json and
	// modeling_phi4flash.py (SambaYCache; a copy in the public repository
	// franciskamande-ai/cloned_models): 32 layers, of which layers 0-17
	// keep caches: the full-attention layer 17 (num_key_value_heads 20,
	// head dim hidden 2560 / 40 heads = 64), the odd layers 1-15 with a
	// 512-token sliding window, and the even layers 0-16 Mamba (d_inner
	// 2 x 2560, d_state 16, d_conv 4: a state of 5,120 x (16 + 3) values in
	// BF16, counting the convolution state as kvmem does, kernel - 1 wide);
	// the 7 odd layers 19-31 read layer 17's KV, and the even ones (gated
	// memory units) keep none.
	{"phi-4-mini-flash", kvmem.Spec{KVHeads: 20, HeadDim: 64, Key: kvmem.BF16, Groups: []kvmem.Group{
		{Kind: kvmem.State, Layers: 9, StateBytes: 5120 * (16 + 3) * 2}, {Kind: kvmem.Window, Layers: 8, Window: 512},
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Shared, Layers: 7, Of: 2}}}},
	{"two windows", kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Window, Layers: 2, Window: 128}, {Kind: kvmem.Window, Layers: 1, Window: 40}}}},
	{"chunk, window and state", kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Chunked, Layers: 1, Chunk: 200}, {Kind: kvmem.Window, Layers: 1, Window: 48}, {Kind: kvmem.State, Layers: 1, StateBytes: 1000}}}},
}

// TestMultiKindPlannerMatchesManager checks the planner against a Manager
// (growAndCheckPeaks) on layouts of several kinds, with prefix caching on
// and off.
func TestMultiKindPlannerMatchesManager(t *testing.T) {
	for _, tc := range multiKindSpecs {
		for _, caching := range []bool{false, true} {
			growAndCheckPeaks(t, tc.name, tc.spec, 16, 4096, caching, nil)
		}
	}
}
