package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestAudit26PoolBlocksNegativeBudget: a negative KV budget is malformed
// input (ErrInvalid), not a budget that is too small (ErrTooSmall).
func TestAudit26PoolBlocksNegativeBudget(t *testing.T) {
	m, err := kvmem.LookupModel("Llama-3.1-8B")
	require.NoError(t, err)
	spec := m.Spec(kvmem.BF16, kvmem.BF16)
	_, err = spec.PoolBlocks(-1, 16)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = spec.PoolBlocks(0, 16)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
}
