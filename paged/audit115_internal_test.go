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
	m, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 17)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k := range int32(4) {
		if err := m.Append(id, 100+k); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := m.seq(id); s.ext[0].released == 0 {
		t.Fatal("the window released nothing")
	}
	for _, computed := range []int{19, 0} {
		if err := m.Uncompute(id, computed); err != nil {
			t.Fatal(err)
		}
		if s, _ := m.seq(id); s.ext[0].committed < s.ext[0].released {
			t.Fatalf("computed %d: the window group's committed mark %d is below its released entries %d", computed, s.ext[0].committed, s.ext[0].released)
		}
		for k := range int32(5) {
			if err := m.Append(id, 200+k); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if m.bp.hasContent(nullBlock) {
		t.Fatal("the null block holds cached content")
	}
}
