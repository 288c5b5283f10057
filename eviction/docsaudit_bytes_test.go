package eviction_test

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestDocsauditPolicyBytesPerBlock checks the per-block memory the docs
// state (MaxCapacity's doc, Chain's, docs/policies.md): about 160 bytes a
// block for Chain in pools of 2^16 blocks and more, under 80 for every
// other policy. (The docs said 130, 140 and 150 for Chain; it takes
// 156-165.)
func TestDocsauditPolicyBytesPerBlock(t *testing.T) {
	for _, capacity := range []int{1 << 16, 1<<20 + 1} {
		for _, name := range eviction.Names() {
			f, err := eviction.ByName(name)
			require.NoError(t, err)
			var a, b runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&a)
			p := f(capacity)
			runtime.ReadMemStats(&b)
			runtime.KeepAlive(p)
			perBlock := float64(b.TotalAlloc-a.TotalAlloc) / float64(capacity)
			if name == "chain" {
				assert.InDelta(t, 160, perBlock, 10, "chain at %d blocks", capacity)
			} else {
				assert.Less(t, perBlock, 80.0, "%s at %d blocks", name, capacity)
			}
		}
	}
}
