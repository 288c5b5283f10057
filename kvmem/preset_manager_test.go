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
		p, err := s.LayersPerBlock()
		require.NoError(t, err)
		checks := map[int]bool{1: true, bs - 1: true, bs: true, bs + 1: true, 128 << 10: true, 256 << 10: true}
		for _, g := range s.Groups {
			for _, span := range []int{g.Window, g.Chunk} {
				if span > 0 {
					for _, d := range []int{-1, 0, 1, bs, span} {
						checks[span+d] = true
					}
				}
			}
		}
		mgr, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 1 << 17, Groups: pagedGroups(t, s, bs), DisablePrefixCaching: true})
		require.NoError(t, err)
		id, _, err := mgr.Create([]int32{0}, nil)
		require.NoError(t, err)
		peak := mgr.Stats().UsedBlocks
		for T := 1; T <= 256<<10; T++ {
			if T > 1 {
				require.NoError(t, mgr.Append(id, int32(T)))
				peak = max(peak, mgr.Stats().UsedBlocks)
			}
			if !checks[T] {
				continue
			}
			want, err := s.SequenceBlocks(T, bs)
			require.NoError(t, err)
			// The planner adds each group's own peak. A chunked group
			// peaks at the end of a chunk, while the full groups keep
			// growing, so just past a chunk the sum exceeds the joint
			// peak by the full blocks grown since (conservative).
			over := int64(0)
			for _, g := range s.Groups {
				if g.Kind == kvmem.Chunked && T > g.Chunk && T%g.Chunk != 0 {
					over = int64(fullSlices(s, p)) * int64((T-1)/bs-(T/g.Chunk*g.Chunk-1)/bs)
				}
			}
			assert.LessOrEqual(t, int64(peak), want, "%s at %d tokens", name, T)
			assert.LessOrEqual(t, want-int64(peak), over, "%s at %d tokens", name, T)

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
		}
		require.NoError(t, mgr.Check())
	}
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
