package bench

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hundred-and-second round of mutation testing (docs/testing.md): the
// hybrid study, Belady's heap and the cache study's runner.

// TestAudit150EmptyLayoutsReplayNone: an empty list of layouts replays
// none (nil would replay the default ones), as an empty list of state
// models does: a window and the single-group pair are four replays.
func TestAudit150EmptyLayoutsReplayNone(t *testing.T) {
	var replays atomic.Int32
	r, err := RunHybridStudy(HybridConfig{
		Windows: []int{32}, StateModels: []string{}, Layouts: []HybridLayout{},
		Requests: 20, Blocks: 1024, OnReplay: func() { replays.Add(1) },
	})
	require.NoError(t, err)
	assert.Empty(t, r.Layouts)
	assert.Empty(t, r.States)
	require.Len(t, r.Rows, 1)
	assert.Equal(t, int32(4), replays.Load())
}
