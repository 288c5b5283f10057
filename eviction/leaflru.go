package eviction

import "github.com/pagedkv/pagedkv/allocator"

// LeafLRU is LRU restricted to the leaves of the prefix tree: a block whose
// content has cached children is not evicted while any leaf is evictable.
// It is this package's own design, after the rule TensorRT-LLM applies in
// its radix tree (only leaf blocks are evicted).
//
// Why: a prefix lookup stops at the first miss, so evicting a block makes
// every cached descendant unreachable until the block is recomputed; those
// descendants keep occupying blocks that no hit can claim. vLLM's LRU is
// leaf-first by accident as long as sequences release their blocks tail
// first, because whoever holds a child also holds its parent, so a parent
// is released no earlier than any child. It is not leaf-first when a parent
// is released while a child stays referenced (a sliding window releases a
// sequence's oldest blocks first).
//
// Children are learned from Hint.Parent. A child counts for its parent only
// while the parent still holds the content it had when the child was
// hinted (a generation number per block checks this), so reuse of a block
// never corrupts the counts. Without hints every block is a leaf and
// LeafLRU is LRU. When a leaf's last child goes, it joins the leaves as the
// most recently released: a block shared by many chains outlives its
// children by one more round of the LRU.
//
// Every method is O(1).
type LeafLRU struct {
	leaves, inner list // evictable blocks without / with cached children
	children      []int32
	parent        []allocator.BlockID
	parentGen     []uint32 // parent's generation when the child was hinted
	gen           []uint32 // bumped whenever a block's content changes
}

var (
	_ Policy    = (*LeafLRU)(nil)
	_ Forgetter = (*LeafLRU)(nil)
	_ Hinter    = (*LeafLRU)(nil)
)

// NewLeafLRU returns an empty leaf-first LRU for block IDs in [0, capacity).
func NewLeafLRU(capacity int) Policy {
	capacity = max(capacity, 0)
	prev, next := links(capacity, 2)
	p := &LeafLRU{
		leaves:    newList(prev, next, capacity, capacity),
		inner:     newList(prev, next, capacity, capacity+1),
		children:  make([]int32, capacity),
		parent:    make([]allocator.BlockID, capacity),
		parentGen: make([]uint32, capacity),
		gen:       make([]uint32, capacity),
	}
	for i := range p.parent {
		p.parent[i] = allocator.NoBlock
	}
	return p
}

func (p *LeafLRU) list(id allocator.BlockID) *list {
	if p.children[id] > 0 {
		return &p.inner
	}
	return &p.leaves
}

// Insert adds id as the most recently released block.
func (p *LeafLRU) Insert(id allocator.BlockID) {
	if p.leaves.linked(id) {
		misuse("LeafLRU", "Insert", id, inPolicy)
	}
	p.list(id).pushBack(id)
}

// Remove takes id out.
func (p *LeafLRU) Remove(id allocator.BlockID) {
	if !p.leaves.linked(id) {
		misuse("LeafLRU", "Remove", id, notInPolicy)
	}
	p.list(id).remove(id)
}

// Hint records id's new content as a child of h.Parent.
func (p *LeafLRU) Hint(id allocator.BlockID, h Hint) {
	if p.leaves.linked(id) {
		misuse("LeafLRU", "Hint", id, inPolicy)
	}
	par := h.Parent
	if par != allocator.NoBlock {
		p.leaves.linked(par) // range check before any change
	}
	p.drop(id)
	if par == allocator.NoBlock || par == id {
		return
	}
	p.parent[id], p.parentGen[id] = par, p.gen[par]
	p.children[par]++
	if p.children[par] == 1 && p.leaves.linked(par) {
		p.leaves.remove(par)
		p.inner.pushBack(par)
	}
}

// Forget drops id's content: its children no longer count for it and it
// no longer counts for its parent.
func (p *LeafLRU) Forget(id allocator.BlockID) {
	if p.leaves.linked(id) {
		misuse("LeafLRU", "Forget", id, inPolicy)
	}
	p.drop(id)
}

func (p *LeafLRU) drop(id allocator.BlockID) {
	if par := p.parent[id]; par >= 0 && p.gen[par] == p.parentGen[id] {
		p.children[par]--
		if p.children[par] == 0 && p.inner.linked(par) {
			p.inner.remove(par)
			p.leaves.pushBack(par)
		}
	}
	p.parent[id] = allocator.NoBlock
	p.children[id] = 0
	p.gen[id]++
}

// Victim pops the least recently released leaf, or the least recently
// released inner block when every evictable block has cached children
// (possible only when those children are referenced).
func (p *LeafLRU) Victim() (allocator.BlockID, bool) {
	id, ok := p.leaves.popFront()
	if !ok {
		id, ok = p.inner.popFront()
	}
	if ok {
		p.drop(id)
	}
	return id, ok
}

// Len returns the number of blocks held.
func (p *LeafLRU) Len() int { return p.leaves.n + p.inner.n }

// Contains reports whether id is held.
func (p *LeafLRU) Contains(id allocator.BlockID) bool { return p.leaves.linked(id) }
