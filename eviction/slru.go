package eviction

import "github.com/pagedkv/pagedkv/allocator"

// slruProtectedPercent is the protected segment's share of the pool. Karedla
// et al. studied several splits without fixing one; 80% is the split most
// implementations use (it is the SLRU of the W-TinyLFU paper and Caffeine).
const slruProtectedPercent = 80

// SLRU is segmented LRU (Karedla, Love and Wherry, "Caching strategies to
// improve disk system performance", IEEE Computer 1994). New content enters
// a probationary segment; content that is hit moves to a protected segment
// capped at 80% of the pool, whose least recently released blocks fall back
// to probation when it overflows. Victims come from probation first, so
// content used once never pushes out content used again.
//
// Segments count all content, referenced or not; their lists order only
// the evictable blocks, by release as LRU does. Every method is O(1) but
// Access, which is amortized O(1): each demotion undoes one promotion.
type SLRU struct {
	prob, prot list
	tag        []uint8 // queueNone, queueSmall (probation) or queueMain (protected)
	nprot      int     // protected content, referenced or not
	protMax    int
}

var (
	_ Policy    = (*SLRU)(nil)
	_ Accessor  = (*SLRU)(nil)
	_ Forgetter = (*SLRU)(nil)
	_ Hinter    = (*SLRU)(nil)
)

// NewSLRU returns an empty SLRU for block IDs in [0, capacity).
func NewSLRU(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 2)
	return &SLRU{
		prob:    newList(ln, capacity, capacity),
		prot:    newList(ln, capacity, capacity+1),
		tag:     make([]uint8, capacity),
		protMax: max(capacity*slruProtectedPercent/100, 1),
	}
}

func (p *SLRU) list(id allocator.BlockID) *list {
	if p.tag[id] == queueMain {
		return &p.prot
	}
	return &p.prob
}

// Insert adds id as the most recently released block of its segment.
func (p *SLRU) Insert(id allocator.BlockID) {
	if p.prob.linked(id) {
		misuse("SLRU", "Insert", id, inPolicy)
	}
	if p.tag[id] == queueNone {
		p.tag[id] = queueSmall
	}
	p.list(id).pushBack(id)
}

// Remove takes id out; its content keeps its segment.
func (p *SLRU) Remove(id allocator.BlockID) {
	if !p.prob.linked(id) {
		misuse("SLRU", "Remove", id, notInPolicy)
	}
	p.list(id).remove(id)
}

// Access protects id's content, demoting the protected segment's least
// recently released blocks to probation while it is over its share.
func (p *SLRU) Access(id allocator.BlockID) {
	linked := p.prob.linked(id)
	if linked {
		p.list(id).remove(id)
	}
	if p.tag[id] != queueMain {
		p.tag[id] = queueMain
		p.nprot++
	}
	if linked {
		p.prot.pushBack(id)
	}
	for p.nprot > p.protMax && p.prot.n > 0 {
		d, _ := p.prot.popFront()
		p.tag[d] = queueSmall
		p.nprot--
		p.prob.pushBack(d)
	}
}

// Hint forgets id's earlier content: new content starts on probation.
func (p *SLRU) Hint(id allocator.BlockID, _ Hint) {
	if p.prob.linked(id) {
		misuse("SLRU", "Hint", id, inPolicy)
	}
	p.reset(id)
}

// Forget forgets id's content.
func (p *SLRU) Forget(id allocator.BlockID) {
	if p.prob.linked(id) {
		misuse("SLRU", "Forget", id, inPolicy)
	}
	p.reset(id)
}

func (p *SLRU) reset(id allocator.BlockID) {
	if p.tag[id] == queueMain {
		p.nprot--
	}
	p.tag[id] = queueNone
}

// Victim pops the least recently released probationary block, or the least
// recently released protected one when probation is empty.
func (p *SLRU) Victim() (allocator.BlockID, bool) {
	id, ok := p.prob.popFront()
	if !ok {
		id, ok = p.prot.popFront()
	}
	if ok {
		p.reset(id)
	}
	return id, ok
}

// Len returns the number of blocks held.
func (p *SLRU) Len() int { return p.prob.n + p.prot.n }

// Contains reports whether id is held.
func (p *SLRU) Contains(id allocator.BlockID) bool { return p.prob.linked(id) }
