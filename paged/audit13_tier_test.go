package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13OffloadPriorityExpiresOnItsTick checks when a retention
// priority stops keeping content off the host tier: a block committed at
// tick 0 under Retention{Priority: 10, Ticks: 5} is below OffloadPriority
// 20 until tick 5 and at DefaultPriority (35) from tick 5 on, as "reverting
// after Ticks of logical time" says and as eviction.Priority reverts it:
// evicted at tick 4 it is given up, at tick 5 offloaded. (Mutation M66
// kept the low priority through tick 5.)
func TestAudit13OffloadPriorityExpiresOnItsTick(t *testing.T) {
	for _, c := range []struct {
		at      int64
		offload bool
	}{{4, false}, {5, true}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 3, HostBlocks: 4, OffloadPriority: 20})
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := m.Create([]int32{1, 2, 3, 4, 5}, &paged.SeqOptions{Retention: &paged.Retention{Priority: 10, Ticks: 5}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(a); err != nil {
			t.Fatal(err)
		}
		m.Advance(c.at)
		// Two blocks: the free one, then the cached one is evicted.
		if _, _, err := m.Create([]int32{9, 9, 9, 9, 9}, nil); err != nil {
			t.Fatal(err)
		}
		st := m.Stats()
		if st.Evictions != 1 || (st.Tiers.Offloads == 1) != c.offload {
			t.Fatalf("evicted at tick %d: %d evictions, %d offloads; want 1 eviction, offloaded = %v", c.at, st.Evictions, st.Tiers.Offloads, c.offload)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
