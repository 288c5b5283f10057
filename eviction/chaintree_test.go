package eviction

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// check verifies the chain tree against a recount: every child links back
// to its parent and its siblings both ways, each block's count of children
// held, every block below an orphan an orphan, and links only between
// blocks with content.
func (t *chainTree[X]) check() error {
	for id := range t.node {
		kids := int32(0)
		prev := int32(noBlock)
		for c := t.node[id].child; c != noBlock; c = t.node[c].sib.next {
			if t.node[c].parent != int32(id) {
				return fmt.Errorf("block %d is a child of %d, whose parent is %d", c, id, t.node[c].parent)
			}
			if t.node[c].sib.prev != prev {
				return fmt.Errorf("sibling links of %d broken", c)
			}
			if t.held(allocator.BlockID(c)) {
				kids++
			}
			if t.node[id].orphan && !t.node[c].orphan {
				return fmt.Errorf("block %d is an orphan, its child %d not", id, c)
			}
			if !t.node[id].live || !t.node[c].live {
				return fmt.Errorf("link %d -> %d without content", id, c)
			}
			prev = c
		}
		if kids != t.node[id].kids {
			return fmt.Errorf("block %d counts %d children held, has %d", id, t.node[id].kids, kids)
		}
	}
	return nil
}

// heldOrphans counts the held blocks marked orphans.
func (t *chainTree[X]) heldOrphans() int {
	n := 0
	for id := range t.node {
		if t.node[id].orphan && t.held(allocator.BlockID(id)) {
			n++
		}
	}
	return n
}

// TestChainTreeNodeSize: a block's record in the chain tree stays 24
// bytes, Priority's levels included, so that Priority's operations on a
// block touch one record.
func TestChainTreeNodeSize(t *testing.T) {
	if n := unsafe.Sizeof(treeNode[plevels]{}); n != 24 {
		t.Fatalf("Priority's tree node is %d bytes", n)
	}
	if n := unsafe.Sizeof(treeNode[struct{}]{}); n != 24 {
		t.Fatalf("Chain's tree node is %d bytes", n)
	}
}

// treeLog is a treeOwner that holds blocks on one list and logs the
// tree's calls.
type treeLog struct {
	held list
	log  []string
}

func (o *treeLog) unhome(id allocator.BlockID) { o.log = append(o.log, fmt.Sprintf("unhome %d", id)) }
func (o *treeLog) rehome(id allocator.BlockID, front bool) {
	o.log = append(o.log, fmt.Sprintf("rehome %d front %v", id, front))
}

// TestChainTreeByHand: a chain 0-1-2 with a fork 1-3, worked by hand. A
// held parent is rehomed when its first child is held and when its last
// held child leaves (at the front); a block hinted under an orphan is
// one; dropping content orphans the subtrees below it, rehoming the held
// orphans, and an invalid or dead parent links nothing.
func TestChainTreeByHand(t *testing.T) {
	const n = 8
	ln := links(n, 1)
	o := &treeLog{held: newList(ln, n, n)}
	tr := newChainTree[struct{}](n, ln, o)
	hold := func(id allocator.BlockID) { o.held.pushBack(id); tr.enter(id) }
	free := func(id allocator.BlockID) { o.held.remove(id); tr.leave(id) }
	tr.hint(0, noBlock)
	tr.hint(1, 0)
	tr.hint(2, 1)
	tr.hint(3, 1)
	tr.hint(4, 4)  // itself: no parent
	tr.hint(5, 9)  // out of range: no parent
	tr.hint(6, 7)  // no content: no parent
	tr.hint(7, -3) // negative: no parent
	for _, id := range []allocator.BlockID{4, 5, 6, 7} {
		if tr.node[id].parent != noBlock || !tr.node[id].live {
			t.Fatalf("block %d: parent %d live %v", id, tr.node[id].parent, tr.node[id].live)
		}
	}
	hold(1) // parent 0 not held: no call
	hold(0)
	hold(2) // 1 is held and gains its first held child
	hold(3) // second child: no call
	want := []string{"unhome 1", "rehome 1 front false"}
	if fmt.Sprint(o.log) != fmt.Sprint(want) {
		t.Fatalf("log %v, want %v", o.log, want)
	}
	if err := tr.check(); err != nil {
		t.Fatal(err)
	}
	o.log = nil
	free(3)
	free(2) // 1 loses its last held child
	want = []string{"unhome 1", "rehome 1 front true"}
	if fmt.Sprint(o.log) != fmt.Sprint(want) {
		t.Fatalf("log %v, want %v", o.log, want)
	}
	hold(2)
	hold(3)
	// 1's content goes while it is referenced (not held): 2 and 3 become
	// orphans, each rehomed; 0 loses a child that was not held.
	free(1)
	o.log = nil
	tr.drop(1)
	want = []string{"unhome 3", "rehome 3 front false", "unhome 2", "rehome 2 front false"}
	if fmt.Sprint(o.log) != fmt.Sprint(want) {
		t.Fatalf("log %v, want %v", o.log, want)
	}
	if !tr.node[2].orphan || !tr.node[3].orphan || tr.node[1].live || tr.node[0].child != noBlock {
		t.Fatalf("after drop: %+v", tr.node[:4])
	}
	tr.drop(6)
	tr.hint(6, 2) // below an orphan: an orphan too
	if !tr.node[6].orphan || tr.node[6].parent != 2 {
		t.Fatalf("block 6: %+v", tr.node[6])
	}
	if err := tr.check(); err != nil {
		t.Fatal(err)
	}
	if got := tr.heldOrphans(); got != 2 {
		t.Fatalf("%d orphans held, want 2", got)
	}
}
