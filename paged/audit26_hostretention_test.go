package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit26HostPolicyKeepsRetention: a host policy that keeps
// retention (eviction.NewPriority as Config.HostPolicy) is told the level
// and expiry of the content offloaded into each host block, and the
// manager's time, as the device policy is. Before, it was told nothing:
// offloaded content at 90 was given up before content at 35 offloaded
// after it, and an expired promise never reverted.
func TestAudit26HostPolicyKeepsRetention(t *testing.T) {
	// history offloads [1 2] at retention first, then [3 4] at second
	// and [5 6] at the default, into a host tier of two blocks: the third
	// offload gives up one of the first two.
	history := func(first, second *SeqOptions, now int64) *Manager {
		m, err := New(Config{BlockSize: 2, NumBlocks: 3, HostBlocks: 2, HostPolicy: eviction.NewPriority})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 0}, first)
		run(t, m, []int32{3, 4, 0}, second) // offloads [1 2]
		run(t, m, []int32{5, 6, 0}, nil)    // offloads [3 4]
		m.Advance(now)
		run(t, m, []int32{7, 8, 0}, nil) // offloads [5 6], giving one up
		if got := m.Stats().Tiers.Offloads; got != 3 {
			t.Fatalf("%d offloads, want 3", got)
		}
		return m
	}
	onHost := func(m *Manager, prompt []int32) bool {
		hs, err := m.BlockHashes(nil, prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := m.hostHit(&hs[0])
		return ok
	}
	m := history(retain(90, 0), nil, 0)
	if !onHost(m, []int32{1, 2}) || onHost(m, []int32{3, 4}) {
		t.Errorf("host tier holds [1 2] at 90: %v, [3 4] at 35: %v; want the content at 35 given up", onHost(m, []int32{1, 2}), onHost(m, []int32{3, 4}))
	}
	// A promise of 90 until tick 5 against content at 50: kept before
	// the tick, lapsed to 35 (and given up first) at it.
	for _, now := range []int64{4, 5} {
		m = history(retain(90, 5), retain(50, 0), now)
		if lapsed := now == 5; onHost(m, []int32{1, 2}) == lapsed || onHost(m, []int32{3, 4}) != lapsed {
			t.Errorf("at tick %d: host tier holds [1 2]: %v, [3 4] at 50: %v", now, onHost(m, []int32{1, 2}), onHost(m, []int32{3, 4}))
		}
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
