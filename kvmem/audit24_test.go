package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestAudit24TPTimesCPOverflow: TP and CP are each at most GPUs (2^20),
// so TP x CP reaches 2^40, which wraps to 0 where int has 32 bits (386,
// arm): GPUs % (TP x CP) then panicked with a division by zero instead of
// refusing the deployment.
func TestAudit24TPTimesCPOverflow(t *testing.T) {
	s := kvmem.Spec{Layers: 1, KVHeads: 1, HeadDim: 8, Key: kvmem.FP16}
	for _, d := range []kvmem.Deployment{
		{GPUs: 1 << 16, TP: 1 << 16, CP: 1 << 16, GPUMemory: 1 << 40},
		{GPUs: 1 << 20, TP: 1 << 20, CP: 1 << 12, GPUMemory: 1 << 40},
		{GPUs: 3 << 16, TP: 1 << 16, CP: 3 << 15, GPUMemory: 1 << 40},
	} {
		require.NotPanics(t, func() {
			_, err := kvmem.Plan(s, 0, d)
			require.ErrorIs(t, err, kvmem.ErrInvalid, "%+v", d)
			assert.Contains(t, err.Error(), "not a multiple of TP")
			_, err = d.KVBudget(0)
			require.ErrorIs(t, err, kvmem.ErrInvalid, "%+v", d)
		})
	}
	// What divides still plans.
	c, err := kvmem.Plan(s, 0, kvmem.Deployment{GPUs: 12, TP: 2, CP: 3, GPUMemory: 1 << 30})
	require.NoError(t, err)
	assert.Equal(t, 2, c.Replicas)
	_, err = kvmem.Plan(s, 0, kvmem.Deployment{GPUs: 12, TP: 4, CP: 2, GPUMemory: 1 << 30})
	require.ErrorIs(t, err, kvmem.ErrInvalid, "4 x 2 does not divide 12, though 4 and 2 each do")
}

// TestAudit24MaxContextPast32Bits: a pool can hold more than 2^31 tokens
// (2^25 blocks of 1,024 here). MaxContext searched with int(l), which
// wraps where int has 32 bits, so it found a short context that fits at
// its upper bound and answered Unbounded for a full-attention model: it
// claimed any length fits.
func TestAudit24MaxContextPast32Bits(t *testing.T) {
	const bs = 1024
	full := kvmem.Spec{Layers: 1, KVHeads: 1, HeadDim: 8, Key: kvmem.FP16}
	c, err := kvmem.Plan(full, 0, kvmem.Deployment{GPUMemory: 1 << 40, BlockSize: bs})
	require.NoError(t, err)
	require.Equal(t, int64(1<<25), c.NumBlocks)
	want := c.UsableBlocks() * bs
	assert.Equal(t, want, c.MaxContext(1))
	assert.Equal(t, want, c.Tokens())
	assert.Equal(t, want/3/bs*bs, c.MaxContext(3))

	// A window beside the full layers, over 4 CP ranks: each rank holds
	// ceil(L/4) tokens in its full group and 2 blocks of the 64-token
	// window.
	hybrid := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Window, Layers: 1, Window: 64}}}
	c, err = kvmem.Plan(hybrid, 0, kvmem.Deployment{GPUs: 4, TP: 1, CP: 4, GPUMemory: 1 << 40, BlockSize: bs, NoHybridPins: true})
	require.NoError(t, err)
	assert.Equal(t, 4*(c.UsableBlocks()-2)*bs, c.MaxContext(1))
	assert.Less(t, c.Tokens(), kvmem.Unbounded)
}

// TestAudit24HandBuiltCapacity: Capacity's fields are exported, and its
// methods divided by zero (a panic) on one built by hand or edited to a
// zero Deployment, Shard or Replicas, and MaxContext answered Unbounded
// for a zero block size. They now answer 0, as for a plan with no room.
func TestAudit24HandBuiltCapacity(t *testing.T) {
	s := kvmem.Spec{Layers: 2, KVHeads: 1, HeadDim: 8, Key: kvmem.FP16}
	c, err := kvmem.Plan(s, 0, kvmem.Deployment{GPUMemory: 1 << 30})
	require.NoError(t, err)
	require.Positive(t, c.MaxSequences(100))
	bad := map[string]kvmem.Capacity{"zero with blocks": {NumBlocks: 10, BlockBytes: 64}}
	edit := func(name string, f func(*kvmem.Capacity)) {
		e := c
		f(&e)
		bad[name] = e
	}
	edit("no replicas", func(e *kvmem.Capacity) { e.Replicas = 0 })
	edit("no CP", func(e *kvmem.Capacity) { e.Deployment.CP = 0 })
	edit("no block size", func(e *kvmem.Capacity) { e.Deployment.BlockSize = 0 })
	edit("negative block size", func(e *kvmem.Capacity) { e.Deployment.BlockSize = -16 })
	edit("no shard", func(e *kvmem.Capacity) { e.Shard = kvmem.Spec{} })
	edit("no block bytes", func(e *kvmem.Capacity) { e.BlockBytes = 0 })
	// Past Deployment's bounds, which Plan never returns (M1425, M1426:
	// the thirty-first mutation round, docs/testing.md).
	edit("prefill chunk past 2^30", func(e *kvmem.Capacity) { e.Deployment.PrefillChunk = 1<<30 + 1 })
	edit("spec tokens past 2^20", func(e *kvmem.Capacity) { e.Deployment.SpecTokens = 1<<20 + 1 })
	for name, b := range bad {
		require.NotPanics(t, func() {
			assert.Zero(t, b.MaxSequences(100), name)
			assert.Zero(t, b.MaxContext(3), name)
			assert.Zero(t, b.SequenceBytes(100), name)
			assert.Zero(t, b.Tokens(), name)
		}, name)
	}
}

// TestAudit24StateBlocksBadGroup: StateBlocks takes any group, not only
// one of the spec's, and returned a negative count (no error) for a
// negative StateBytes.
func TestAudit24StateBlocksBadGroup(t *testing.T) {
	s := kvmem.Spec{Layers: 2, KVHeads: 1, HeadDim: 8, Key: kvmem.FP16}
	for _, b := range []int64{-100000, -1, 0, 1<<40 + 1} {
		n, err := s.StateBlocks(kvmem.Group{Kind: kvmem.State, Layers: 1, StateBytes: b}, 16)
		require.ErrorIs(t, err, kvmem.ErrInvalid, "%d bytes gave %d blocks", b, n)
		assert.Contains(t, err.Error(), "StateBytes")
		assert.Zero(t, n)
	}
	n, err := s.StateBlocks(kvmem.Group{Kind: kvmem.State, Layers: 1, StateBytes: 16 * 32}, 16)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "one layer's slot of 16 tokens x 32 bytes")
	n, err = s.StateBlocks(kvmem.Group{Kind: kvmem.Full, Layers: 1}, 16)
	require.NoError(t, err)
	assert.Zero(t, n)
}
