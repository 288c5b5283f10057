package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestCapacityZeroOrTooSmall: a Capacity Plan did not make (the zero
// value, or a pool edited to fewer than the 2 blocks Plan requires)
// answers 0 from every counting method and an error from PoolBlocks,
// never a negative count: UsableBlocks answered NumBlocks-1, -1 for the
// zero value.
func TestCapacityZeroOrTooSmall(t *testing.T) {
	s := kvmem.Spec{Layers: 2, KVHeads: 1, HeadDim: 8, Key: kvmem.FP16}
	c, err := kvmem.Plan(s, 0, kvmem.Deployment{GPUMemory: 1 << 30})
	require.NoError(t, err)
	for _, n := range []int64{0, 1, -1, -1 << 62} {
		e := c
		e.NumBlocks = n
		for name, b := range map[string]kvmem.Capacity{"zero": {NumBlocks: n}, "edited": e} {
			assert.Zero(t, b.UsableBlocks(), "%s, %d blocks", name, n)
			assert.Zero(t, b.MaxSequences(100), "%s, %d blocks", name, n)
			assert.Zero(t, b.MaxContext(1), "%s, %d blocks", name, n)
			assert.Zero(t, b.SequenceBytes(100), "%s, %d blocks", name, n)
			assert.Zero(t, b.Tokens(), "%s, %d blocks", name, n)
			_, err := b.PoolBlocks()
			assert.ErrorIs(t, err, kvmem.ErrInvalid, "%s, %d blocks", name, n)
		}
	}
	e := c
	e.NumBlocks = 2
	assert.Equal(t, int64(1), e.UsableBlocks(), "the smallest pool Plan makes")
}
