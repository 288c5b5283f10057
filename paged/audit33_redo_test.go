package paged_test

import (
	"testing"
)

// TestTruncateAfterAppendForgetsUncompute: a step dropped (Uncompute at
// 11) and computed again, then a step of four tokens (Append), then a
// Truncate into them: every token kept was computed, so SwapOut keeps
// what the next query reads, as it does for a twin never dropped.
// truncateRedo lowers the record's length to the cut, so the cut makes
// a record the Append had expired stand again (audit33); this pins that
// here it keeps nothing more than the twin's: SwapOut copies as many
// blocks and the local table comes back the same.
func TestTruncateAfterAppendForgetsUncompute(t *testing.T) {
	for _, tc := range swapTrimLayouts {
		for _, n := range []int{14, 15, 16} {
			t.Run(tc.name, func(t *testing.T) {
				run := func(drop bool) int {
					m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
					if drop {
						if err := m.Uncompute(id, 11); err != nil {
							t.Fatal(err)
						}
					}
					appendStep(t, m, id, 2)                     // 11 and 12 computed (again)
					appendStep(t, m, id, 4, 102, 103, 104, 105) // 13 to 16
					if err := m.Truncate(id, n); err != nil {
						t.Fatalf("Truncate to %d: %v", n, err)
					}
					m.TakeSwaps(nil)
					got := swapOutCount(t, m, id)
					if err := m.SwapIn(id); err != nil {
						t.Fatal(err)
					}
					if err := m.Check(); err != nil {
						t.Fatal(err)
					}
					t.Logf("drop %v, truncate to %d: %d swapped out, %d live local", drop, n, got, liveEntries(t, m, id, tc.local))
					return liveEntries(t, m, id, tc.local)
				}
				if got, want := run(true), run(false); got != want {
					t.Errorf("truncated to %d after a dropped step computed again and a decode: the local table comes back with %d blocks, a twin never dropped with %d", n, got, want)
				}
			})
		}
	}
}
