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

// TestAudit72ARCAdaptsByGhostRatio: a ghost hit moves ARC's target for
// T1 by ARC's rule (Megiddo and Modha, 2003): a hit in B1 grows p by
// max(|B2|/|B1|, 1), a hit in B2 shrinks it by max(|B1|/|B2|, 1), within
// [0, c] (the twenty-seventh mutation round, docs/testing.md). With four
// ghosts in one list and one in the other, the step is 4. M1260 and
// M1261 moved p by one whatever the ratio.
func TestAudit72ARCAdaptsByGhostRatio(t *testing.T) {
	for _, hitB1 := range []bool{true, false} {
		p := NewARC(8).(*ARC)
		many, one := ghostB2, ghostB1
		if !hitB1 {
			many, one = ghostB1, ghostB2
			p.p = 5
		}
		for k := range uint64(4) {
			p.g.add(many, 100+k)
		}
		p.g.add(one, 7)
		p.Hint(0, Hint{Key: 7})
		want := 4
		if !hitB1 {
			want = 1
		}
		if p.p != want {
			t.Errorf("a ghost hit in B%d with 4 ghosts in the other list: p = %d, want %d", one+1, p.p, want)
		}
	}
}

// TestAudit72ARCKeepsL1WithinCapacity: ARC keeps T1 and B1 together
// within the capacity (|T1| + |B1| <= c, the paper's invariant on L1),
// trimming B1's oldest ghosts when an eviction from T1 adds one: keyed
// content released once and evicted, over and over, never leaves more.
// M1265 let L1 reach c + 1.
func TestAudit72ARCKeepsL1WithinCapacity(t *testing.T) {
	const c = 4
	p := NewARC(c).(*ARC)
	key := uint64(1000)
	insert := func(id allocator.BlockID) {
		key++
		p.Hint(id, Hint{Key: key})
		p.Insert(id)
	}
	for id := range allocator.BlockID(c) {
		insert(id)
	}
	for range 20 {
		id, ok := p.Victim()
		if !ok {
			t.Fatal("no victim")
		}
		if l1 := p.n1 + p.g.len(ghostB1); l1 > c {
			t.Fatalf("|T1| + |B1| = %d + %d, over the capacity %d", p.n1, p.g.len(ghostB1), c)
		}
		insert(id)
	}
}
