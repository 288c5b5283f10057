package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit15ResetForgetsLevels: after ResetCache, with the unified free
// queue, blocks whose content was dropped keep no retention level: a
// prompt cached afterwards at the default level is not given up while
// blocks that hold nothing are kept for a promise made to content that is
// gone.
func TestAudit15ResetForgetsLevels(t *testing.T) {
	for _, name := range eviction.Names() {
		f, _ := eviction.ByName(name)
		m, err := New(Config{BlockSize: 2, NumBlocks: 7, UnifiedFreeQueue: true, Policy: f})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 3, 4, 5, 6, 7}, retain(100, 0)) // 4 blocks, 3 full, at 100
		if err := m.ResetCache(); err != nil {
			t.Fatal(err)
		}
		b := []int32{9, 9, 8, 8, 7}
		run(t, m, b, nil) // 3 blocks, 2 full, at the default
		// A request of 2 new blocks: there are 4 blocks with no content.
		id, _, err := m.Create([]int32{5, 5, 5}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !isCached(t, m, b) {
			t.Errorf("%s: a prompt cached after the reset was given up while blocks with no content waited", name)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
}
