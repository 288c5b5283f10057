package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestDocsauditPlanPastMaxBlocks: the README says a plan's pool is a
// paged.Config's NumBlocks, with an error past kvmem.MaxBlocks (the most a
// manager takes: use larger blocks). kvbench plan printed such a pool as
// if a manager could take it; it now says which rows a manager cannot
// take, and keeps the rows that fit as they were.
func TestDocsauditPlanPastMaxBlocks(t *testing.T) {
	args := []string{"-model", "llama-3.1-8b", "-gpus", "1", "-gpu-mem", "1000GB", "-block-size", "1", "-kv", "int2-g32,bf16"}
	rep := runPlanJSON(t, args...)
	require.Len(t, rep.Rows, 2)
	assert.Greater(t, rep.Rows[0].NumBlocks, int64(kvmem.MaxBlocks))
	assert.Contains(t, rep.Rows[0].PoolError, "MaxBlocks")
	assert.LessOrEqual(t, rep.Rows[1].NumBlocks, int64(kvmem.MaxBlocks))
	assert.Empty(t, rep.Rows[1].PoolError)

	out, _, err := runPlanOut(t, args...)
	require.NoError(t, err)
	assert.Contains(t, out, "int2-g32: a paged.Manager cannot take this pool")
	assert.NotContains(t, out, "bf16: a paged.Manager")

	// The default plan is far below the limit: no such line.
	out, _, err = runPlanOut(t)
	require.NoError(t, err)
	assert.NotContains(t, out, "cannot take this pool")
}
