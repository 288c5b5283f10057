package eviction

import "github.com/pagedkv/pagedkv/allocator"

// Queues of S3-FIFO and SLRU content.
const (
	queueNone uint8 = iota
	queueSmall
	queueMain
)

// S3-FIFO constants from the paper: the small queue gets 10% of the cache,
// the ghost queue remembers as many keys as the main queue holds, hit
// counters saturate at 3, and content leaves the small queue for the main
// one when it was hit more than once.
const (
	s3SmallPercent = 10
	s3MaxFreq      = 3
	s3Promote      = 2
)

// S3FIFO filters out content that is used once, with three FIFO queues
// (Yang et al., "FIFO queues are all you need for cache eviction", SOSP
// 2023). New content enters a small queue S sized at 10% of the pool;
// content whose key is in the ghost queue G (it was evicted from S
// recently) goes straight to the main queue M. At the head of S, content hit
// twice or more moves to M and the rest is evicted, its key remembered in
// G. M is a CLOCK with a 2-bit counter: content at its head with hits left
// goes to the back with one hit fewer.
//
// Ghost keys are the content keys from Hint, held in a fixed-size table;
// without hints no content is ever recognised in G and S3-FIFO runs with
// S and M only. As in FIFO, S and M hold content whether or not the block is
// referenced: a referenced block at a queue's head leaves it and rejoins the
// back of the same queue when released. The queue sizes compared with the
// 10% mark are those of the queues.
//
// Victim is amortized O(1): every step that does not evict is paid for by
// an Insert, a promotion from S (once per content) or an Access that
// raised a counter. The other methods are O(1).
type S3FIFO struct {
	small, main list
	queue       []uint8
	freq        []uint8
	evictable   []bool
	key         []uint64
	keyed       []bool
	g           ghost
	smallMax    int
	n           int
}

var (
	_ Policy    = (*S3FIFO)(nil)
	_ Accessor  = (*S3FIFO)(nil)
	_ Forgetter = (*S3FIFO)(nil)
	_ Hinter    = (*S3FIFO)(nil)
)

// NewS3FIFO returns an empty S3-FIFO for block IDs in [0, capacity).
func NewS3FIFO(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, 2)
	smallMax := max(capacity*s3SmallPercent/100, 1)
	return &S3FIFO{
		small:     newList(ln, capacity, capacity),
		main:      newList(ln, capacity, capacity+1),
		queue:     make([]uint8, capacity),
		freq:      make([]uint8, capacity),
		evictable: make([]bool, capacity),
		key:       make([]uint64, capacity),
		keyed:     make([]bool, capacity),
		g:         newGhost(capacity-smallMax, 1),
		smallMax:  smallMax,
	}
}

func (p *S3FIFO) list(id allocator.BlockID) *list {
	if p.queue[id] == queueMain {
		return &p.main
	}
	return &p.small
}

// Insert makes id evictable. Content not queued yet joins the back of its
// queue: S, or M when its Hint found it in the ghost queue.
func (p *S3FIFO) Insert(id allocator.BlockID) {
	if p.small.linked(id) {
		if p.evictable[id] {
			misuse("S3FIFO", "Insert", id, inPolicy)
		}
	} else {
		if p.queue[id] == queueNone {
			p.queue[id] = queueSmall
		}
		p.list(id).pushBack(id)
	}
	p.evictable[id] = true
	p.n++
}

// Remove marks id referenced; it keeps its place and its counter.
func (p *S3FIFO) Remove(id allocator.BlockID) {
	if !p.small.linked(id) || !p.evictable[id] {
		misuse("S3FIFO", "Remove", id, notInPolicy)
	}
	p.evictable[id] = false
	p.n--
}

// Access counts a hit, up to 3.
func (p *S3FIFO) Access(id allocator.BlockID) {
	p.small.linked(id) // range check
	p.freq[id] = min(p.freq[id]+1, s3MaxFreq)
}

// Hint records id's new content key and chooses its queue: M if the key is
// a ghost, else S.
func (p *S3FIFO) Hint(id allocator.BlockID, h Hint) {
	if p.small.linked(id) && p.evictable[id] {
		misuse("S3FIFO", "Hint", id, inPolicy)
	}
	p.Forget(id)
	p.key[id], p.keyed[id] = h.Key, true
	p.queue[id] = queueSmall
	if l, s := p.g.find(h.Key); l >= 0 {
		p.g.remove(s)
		p.queue[id] = queueMain
	}
}

// Forget drops id's place, counter and key: its content is gone.
func (p *S3FIFO) Forget(id allocator.BlockID) {
	if p.small.linked(id) {
		if p.evictable[id] {
			misuse("S3FIFO", "Forget", id, inPolicy)
		}
		p.list(id).remove(id)
	}
	p.reset(id)
}

func (p *S3FIFO) reset(id allocator.BlockID) {
	p.queue[id], p.freq[id], p.keyed[id] = queueNone, 0, false
}

// Victim evicts from S while S holds its share of the pool (or M is
// empty), else from M.
func (p *S3FIFO) Victim() (allocator.BlockID, bool) {
	if p.n == 0 {
		return allocator.NoBlock, false
	}
	for {
		if p.small.n > 0 && (p.small.n >= p.smallMax || p.main.n == 0) {
			id, _ := p.small.popFront()
			switch {
			case !p.evictable[id]:
			case p.freq[id] >= s3Promote:
				p.queue[id], p.freq[id] = queueMain, 0
				p.main.pushBack(id)
			default:
				if p.keyed[id] {
					p.g.add(0, p.key[id])
				}
				return p.evict(id), true
			}
			continue
		}
		id, _ := p.main.popFront()
		switch {
		case !p.evictable[id]:
		case p.freq[id] > 0:
			p.freq[id]--
			p.main.pushBack(id)
		default:
			return p.evict(id), true
		}
	}
}

func (p *S3FIFO) evict(id allocator.BlockID) allocator.BlockID {
	p.evictable[id] = false
	p.n--
	p.reset(id)
	return id
}

// Len returns the number of evictable blocks.
func (p *S3FIFO) Len() int { return p.n }

// Contains reports whether id is evictable.
func (p *S3FIFO) Contains(id allocator.BlockID) bool {
	return p.small.linked(id) && p.evictable[id]
}
