package paged

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Internal tests of the hundred-and-eleventh mutation round
// (docs/testing.md); the others are in audit159_test.go.

// TestAudit159StepWrapKeepsArrivalsApart: the step counter is 32 bits;
// when it comes back to 0 after 2^32 steps, wrapSteps sets every
// sequence's arrival to 0 and starts the counter at 1, so that no
// sequence reads as arrived in the step being built. A sequence created
// in the last step before the wrap has computed its KV once that step
// ended: SwapOut must take it in the steps after the wrap, while one
// created after the wrap is still refused (M4570 restarted the counter
// at 0, the reset arrival, and the older sequence read as fresh).
func TestAudit159StepWrapKeepsArrivalsApart(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 32})
	require.NoError(t, err)
	m.step = math.MaxUint32
	a, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
	require.NoError(t, err)
	m.EndStep() // the wrap
	b, _, err := m.Create([]int32{6, 7, 8}, nil)
	require.NoError(t, err)
	require.ErrorIs(t, m.SwapOut(b), ErrUncomputed, "b arrived in the step being built")
	require.NoError(t, m.SwapOut(a), "a arrived before the wrap")
	require.NoError(t, m.Check())
}
