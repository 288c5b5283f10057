package eviction

import "github.com/pagedkv/pagedkv/allocator"

// chainTree is the chain tree that Priority and Chain keep beside their
// lists: each block with content is linked under the block that held its
// parent content when it was hinted, while both keep that content, with
// sibling links, a count of each block's children held by the policy, and
// an orphan mark on every block whose chain lost an ancestor's content. A
// prefix lookup stops at the first miss, so an orphan cannot be hit until
// a request recomputes the prefix above it, and giving up a block with a
// child held makes orphans.
//
// The tree reads whether a block is held from its owner's list links (a
// block is held when it is on one of the owner's lists) and tells the
// owner, through treeOwner, when a held block's count of held children
// goes from zero to one or back, or it becomes an orphan: the things a
// policy may file a block by. Every operation is O(1), apart from marking
// a subtree as orphans, which visits each block once per content
// (amortized O(1)). X is the owner's own per-block state, kept in the same
// record so that an operation on a block touches one record.
type chainTree[X any] struct {
	node []treeNode[X]
	ln   []link // the owner's list links
	own  treeOwner
}

// treeNode is a block's place in the chain tree: its parent (noBlock for
// a root), its first child and its siblings, how many of its children are
// held, whether its chain lost an ancestor, and whether it holds hinted
// content; x is the owner's.
type treeNode[X any] struct {
	parent, child int32
	sib           link
	kids          int32
	orphan, live  bool
	x             X
}

// treeOwner is told when the tree changes what may decide the list of a
// held block: unhome takes it off its list before the change, rehome puts
// it back after, at the front or the back of its new list.
type treeOwner interface {
	unhome(id allocator.BlockID)
	rehome(id allocator.BlockID, front bool)
}

const noBlock = -1

// newChainTree returns the tree of capacity blocks, none linked, whose
// owner keeps its lists in ln.
func newChainTree[X any](capacity int, ln []link, own treeOwner) chainTree[X] {
	t := chainTree[X]{node: make([]treeNode[X], capacity), ln: ln, own: own}
	for i := range t.node {
		t.node[i].parent, t.node[i].child, t.node[i].sib = noBlock, noBlock, link{noBlock, noBlock}
	}
	return t
}

// held reports whether id is on one of the owner's lists.
func (t *chainTree[X]) held(id allocator.BlockID) bool { return t.ln[id].next >= 0 }

// hint marks id, which is not held and whose old content is dropped, as
// holding new content, linked under par when par is another block of the
// range that holds content; id inherits par's orphan mark.
func (t *chainTree[X]) hint(id, par allocator.BlockID) {
	t.node[id].live = true
	if par == id || par < 0 || int(par) >= len(t.node) || !t.node[par].live {
		return
	}
	first := t.node[par].child
	t.node[id].sib = link{noBlock, first}
	if first != noBlock {
		t.node[first].sib.prev = int32(id)
	}
	t.node[par].child = int32(id)
	t.node[id].parent = int32(par)
	t.node[id].orphan = t.node[par].orphan
}

// enter counts id, just made held, among its parent's children held; a
// held parent that had none is rehomed at the back.
func (t *chainTree[X]) enter(id allocator.BlockID) {
	par := t.node[id].parent
	if par == noBlock {
		return
	}
	move := t.node[par].kids == 0 && t.held(allocator.BlockID(par))
	if move {
		t.own.unhome(allocator.BlockID(par))
	}
	t.node[par].kids++
	if move {
		t.own.rehome(allocator.BlockID(par), false)
	}
}

// leave counts id, just taken off the owner's lists, out of its parent's
// children held; a held parent left with none is rehomed at the front,
// where the child was (a chain is released tail first).
func (t *chainTree[X]) leave(id allocator.BlockID) {
	par := t.node[id].parent
	if par == noBlock {
		return
	}
	if t.node[par].kids == 1 && t.held(allocator.BlockID(par)) {
		t.own.unhome(allocator.BlockID(par))
		t.node[par].kids = 0
		t.own.rehome(allocator.BlockID(par), true)
		return
	}
	t.node[par].kids--
}

// drop ends id's content, which is not held: the subtrees of its children
// become orphans and it leaves its parent.
func (t *chainTree[X]) drop(id allocator.BlockID) {
	for c := t.node[id].child; c != noBlock; c = t.node[id].child {
		t.detach(allocator.BlockID(c))
		t.orphanTree(allocator.BlockID(c))
	}
	t.node[id].kids = 0
	if t.node[id].parent != noBlock {
		t.detach(id)
	}
	t.node[id].orphan, t.node[id].live = false, false
}

// detach unlinks id from its parent, counting it out of the parent's
// children held if it is held.
func (t *chainTree[X]) detach(id allocator.BlockID) {
	par := t.node[id].parent
	if t.held(id) {
		t.leave(id)
	}
	s := t.node[id].sib
	if s.prev != noBlock {
		t.node[s.prev].sib.next = s.next
	} else {
		t.node[par].child = s.next
	}
	if s.next != noBlock {
		t.node[s.next].sib.prev = s.prev
	}
	t.node[id].sib = link{noBlock, noBlock}
	t.node[id].parent = noBlock
}

// orphanTree marks root, just detached from its parent, and every block
// below it orphans, rehoming the held ones at the back. It walks the tree
// by its links, without a stack, and skips subtrees already orphaned
// (below an orphan every block is one), so each block is visited once per
// content.
func (t *chainTree[X]) orphanTree(root allocator.BlockID) {
	for x := root; ; {
		if !t.node[x].orphan {
			in := t.held(x)
			if in {
				t.own.unhome(x)
			}
			t.node[x].orphan = true
			if in {
				t.own.rehome(x, false)
			}
			if c := t.node[x].child; c != noBlock {
				x = allocator.BlockID(c)
				continue
			}
		}
		for x != root && t.node[x].sib.next == noBlock {
			x = allocator.BlockID(t.node[x].parent)
		}
		if x == root {
			return
		}
		x = allocator.BlockID(t.node[x].sib.next)
	}
}
