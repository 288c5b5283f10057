package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

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

// plannerGroups returns a Manager's groups for spec s at block size bs:
// one group per slice of LayersPerBlock layers, full attention first (a
// Manager's group 0 is), a Shared group reading the first slice of the
// group its layers read.
func plannerGroups(t *testing.T, s kvmem.Spec, bs int) []paged.Group {
	t.Helper()
	p, err := s.LayersPerBlock()
	require.NoError(t, err)
	var out []paged.Group
	first := make([]int, len(s.Groups)) // each spec group's first slice
	for _, full := range []bool{true, false} {
		for i, g := range s.Groups {
			if (g.Kind == kvmem.Full) != full || g.Kind == kvmem.Shared {
				continue
			}
			pg := paged.Group{Kind: paged.FullAttention}
			switch g.Kind {
			case kvmem.Window:
				pg = paged.Group{Kind: paged.SlidingWindow, Window: g.Window}
			case kvmem.Chunked:
				pg = paged.Group{Kind: paged.ChunkedLocal, Chunk: g.Chunk}
			case kvmem.State:
				n, err := s.StateBlocks(g, bs)
				require.NoError(t, err)
				pg = paged.Group{Kind: paged.State, Pages: int(n)}
			}
			first[i] = len(out)
			for range g.Layers / p {
				out = append(out, pg)
			}
		}
	}
	for _, g := range s.Groups {
		if g.Kind == kvmem.Shared {
			for range g.Layers / p {
				out = append(out, paged.Group{Kind: paged.Shared, Target: first[g.Of]})
			}
		}
	}
	return out
}

// TestMultiKindPlannerMatchesManager grows one sequence of each layout of
// several kinds a token at a time in a Manager with its groups, and checks
// at the boundaries of every group (1, bs-1, bs, bs+1, and W-1, W, W+1,
// W+bs, 2W around every window or chunk) that the most blocks it has held
// is the planner's SequenceBlocks, but for a chunked group's conservative
// excess just past a chunk, as TestHybridPresetsMatchManager (kvmem) does
// for the presets of one kind besides full attention.
func TestMultiKindPlannerMatchesManager(t *testing.T) {
	const bs = 16
	for _, tc := range multiKindSpecs {
		s := tc.spec
		p, err := s.LayersPerBlock()
		require.NoError(t, err)
		checks := map[int]bool{1: true, bs - 1: true, bs: true, bs + 1: true, 4096: true}
		for _, g := range s.Groups {
			for _, span := range []int{g.Window, g.Chunk} {
				if span > 0 {
					for _, d := range []int{-1, 0, 1, bs, span} {
						checks[span+d] = true
					}
				}
			}
		}
		for _, caching := range []bool{false, true} {
			m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 4096, Groups: plannerGroups(t, s, bs), DisablePrefixCaching: !caching})
			require.NoError(t, err, tc.name)
			id, _, err := m.Create([]int32{0}, nil)
			require.NoError(t, err)
			peak := m.Stats().UsedBlocks
			for T := 1; T <= 4096; T++ {
				if T > 1 {
					require.NoError(t, m.Append(id, int32(T)))
					peak = max(peak, m.Stats().UsedBlocks)
				}
				if !checks[T] {
					continue
				}
				want, err := s.SequenceBlocks(T, bs)
				require.NoError(t, err)
				over := int64(0)
				for _, g := range s.Groups {
					if g.Kind == kvmem.Chunked && T > g.Chunk && T%g.Chunk != 0 {
						// The planner adds each group's own peak; a chunk
						// peaks at its end while full groups keep growing.
						full := 0
						for _, f := range s.Groups {
							if f.Kind == kvmem.Full {
								full += f.Layers / p
							}
						}
						over = int64(full) * int64((T-1)/bs-(T/g.Chunk*g.Chunk-1)/bs)
					}
				}
				assert.LessOrEqual(t, int64(peak), want, "%s at %d tokens (caching %v)", tc.name, T, caching)
				assert.LessOrEqual(t, want-int64(peak), over, "%s at %d tokens (caching %v)", tc.name, T, caching)
			}
			require.NoError(t, m.Check())
		}
	}
}
