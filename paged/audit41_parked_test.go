package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestStatsParkedBlocks: a block whose last holder lets it go while a
// Copy of the step reads it is parked (used, counted in ParkedBlocks)
// until the step ends, when it is free. A scheduler that makes room for
// what it does after the step (sched's forks at the Update) counts it.
func TestStatsParkedBlocks(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 8, DisablePrefixCaching: true})
	noErr(t, err)
	a, err := m.Add([]int32{1, 2, 3, 4, 5, 6}, nil)
	noErr(t, err)
	_, err = m.Admit(a)
	noErr(t, err)
	m.EndStep()
	b, err := m.Fork(a)
	noErr(t, err)
	noErr(t, m.Append(a, 7)) // copies the shared partial block
	before := m.Stats()
	noErr(t, m.Free(b)) // its last holder: the copy still reads it
	st := m.Stats()
	if st.ParkedBlocks != 1 || st.FreeBlocks != before.FreeBlocks {
		t.Fatalf("after the free: parked %d, free %d (before %d), want 1 parked and nothing freed yet", st.ParkedBlocks, st.FreeBlocks, before.FreeBlocks)
	}
	noErr(t, m.Check())
	m.EndStep()
	st = m.Stats()
	if st.ParkedBlocks != 0 || st.FreeBlocks != before.FreeBlocks+1 {
		t.Fatalf("after the step: parked %d, free %d (before %d), want none parked and the block free", st.ParkedBlocks, st.FreeBlocks, before.FreeBlocks)
	}
}
