package kvmem_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

func mustModel(t *testing.T, name string) kvmem.Model {
	t.Helper()
	m, err := kvmem.LookupModel(name)
	require.NoError(t, err)
	return m
}

// TestPlanKimiK2 works the default kvbench plan by hand: Kimi K2 with FP8
// weights on 8 x 141 GB, 5% reserved, BF16 KV replicated on every TP rank.
func TestPlanKimiK2(t *testing.T) {
	m := mustModel(t, "kimi-k2")
	w, err := m.WeightBytes(kvmem.FP8E4M3)
	require.NoError(t, err)
	require.Equal(t, m.Params, w)
	d := kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: 0.05}
	c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w, d)
	require.NoError(t, err)

	assert.Equal(t, 8, c.Deployment.TP)
	assert.Equal(t, 1, c.Deployment.CP)
	assert.Equal(t, 16, c.Deployment.BlockSize)
	assert.Equal(t, 1, c.Replicas)
	assert.Equal(t, m.Params/8, c.WeightBytes) // 1,026,408,232,448 divides by 8
	assert.Equal(t, int64(7_050_000_000), c.ReserveBytes)
	assert.Equal(t, int64(141e9)-m.Params/8-7_050_000_000, c.KVBytes)
	assert.Equal(t, int64(70_272), c.TokenBytes, "MLA latent is not split by TP")
	assert.Equal(t, int64(70_272*16), c.BlockBytes)
	assert.Equal(t, c.KVBytes/(70_272*16), c.NumBlocks)
	assert.Equal(t, int64(5024), c.NumBlocks)
	assert.Equal(t, (c.NumBlocks-1)*16, c.Tokens())
	assert.Equal(t, int64(0), c.MaxSequences(262_144), "not one 256K sequence fits at BF16")
	assert.Equal(t, c.Tokens(), c.MaxContext(1))

	n, err := c.PoolBlocks()
	require.NoError(t, err)
	assert.Equal(t, 5024, n)

	// Spec.PoolBlocks sizes the same pool from the same budget.
	n2, err := c.Shard.PoolBlocks(c.KVBytes, 16)
	require.NoError(t, err)
	assert.Equal(t, n, n2)
}

// TestPlanGQA checks head splitting under TP: Llama-3.1-70B on 8 x 80 GB,
// BF16 weights and KV, one KV head per device.
func TestPlanGQA(t *testing.T) {
	m := mustModel(t, "llama-3.1-70b")
	w, err := m.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w,
		kvmem.Deployment{GPUs: 8, GPUMemory: 80e9, ReserveBytes: 4 << 30})
	require.NoError(t, err)
	assert.Equal(t, 1, c.Shard.KVHeads)
	assert.Equal(t, int64(327_680/8), c.TokenBytes)
	perDevWeights := (2*m.Params + 7) / 8
	assert.Equal(t, perDevWeights, c.WeightBytes)
	assert.Equal(t, int64(80e9)-perDevWeights-(4<<30), c.KVBytes)
	assert.Equal(t, c.KVBytes/(40_960*16), c.NumBlocks)
	// 8K contexts: 512 blocks each.
	assert.Equal(t, (c.NumBlocks-1)/512, c.MaxSequences(8192))
	assert.Equal(t, (c.NumBlocks-1)/513, c.MaxSequences(8193))

	// TP 16 on 16 GPUs: 8 KV heads cannot split 16 ways, so each is held
	// twice and per-device KV per token stays at one head.
	c16, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w,
		kvmem.Deployment{GPUs: 16, GPUMemory: 80e9})
	require.NoError(t, err)
	assert.Equal(t, 16, c16.Deployment.TP)
	assert.Equal(t, 1, c16.Shard.KVHeads)
	assert.Equal(t, c.TokenBytes, c16.TokenBytes)
}

// TestPlanContextParallel checks that CP spreads one sequence over its
// ranks: the longest single context doubles from CP 1 to CP 2 on the same
// 16 devices, while total tokens stay the same.
func TestPlanContextParallel(t *testing.T) {
	m := mustModel(t, "kimi-k2")
	w, err := m.WeightBytes(kvmem.FP8E4M3)
	require.NoError(t, err)
	spec := m.Spec(kvmem.FP8E4M3, kvmem.Type{})
	dp, err := kvmem.Plan(spec, w, kvmem.Deployment{GPUs: 16, GPUMemory: 141e9, TP: 8, Reserve: 0.05})
	require.NoError(t, err)
	cp, err := kvmem.Plan(spec, w, kvmem.Deployment{GPUs: 16, GPUMemory: 141e9, CP: 2, Reserve: 0.05})
	require.NoError(t, err)
	assert.Equal(t, 2, dp.Replicas)
	assert.Equal(t, 1, cp.Replicas)
	assert.Equal(t, 8, cp.Deployment.TP)
	assert.Equal(t, dp.NumBlocks, cp.NumBlocks)
	assert.Equal(t, dp.Tokens(), cp.Tokens())
	assert.Equal(t, 2*dp.MaxContext(1), cp.MaxContext(1))
	// Two sequences: one per replica without CP, sharing one replica with it.
	assert.Equal(t, dp.MaxContext(1), dp.MaxContext(2))
	assert.Equal(t, dp.UsableBlocks()/2*2*16, cp.MaxContext(2))
	// 262,144 tokens: each CP rank holds 131,072 = 8,192 blocks.
	assert.Equal(t, cp.UsableBlocks()/8192, cp.MaxSequences(262_144))
	assert.Equal(t, 2*(dp.UsableBlocks()/16384), dp.MaxSequences(262_144))
	// An odd length leaves each rank ceil(L/2) tokens.
	assert.Equal(t, cp.UsableBlocks()/2, cp.MaxSequences(33))
}

// TestPlanInverse checks that MaxSequences and MaxContext agree: n
// sequences of MaxContext(n) tokens fit, and MaxSequences(L) sequences each
// get at least L tokens.
func TestPlanInverse(t *testing.T) {
	m := mustModel(t, "llama-3.1-8b")
	w, err := m.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	for _, d := range []kvmem.Deployment{
		{GPUs: 1, GPUMemory: 24e9, BlockSize: 16},
		{GPUs: 4, GPUMemory: 24e9, TP: 1, BlockSize: 32},
		{GPUs: 8, GPUMemory: 24e9, TP: 2, CP: 2, BlockSize: 1},
	} {
		c, err := kvmem.Plan(m.Spec(kvmem.FP8E4M3, kvmem.Type{}), w, d)
		require.NoError(t, err)
		for _, n := range []int{1, 2, 3, 7, 100, 1000} {
			l := c.MaxContext(n)
			require.Positive(t, l)
			assert.GreaterOrEqual(t, c.MaxSequences(int(l)), int64(n), "n %d", n)
			assert.Less(t, c.MaxSequences(int(l)+c.Deployment.BlockSize*c.Deployment.CP), int64(n), "n %d", n)
		}
		for _, l := range []int{1, 15, 16, 17, 4096, 100_000} {
			n := c.MaxSequences(l)
			if n > 0 {
				assert.GreaterOrEqual(t, c.MaxContext(int(n)), int64(l), "l %d", l)
			}
		}
		assert.Zero(t, c.MaxSequences(math.MaxInt))
		assert.Zero(t, c.MaxSequences(0))
		assert.Zero(t, c.MaxContext(math.MaxInt))
		assert.Zero(t, c.MaxContext(0))
		assert.Zero(t, c.MaxContext(-1))
	}
}

func TestPlanErrors(t *testing.T) {
	k2 := mustModel(t, "kimi-k2")
	w16, err := k2.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	spec := k2.Spec(kvmem.BF16, kvmem.Type{})
	ok := kvmem.Deployment{GPUs: 8, GPUMemory: 141e9}

	// BF16 weights of a 1T model do not fit on 8 x 141 GB.
	_, err = kvmem.Plan(spec, w16, ok)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "GPUMemory")

	w8, _ := k2.WeightBytes(kvmem.FP8E4M3)
	_, err = kvmem.Plan(spec, w8, kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: 0.2})
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "Reserve")

	// Weights fit, reserve fits, but less than two blocks remain.
	blk := int64(70_272 * 16)
	_, err = kvmem.Plan(spec, 8*(141e9-blk), ok)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "holds 1 blocks")

	bad := []struct {
		name  string
		spec  kvmem.Spec
		d     kvmem.Deployment
		field string
	}{
		{"zero layers", kvmem.Spec{KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}, ok, "Layers"},
		{"head dim vs group", kvmem.Spec{Layers: 2, KVHeads: 8, HeadDim: 100, Key: kvmem.INT4(64)}, ok, "HeadDim"},
		{"no memory", spec, kvmem.Deployment{GPUs: 8}, "GPUMemory"},
		{"negative memory", spec, kvmem.Deployment{GPUs: 8, GPUMemory: -1}, "GPUMemory"},
		{"negative gpus", spec, kvmem.Deployment{GPUs: -8, GPUMemory: 141e9}, "GPUs"},
		{"gpus vs tp", spec, kvmem.Deployment{GPUs: 8, TP: 3, GPUMemory: 141e9}, "GPUs"},
		{"gpus vs cp", spec, kvmem.Deployment{GPUs: 8, TP: 8, CP: 2, GPUMemory: 141e9}, "GPUs"},
		{"negative tp", spec, kvmem.Deployment{GPUs: 8, TP: -1, GPUMemory: 141e9}, "TP"},
		{"negative cp", spec, kvmem.Deployment{GPUs: 8, CP: -1, GPUMemory: 141e9}, "CP"},
		{"reserve one", spec, kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: 1}, "Reserve"},
		{"reserve NaN", spec, kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: nan()}, "Reserve"},
		{"negative reserve bytes", spec, kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, ReserveBytes: -1}, "ReserveBytes"},
		{"block size", spec, kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, BlockSize: -16}, "BlockSize"},
		{"tp vs kv heads", kvmem.Spec{Layers: 2, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16},
			kvmem.Deployment{GPUs: 6, GPUMemory: 141e9}, "KVHeads"},
	}
	for _, tt := range bad {
		_, err := kvmem.Plan(tt.spec, w8, tt.d)
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
		assert.Contains(t, err.Error(), tt.field, tt.name)
	}
	_, err = kvmem.Plan(spec, -1, ok)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = kvmem.Plan(spec, w8, kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, ReserveBytes: 1<<63 - 1})
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "Reserve")

	// KVBudget answers the same questions without a KV spec.
	kv, err := ok.KVBudget(w8)
	require.NoError(t, err)
	assert.Equal(t, int64(141e9)-w8/8, kv)
	_, err = ok.KVBudget(w16)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "GPUMemory")
	_, err = kvmem.Deployment{}.KVBudget(w8)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = ok.KVBudget(-1)
	require.ErrorIs(t, err, kvmem.ErrInvalid)

	// A zero Capacity answers zero, not a negative count.
	var zero kvmem.Capacity
	assert.Zero(t, zero.MaxSequences(100))
	assert.Zero(t, zero.MaxContext(1))
	_, err = zero.PoolBlocks()
	require.ErrorIs(t, err, kvmem.ErrInvalid)
}

func nan() float64 {
	var z float64
	return z / z
}

// TestPlanHugePool checks that a pool too large for a Manager is reported
// by Config rather than truncated.
func TestPlanHugePool(t *testing.T) {
	spec := kvmem.Spec{Layers: 1, KVHeads: 1, HeadDim: 16, Key: kvmem.FP8E4M3}
	c, err := kvmem.Plan(spec, 0, kvmem.Deployment{GPUMemory: 1 << 40, BlockSize: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(1<<40/32), c.NumBlocks)
	_, err = c.PoolBlocks()
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	assert.Contains(t, err.Error(), "NumBlocks")
}

// TestPlanManagerRoundTrip builds a Manager from a plan and fills it with
// distinct prompts of the planned context length: it must have the
// planner's blocks and admit exactly the planned number of sequences, then
// refuse the next with ErrNoSpace. With CP, one rank's manager holds
// ceil(L/CP) tokens of each sequence.
func TestPlanManagerRoundTrip(t *testing.T) {
	m := mustModel(t, "llama-3.1-8b")
	w, err := m.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	tests := []struct {
		kv      kvmem.Type
		d       kvmem.Deployment
		context int
	}{
		{kvmem.FP8E4M3, kvmem.Deployment{GPUMemory: 24e9, Reserve: 0.1}, 1000},
		{kvmem.BF16, kvmem.Deployment{GPUMemory: 20e9, Reserve: 0.02, BlockSize: 32}, 4096},
		{kvmem.Q4_0, kvmem.Deployment{GPUMemory: 16.5e9, ReserveBytes: 64 << 20, BlockSize: 16}, 777},
		{kvmem.INT4(64), kvmem.Deployment{GPUs: 4, TP: 2, GPUMemory: 9e9, BlockSize: 16}, 3000},
		{kvmem.NVFP4, kvmem.Deployment{GPUs: 2, CP: 2, GPUMemory: 16.4e9, BlockSize: 8}, 2049},
	}
	for _, tt := range tests {
		c, err := kvmem.Plan(m.Spec(tt.kv, kvmem.Type{}), w, tt.d)
		require.NoError(t, err, "%v", tt.kv)
		n, err := c.PoolBlocks()
		require.NoError(t, err)
		mgr, err := paged.New(paged.Config{BlockSize: c.Deployment.BlockSize, NumBlocks: n})
		require.NoError(t, err)
		st := mgr.Stats()
		require.Equal(t, c.NumBlocks, int64(st.TotalBlocks), "%v", tt.kv)
		require.Equal(t, c.UsableBlocks(), int64(st.UsableBlocks), "%v", tt.kv)

		want := c.MaxSequences(tt.context)
		require.Positive(t, want, "%v: plan admits nothing", tt.kv)
		perRank := (tt.context + c.Deployment.CP - 1) / c.Deployment.CP
		admitted := int64(0)
		for {
			prompt := make([]int32, perRank)
			for i := range prompt {
				prompt[i] = int32(admitted)*int32(perRank) + int32(i) // distinct: no prefix hits
			}
			_, _, err := mgr.Create(prompt, nil)
			if err != nil {
				require.ErrorIs(t, err, paged.ErrNoSpace, "%v", tt.kv)
				break
			}
			admitted++
			require.LessOrEqual(t, admitted, want, "%v: manager admits more than planned", tt.kv)
		}
		require.NoError(t, mgr.Check())
		t.Logf("%v: %d blocks, %d sequences of %d tokens", tt.kv, c.NumBlocks, admitted, tt.context)
		assert.Equal(t, want, admitted*int64(c.Replicas), "%v at %d tokens", tt.kv, tt.context)
	}
}

// TestDefaultBlockSize: kvmem does not import paged, so its default is a
// copy that must not drift.
func TestDefaultBlockSize(t *testing.T) {
	assert.Equal(t, paged.DefaultBlockSize, kvmem.DefaultBlockSize)
}

// TestPoolBlocksFitAManager: Capacity.PoolBlocks and Spec.PoolBlocks
// succeed exactly for the pools paged.New builds. They used to accept up
// to 2^31-1 blocks, while a Manager takes at most paged.MaxBlocks (2^24):
// a plan of 2^24+1 blocks passed them and then failed paged.New.
func TestPoolBlocksFitAManager(t *testing.T) {
	assert.Equal(t, paged.MaxBlocks, kvmem.MaxBlocks)
	spec := kvmem.Spec{Layers: 1, KVHeads: 1, HeadDim: 16, Key: kvmem.FP8E4M3} // 32 bytes a block of 1 token
	for _, blocks := range []int64{2, 1 << 20, kvmem.MaxBlocks, kvmem.MaxBlocks + 1, 1 << 30} {
		c, err := kvmem.Plan(spec, 0, kvmem.Deployment{GPUMemory: blocks * 32, BlockSize: 1})
		require.NoError(t, err)
		require.Equal(t, blocks, c.NumBlocks)
		n, err := c.PoolBlocks()
		n2, err2 := spec.PoolBlocks(blocks*32, 1)
		if blocks > kvmem.MaxBlocks {
			require.ErrorIs(t, err, kvmem.ErrInvalid, "%d blocks", blocks)
			require.ErrorIs(t, err2, kvmem.ErrInvalid, "Spec.PoolBlocks: %d blocks", blocks)
			continue
		}
		require.NoError(t, err, "%d blocks", blocks)
		require.NoError(t, err2, "Spec.PoolBlocks: %d blocks", blocks)
		require.Equal(t, n, n2)
		_, err = paged.New(paged.Config{BlockSize: c.Deployment.BlockSize, NumBlocks: n})
		require.NoError(t, err, "%d blocks", blocks)
	}
}

// TestBadInputParallelDegrees: TP and CP whose product overflows are
// refused with ErrInvalid. TP x CP used to wrap around: to 0 (a division
// by zero panic in Plan and KVBudget) or to a small divisor of GPUs (a
// plan of nonsense replicas).
func TestBadInputParallelDegrees(t *testing.T) {
	spec := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.BF16}
	for _, d := range []kvmem.Deployment{
		{GPUs: 8, TP: math.MaxInt/2 + 1, CP: 4}, // 2^62 (2^30 where int is 32 bits): wraps to 0
		{GPUs: 8, TP: math.MaxInt/2 + 2, CP: 4}, // wraps to 4, which divides 8
		{GPUs: 8, TP: 4, CP: math.MaxInt/2 + 2},
		{GPUs: 8, TP: math.MaxInt, CP: math.MaxInt},
		{GPUs: 8, TP: 16},
		{GPUs: 8, CP: 16},
	} {
		d.GPUMemory = 80e9
		var err1, err2 error
		require.NotPanics(t, func() { _, err1 = kvmem.Plan(spec, 16e9, d) }, "%+v", d)
		require.NotPanics(t, func() { _, err2 = d.KVBudget(16e9) }, "%+v", d)
		require.ErrorIs(t, err1, kvmem.ErrInvalid, "%+v", d)
		require.ErrorIs(t, err2, kvmem.ErrInvalid, "%+v", d)
	}
}
