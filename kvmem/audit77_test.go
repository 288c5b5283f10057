package kvmem_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// The thirty-first mutation round (docs/testing.md): kvmem's capacity
// plan. Each test closes a mutation that survived it.

// TestAudit77DeploymentBounds: each documented bound of Deployment is
// taken at its value and refused one past it (ErrInvalid, naming the
// field). M1410, M1412 and M1414 moved GPUs', CP's and SpecTokens' bounds.
func TestAudit77DeploymentBounds(t *testing.T) {
	for _, tc := range []struct {
		field    string
		at, past kvmem.Deployment
	}{
		{"GPUs", kvmem.Deployment{GPUs: 1 << 20, GPUMemory: 1 << 30}, kvmem.Deployment{GPUs: 1<<20 + 1, GPUMemory: 1 << 30}},
		{"CP", kvmem.Deployment{GPUs: 8, CP: 8, GPUMemory: 1 << 30}, kvmem.Deployment{GPUs: 8, CP: 9, GPUMemory: 1 << 30}},
		{"SpecTokens", kvmem.Deployment{GPUMemory: 1 << 30, SpecTokens: 1 << 20}, kvmem.Deployment{GPUMemory: 1 << 30, SpecTokens: 1<<20 + 1}},
	} {
		_, err := tc.at.KVBudget(0)
		require.NoError(t, err, tc.field)
		_, err = tc.past.KVBudget(0)
		require.ErrorIs(t, err, kvmem.ErrInvalid, tc.field)
		assert.Contains(t, err.Error(), "Deployment."+tc.field, tc.field)
	}
}

// TestAudit77BudgetEdges: the KV budget is the memory less the weights'
// share and the reserve, the reserve's fraction rounded up, each check
// at its edge: weights filling the memory leave a budget of 0, a byte
// more is the weights' error; a reserve filling what is left leaves 0, a
// byte more is the reserve's error; ReserveBytes past the memory cannot
// wrap the sum. M1419 rounded the fraction down, M1420 and M1421 let a
// byte too many through (to the reserve's error, to a budget of -1),
// M1418 let the sum wrap to a negative reserve and a budget above the
// memory.
func TestAudit77BudgetEdges(t *testing.T) {
	kv, err := kvmem.Deployment{GPUMemory: 3, Reserve: 0.5}.KVBudget(0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), kv, "3 - ceil(1.5)")

	d := kvmem.Deployment{GPUMemory: 100}
	kv, err = d.KVBudget(100)
	require.NoError(t, err)
	assert.Zero(t, kv)
	_, err = d.KVBudget(101)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "cannot hold the weights")

	d.ReserveBytes = 90
	kv, err = d.KVBudget(10)
	require.NoError(t, err)
	assert.Zero(t, kv)
	d.ReserveBytes = 91
	_, err = d.KVBudget(10)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "Deployment.Reserve")

	_, err = kvmem.Deployment{GPUMemory: 1 << 60, Reserve: 0.5, ReserveBytes: math.MaxInt64}.KVBudget(0)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
}

// TestAudit77SizesInKilobytes: the errors give sizes in SI units, a
// kilobyte from 1000 bytes on. M1438 printed 1000 bytes as "1000 B".
func TestAudit77SizesInKilobytes(t *testing.T) {
	_, err := kvmem.Deployment{GPUMemory: 1000}.KVBudget(1001)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "GPUMemory 1.0 kB per device")
}

// TestAudit77HugePoolsWithContextParallelism: a pool of 2^59 tokens a
// rank (a byte each for a token's key and value, 2^60 bytes) with 16
// context-parallel ranks holds a context past what int64 counts, and 32
// replicas of a pool of 2^59 tokens hold more tokens than int64 counts:
// MaxContext and Tokens answer Unbounded rather than a wrapped count.
// M1435 multiplied the search's top by CP unchecked (it wrapped negative
// and MaxContext answered 0), M1436 multiplied Tokens by the replicas
// unchecked.
func TestAudit77HugePoolsWithContextParallelism(t *testing.T) {
	s := kvmem.Spec{Layers: 1, KVHeads: 1, HeadDim: 1, Key: kvmem.FP8E4M3}
	for _, d := range []kvmem.Deployment{
		{GPUs: 16, CP: 16, TP: 1, GPUMemory: 1 << 60, BlockSize: 1 << 20},
		{GPUs: 32, TP: 1, GPUMemory: 1 << 60, BlockSize: 1 << 20},
	} {
		c, err := kvmem.Plan(s, 0, d)
		require.NoError(t, err)
		perRank := c.UsableBlocks() * int64(d.BlockSize)
		l := c.MaxContext(1)
		require.GreaterOrEqual(t, l, perRank, "CP %d", d.CP)
		if d.CP > 1 {
			assert.Equal(t, kvmem.Unbounded, l, "16 ranks of 2^59 tokens")
		}
		assert.Equal(t, kvmem.Unbounded, c.Tokens(), "CP %d, %d replicas", d.CP, c.Replicas)
	}
}
