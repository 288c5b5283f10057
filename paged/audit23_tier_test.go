package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit23OnboardKeepsContentLevel: content at the default retention
// (35), reused by a request that asks for less (10), keeps 35 when the
// reuse hits it on the device: a reuse never lowers a level. Onboarding is
// a reuse too, so content offloaded at 35 and onboarded by that request
// must come back at 35, for the offload floor and for the eviction order
// alike. Before, the onboarded block took the onboarding request's level:
// at a floor of 30 it was then dropped instead of offloaded again, and the
// priority policy gave it up before content at 20.
func TestAudit23OnboardKeepsContentLevel(t *testing.T) {
	// twin runs the history with the reuse hitting on the device or, when
	// onboard, on the host, and returns the manager after it.
	twin := func(cfg Config, onboard bool) *Manager {
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 0}, nil) // [1] and [1 2] cached at 35
		if onboard {
			run(t, m, seqRange(100, cfg.NumBlocks-1), nil) // evicts them to the host
			if isCached(t, m, []int32{1, 2}) {
				t.Fatal("the prefix never left the device: the test checks nothing")
			}
		}
		run(t, m, []int32{1, 2, 5}, retain(10, 0)) // the low reuse
		if got := m.Stats().Tiers.Onboards; onboard != (got == 2) {
			t.Fatalf("onboard %v: %d blocks onboarded", onboard, got)
		}
		return m
	}
	t.Run("floor", func(t *testing.T) {
		for _, onboard := range []bool{false, true} {
			m := twin(Config{BlockSize: 1, NumBlocks: 4, HostBlocks: 8, OffloadPriority: 30}, onboard)
			before := m.Stats().Tiers.Offloads
			run(t, m, []int32{60, 61, 62}, nil) // evicts [1], [1 2] (35) and [1 2 5] (10)
			if got := m.Stats().Tiers.Offloads - before; got != 2 {
				t.Errorf("onboarded %v: %d blocks offloaded at a floor of 30, want the 2 at 35", onboard, got)
			}
		}
	})
	t.Run("policy", func(t *testing.T) {
		// Blocks of 2: the reuse [1 2 3 4 5] hits [1 2] and [1 2 3 4]
		// and commits nothing of its own.
		for _, onboard := range []bool{false, true} {
			m, err := New(Config{BlockSize: 2, NumBlocks: 6, HostBlocks: 16, Policy: eviction.NewPriority})
			if err != nil {
				t.Fatal(err)
			}
			run(t, m, []int32{1, 2, 3, 4, 0}, nil) // two blocks at 35
			if onboard {
				run(t, m, seqRange(100, 10), nil) // evicts them to the host
				if isCached(t, m, []int32{1, 2}) {
					t.Fatal("the prefix never left the device: the test checks nothing")
				}
			}
			run(t, m, []int32{1, 2, 3, 4, 5}, retain(10, 0))
			if got := m.Stats().Tiers.Onboards; onboard != (got == 2) {
				t.Fatalf("onboard %v: %d blocks onboarded", onboard, got)
			}
			// Three blocks at 20: with the reuse onboarded, two of them
			// take the place of older content at 35, never of the prefix.
			run(t, m, []int32{70, 71, 72, 73, 0}, retain(20, 0))
			if !isCached(t, m, []int32{1, 2, 3, 4}) {
				t.Errorf("onboarded %v: the prefix at 35 was given up before older content at 35", onboard)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
