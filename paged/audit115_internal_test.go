package paged

import "testing"

// TestAudit115UncomputeInsideAGroupsReleasedWindow is
// TestUncomputeInsideReleasedWindow for a hybrid manager's sliding-window
// group: Uncompute back past the entries its window released keeps the
// group table's committed mark at its released entries, which name the
// null block, so the blocks committed again never include it (M2889: the
// group table's mark fell below its released window, and the null block
// was committed).
func TestAudit115UncomputeInsideAGroupsReleasedWindow(t *testing.T) {
	uncomputeInsideReleasedWindow(t, Config{BlockSize: 4, NumBlocks: 32, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}}, nil,
		func(s *sequence) (int, int) { return s.ext[0].committed, s.ext[0].released })
}
