package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit42SlideKeepsCachedCopyParked is TestSlideCountsUnparkedSource
// with prefix caching on: the copy's destination, which B filled and
// committed in the step, stays cached when B's window slides past it, so
// a prefix hit may claim it in the step and read what the copy fills in.
// The copy stays live and its parked source stays parked: the space check
// counts the destination (evictable) but not the source, and the Append
// that needs both is refused, changing nothing. After the step's copies
// are taken it succeeds. (M183, counting such a source as released,
// passed the check and then found no block to allocate: a panic.)
func TestAudit42SlideKeepsCachedCopyParked(t *testing.T) {
	for _, tc := range slideCases {
		t.Run(tc.name, func(t *testing.T) {
			toks := []int32{5}
			nb := 8
			if tc.groups == nil {
				toks, nb = []int32{5, 6, 7}, 4
			}
			m, A, B := forkOfThree(t, paged.Config{BlockSize: 2, NumBlocks: nb, Groups: tc.groups, MaxModelLen: 16}, tc.opts)
			// B's copy, filled, is committed and cached.
			copyThenPark(t, m, A, B, tc.opts)
			appendRefused(t, m, B, "sliding past a cached copy destination (the copy's source stays parked)", toks...)
			noErr(t, m.Check())
			m.TakeCopies(nil) // ends the step: the source goes
			noErr(t, m.Append(B, toks...))
			noErr(t, m.Check())
		})
	}
}
