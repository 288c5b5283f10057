package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
)

func memory(t *testing.T, capacity int) *fleet.Memory {
	m, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: capacity})
	require.NoError(t, err)
	return m
}

func TestMemoryMatchesModel(t *testing.T) {
	for seed := range uint64(5) {
		fleettest.CheckAgainstModel(t, memory(t, 64), seed, 2000)
	}
}

func TestMemoryCountsCopies(t *testing.T) { fleettest.CheckCopies(t, memory(t, 8)) }
