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
