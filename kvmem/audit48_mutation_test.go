package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// Tests that kill the kvmem mutants of the fifth mutation round
// (docs/testing.md, "Mutation testing, fifth round, part A").

// TestAudit48ChunkStartingInsideABlock plans chunked layers whose chunk
// starts inside a block: a chunk of 28 tokens in blocks of 16 starts at
// offsets 0, 12, 8 and 4, and the chunk [28, 55] spans blocks 1 to 3,
// three blocks where a chunk starting on a block boundary spans two. The
// planner takes the worst offset, bs - gcd(C, bs); a planner that took
// every chunk to start on a boundary (M301) answered 2. The expected
// figures are the brute-force peak of the chunk rule with the kept block
// (TestChunkedBlocksSimulated's simulation), and by hand: 3 for 28/16,
// 3 for 56/32 (the chunk [56, 111] spans blocks 1 to 3 of 32).
func TestAudit48ChunkStartingInsideABlock(t *testing.T) {
	for _, tt := range []struct{ chunk, bs int }{{28, 16}, {56, 32}} {
		c, bs := tt.chunk, tt.bs
		s := oneGroup(kvmem.Group{Kind: kvmem.Chunked, Chunk: c})
		chunkStart := func(p int) int {
			if full := p / bs; full > 0 {
				return min(p/c*c, (full-1)*bs)
			}
			return p / c * c
		}
		long := (bs + 1) * c
		got, err := s.SequenceBlocks(long, bs)
		require.NoError(t, err)
		require.Equal(t, int64(3), simulatedPeak(long, bs, chunkStart), "chunk %d, bs %d: the simulation", c, bs)
		assert.Equal(t, int64(3), got, "chunk %d, bs %d", c, bs)
	}
}

// TestAudit48SharedGroupReadingItself gives a shared group that names
// itself: the error names the field and says it must name another group.
// Without the Of == i check (M305) the spec was still refused, by the
// next check ("names a shared group"), which says nothing of the real
// mistake.
func TestAudit48SharedGroupReadingItself(t *testing.T) {
	s := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Shared, Layers: 1, Of: 1}}}
	err := s.Validate()
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	assert.Contains(t, err.Error(), "Spec.Groups[1].Of 1 must name another group")
}

// TestAudit48WeightsRoundUpPerDevice splits 2x+1 bytes of weights over
// TP 2: one device holds x+1 of them (the odd byte is somewhere), so its
// KV budget is the memory less x+1. Rounded down (M306) the budget was
// one byte larger, and a budget of exactly two blocks with the rounding
// down passed where the real one holds one block.
func TestAudit48WeightsRoundUpPerDevice(t *testing.T) {
	spec := kvmem.Spec{Layers: 1, KVHeads: 2, HeadDim: 8, Key: kvmem.FP16}
	block, err := spec.Shard(2)
	require.NoError(t, err)
	bb, err := block.BlockBytes(16)
	require.NoError(t, err)
	const x = 1000
	d := kvmem.Deployment{GPUs: 2, GPUMemory: x + 2*bb, BlockSize: 16}
	kv, err := d.KVBudget(2*x + 1)
	require.NoError(t, err)
	assert.Equal(t, 2*bb-1, kv)
	_, err = kvmem.Plan(spec, 2*x+1, d)
	require.ErrorIs(t, err, kvmem.ErrTooSmall, "2 blocks less a byte hold one block")
	c, err := kvmem.Plan(spec, 2*x, d)
	require.NoError(t, err)
	assert.Equal(t, int64(x), c.WeightBytes)
	assert.Equal(t, int64(2), c.NumBlocks)
}
