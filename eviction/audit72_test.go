package eviction

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit72OrphanSubtreeWalkedOnce: orphaning skips a subtree already
// orphaned, so a held block below it is rehomed once per content, when
// it becomes an orphan, and keeps its place when an ancestor already
// orphaned loses its content in turn (the twenty-fifth mutation round,
// docs/testing.md). Chain 0 <- 1 <- 2 <- 3 with 3 held: dropping 1
// orphans 2 and 3 and moves 3 to the back of its list; dropping 2 then
// moves nothing. M1226 walked the orphaned subtree again and moved 3 a
// second time, behind blocks orphaned since.
func TestAudit72OrphanSubtreeWalkedOnce(t *testing.T) {
	const n = 8
	ln := links(n, 1)
	o := &treeLog{held: newList(ln, n, n)}
	tr := newChainTree[struct{}](n, ln, o)
	tr.hint(0, noBlock)
	for id := allocator.BlockID(1); id <= 3; id++ {
		tr.hint(id, id-1)
	}
	o.held.pushBack(3)
	tr.enter(3)
	tr.drop(1)
	want := []string{"unhome 3", "rehome 3 front false"}
	if fmt.Sprint(o.log) != fmt.Sprint(want) {
		t.Fatalf("dropping 1: log %v, want %v", o.log, want)
	}
	o.log = nil
	tr.drop(2)
	if len(o.log) != 0 {
		t.Fatalf("dropping 2, whose subtree is orphaned already: log %v, want none", o.log)
	}
	if !tr.node[3].orphan || tr.node[3].parent != noBlock {
		t.Fatalf("block 3 after both drops: %+v", tr.node[3])
	}
	if err := tr.check(); err != nil {
		t.Fatal(err)
	}
}
