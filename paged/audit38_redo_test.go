package paged_test

import "testing"

// TestAudit38ForkInheritsUncompute: a fork of a sequence whose step was
// dropped (Uncompute at 11) shares its uncomputed positions, so its next
// step computes from 11 too: swapped out, it keeps the window of position
// 11 (the local table's blocks 5 and 6), as its parent does
// (TestSwapOutKeepsUncomputedWindow), and swapped back in its recompute
// of 11 and 12 builds. The mutation M146 (the child without the
// record) trimmed the child from its length: block 5 went, and the
// recompute was refused as reading a released position.
func TestAudit38ForkInheritsUncompute(t *testing.T) {
	for _, tc := range swapTrimLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
			if err := m.Uncompute(id, 11); err != nil {
				t.Fatal(err)
			}
			child, err := m.Fork(id)
			if err != nil {
				t.Fatal(err)
			}
			swapKeepsRecompute(t, m, child, tc.local, id)
		})
	}
}

// TestAudit38UncomputeTwiceKeepsTheFirst: Uncompute says the KV from a
// position on was never computed, not that the KV before it was: a
// second Uncompute before the next Append (at 12, after one at 11) adds
// nothing to the first, and SwapOut keeps what the query at 11 reads, as
// after the first alone (TestSwapOutKeepsUncomputedWindow). In the
// chunked-local layout the query at 11 reads block 5 (chunk [10, 11]),
// the query at 12 block 6 only; the mutation M147 (a live record
// replaced by the later position, not merged) let block 5 go, and the
// recompute of 11 and 12 after the swap-in was refused.
func TestAudit38UncomputeTwiceKeepsTheFirst(t *testing.T) {
	for _, tc := range swapTrimLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
			for _, c := range []int{11, 12} {
				if err := m.Uncompute(id, c); err != nil {
					t.Fatal(err)
				}
			}
			swapKeepsRecompute(t, m, id, tc.local)
		})
	}
}
