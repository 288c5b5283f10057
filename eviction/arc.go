package eviction

import "github.com/pagedkv/pagedkv/allocator"

// Lists of ARC content and of its ghosts.
const (
	arcNone uint8 = iota
	arcT1
	arcT2

	ghostB1 = 0
	ghostB2 = 1
)

// ARC balances recency against frequency and tunes the balance itself
// (Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache",
// FAST 2003). Content seen once is in T1, content hit since it was
// committed in T2; evicted content leaves its key in the ghost list B1 or
// B2. New content whose key is a ghost goes to T2 and moves the target size
// p of T1: up after a B1 ghost (recency was undervalued), down after a B2
// ghost. Victim takes T1's least recent block while T1 holds more than p
// blocks, else T2's.
//
// In a prefix cache only unreferenced blocks can go, so T1 and T2 count all
// content (the sizes ARC compares) while their lists order only the
// evictable blocks, by release as LRU does. Ghost keys are the content keys
// from Hint, at most capacity of them; without hints ARC never sees a ghost
// and p stays 0, which gives T1 up first: still scan-resistant.
//
// Every method is O(1) but Victim, which is amortized O(1) (it may drop
// several ghosts, each added once); ghost lookups are expected O(1).
type ARC struct {
	t1, t2 list // evictable blocks of each list, least recently released first
	tag    []uint8
	n1, n2 int // content in T1 and T2, referenced or not
	key    []uint64
	keyed  []bool
	g      ghost
	p, c   int
}

var (
	_ Policy    = (*ARC)(nil)
	_ Accessor  = (*ARC)(nil)
	_ Forgetter = (*ARC)(nil)
	_ Hinter    = (*ARC)(nil)
)

// NewARC returns an empty ARC for block IDs in [0, capacity).
func NewARC(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 2)
	return &ARC{
		t1:    newList(ln, capacity, capacity),
		t2:    newList(ln, capacity, capacity+1),
		tag:   make([]uint8, capacity),
		key:   make([]uint64, capacity),
		keyed: make([]bool, capacity),
		g:     newGhost(capacity, 2),
		c:     capacity,
	}
}

func (p *ARC) list(id allocator.BlockID) *list {
	if p.tag[id] == arcT2 {
		return &p.t2
	}
	return &p.t1
}

func (p *ARC) setTag(id allocator.BlockID, t uint8) {
	switch p.tag[id] {
	case arcT1:
		p.n1--
	case arcT2:
		p.n2--
	}
	switch t {
	case arcT1:
		p.n1++
	case arcT2:
		p.n2++
	}
	p.tag[id] = t
}

// Insert adds id as the most recently released block of its list; content
// ARC has not seen yet counts as new (T1).
func (p *ARC) Insert(id allocator.BlockID) {
	if p.t1.linked(id) {
		misuse("ARC", "Insert", id, inPolicy)
	}
	if p.tag[id] == arcNone {
		p.setTag(id, arcT1)
	}
	p.list(id).pushBack(id)
}

// Remove takes id out; its content stays in T1 or T2.
func (p *ARC) Remove(id allocator.BlockID) {
	if !p.t1.linked(id) {
		misuse("ARC", "Remove", id, notInPolicy)
	}
	p.list(id).remove(id)
}

// Access records a hit: the content moves to T2.
func (p *ARC) Access(id allocator.BlockID) {
	if p.t1.linked(id) {
		p.list(id).remove(id)
		p.setTag(id, arcT2)
		p.t2.pushBack(id)
		return
	}
	p.setTag(id, arcT2)
}

// Hint records id's new content. A key found in B1 or B2 adapts p as in
// the paper's cases II and III and puts the content in T2.
func (p *ARC) Hint(id allocator.BlockID, h Hint) {
	if p.t1.linked(id) {
		misuse("ARC", "Hint", id, inPolicy)
	}
	p.setTag(id, arcT1)
	p.key[id], p.keyed[id] = h.Key, true
	l, s := p.g.find(h.Key)
	if l < 0 {
		return
	}
	b1, b2 := p.g.len(ghostB1), p.g.len(ghostB2)
	if l == ghostB1 {
		p.p = min(p.c, p.p+max(b2/b1, 1))
	} else {
		p.p = max(0, p.p-max(b1/b2, 1))
	}
	p.g.remove(s)
	p.setTag(id, arcT2)
}

// Forget drops id's content without a ghost: it was not evicted.
func (p *ARC) Forget(id allocator.BlockID) {
	if p.t1.linked(id) {
		misuse("ARC", "Forget", id, inPolicy)
	}
	p.setTag(id, arcNone)
	p.keyed[id] = false
}

// Victim is the paper's REPLACE: the least recently released block of T1
// while T1 exceeds its target p, else of T2 (each falling back on the
// other when it has no evictable block). The evicted key becomes a ghost.
func (p *ARC) Victim() (allocator.BlockID, bool) {
	fromT1 := p.t1.n > 0 && (p.n1 > p.p || p.t2.n == 0)
	var id allocator.BlockID
	var ok bool
	b := ghostB2
	if fromT1 {
		id, ok = p.t1.popFront()
		b = ghostB1
	} else {
		id, ok = p.t2.popFront()
	}
	if !ok {
		return allocator.NoBlock, false
	}
	p.setTag(id, arcNone)
	if p.keyed[id] {
		p.keyed[id] = false
		// Case IV of the paper chooses which ghost makes room: B1's
		// oldest while L1 = T1+B1 is at c, else B2's.
		if p.g.full() {
			b1 := p.g.len(ghostB1)
			if b1 > 0 && (p.n1+b1 >= p.c || p.g.len(ghostB2) == 0) {
				p.g.dropOldest(ghostB1)
			} else {
				p.g.dropOldest(ghostB2)
			}
		}
		p.g.add(b, p.key[id])
		// The paper keeps |T1|+|B1| <= c.
		for p.n1+p.g.len(ghostB1) > p.c && p.g.len(ghostB1) > 0 {
			p.g.dropOldest(ghostB1)
		}
	}
	return id, true
}

// Len returns the number of blocks held.
func (p *ARC) Len() int { return p.t1.n + p.t2.n }

// Contains reports whether id is held.
func (p *ARC) Contains(id allocator.BlockID) bool { return p.t1.linked(id) }
