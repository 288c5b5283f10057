package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit161PlanNegativeRopeNamesItsFlag: a negative -mla-rope is
// refused by the command's own check, naming the flag, not later by the
// library's row check under the -kv type's name.
func TestAudit161PlanNegativeRopeNamesItsFlag(t *testing.T) {
	_, _, err := runPlanOut(t, "-mla-latent", "512", "-mla-rope", "-1", "-layers", "4", "-params", "8B", "-gpus", "1", "-context", "4096", "-kv", "bf16")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-mla-rope -1 must not be negative")
}
