package eviction

import (
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

const (
	// chainClasses is the number of turn classes: a chain extended t times
	// is in class bits.Len(t), capped, so classes are 0, 1, 2-3, 4-7, 8-15
	// and 16 or more turns. Classes double in width because the chains
	// that reach many turns get fewer; each class keeps enough samples to
	// learn from.
	chainClasses = 6
	// chainBuckets is the number of age buckets: quarter octaves of the age
	// in sixteenths of a pool turnover, which spans ages from a sixteenth
	// of a turnover to thousands of turnovers.
	chainBuckets = 64
)

// Chain is a conversation-aware policy: it learns, online, how likely the
// content of a prefix chain is to be asked for again given how many turns
// the chain has had and how long it has sat unused, and gives up first the
// chain least likely to return.
//
// # The idea
//
// In a multi-turn conversation each turn's prompt extends the previous
// one, so a chain that has been extended before is more likely to be
// extended again (on the Mooncake conversation trace 30% of first turns
// get a second, and about half of the third turns a fourth), and a chain
// that has sat unused past the usual gap between turns is less likely to.
// LRU uses only the second signal. Chain counts a chain's turns from what
// the manager reports: a block committed right after a block that had been
// hit starts a new turn (one more than that block's); a block committed
// after a block of its own request continues its parent's turn; content
// committed again while its key is still in the ghost (below) resumes the
// turn its chain had when it was evicted, plus one. When a request is
// released tail first, the blocks of its prefix take the turn of the
// request's last block, so a chain keeps one class up to its head and is
// still given up tail first within it.
//
// A block's score is the probability that content of its turn class,
// still unused at its age, is reused at all: learned from a histogram per
// class of the ages at which content was reused and a count of content
// never reused, in the manner of LHD's per-class age histograms (Beckmann,
// Chen and Cidon, "LHD: Improving Cache Hit Rate by Maximizing Hit
// Density", NSDI 2018). A cache sees only reuses of what it kept, so a
// class evicted young would look useless and keep being evicted young;
// Chain closes that loop with a ghost of evicted content keys, as ARC
// does (Megiddo and Modha, FAST 2003): content committed again while its
// key is in the ghost counts as reused at its true age, and a key pushed
// out of the ghost unreused counts as never reused. Where TinyLFU
// (Einziger, Friedman and Manes, 2017) estimates how often a key recurs,
// Chain estimates whether a chain recurs: in a prefix cache a returning
// turn asks for its whole chain, so the question is which chains return,
// not which blocks are popular.
//
// # Constants
//
// Nothing is tuned to a trace. The ghost holds as many keys as the pool
// has blocks (ARC's bound). Ages are measured in releases (Insert calls)
// in sixteenths of the pool, bucketed by quarter octaves, so statistics
// mean the same at any pool size. They are halved each time as many
// outcomes as the pool has blocks have been recorded (LHD likewise ages
// its counts once per reconfiguration). Turn classes are 0, 1, 2-3, 4-7,
// 8-15 and 16 or more: the counts thin out as turns grow, so classes double
// in width. Until the first reuse is recorded every score is zero and ties
// go to the oldest release, so Chain starts as LRU; without hints every
// block is in one class and Chain stays LRU.
//
// # Cost
//
// Each class keeps its blocks in an LRU list; Victim compares the oldest
// block of each of the six classes by a score read from a table, which is
// rebuilt after every chainClasses*chainBuckets recorded outcomes (or
// one pool's worth, if fewer), so each outcome pays for at most one table
// cell. Every operation is O(1), amortized for the table and expected for
// the ghost's hash index; nothing allocates after construction.
type Chain struct {
	lists []list // one per class, oldest release first
	cls   []uint8
	ctrn  []uint16 // turn of the chain each held block was released with
	stamp []int64  // release time of each held block
	now   int64    // releases so far
	last  allocator.BlockID

	// Content state, from Hint until the content goes.
	turn   []uint16
	hit    []bool // hit since committed
	key    []uint64
	keyed  []bool
	parent []allocator.BlockID
	pgen   []uint32 // parent's generation when hinted
	gen    []uint32 // bumped whenever a block's content changes

	ghost  ghost
	gcls   []uint8 // per ghost slot
	gturn  []uint16
	gstamp []int64

	reuse [chainClasses][chainBuckets]float64
	never [chainClasses]float64
	score [chainClasses][chainBuckets]float64
	// outcomes counts outcomes since the last halving, fresh since the
	// last table rebuild.
	outcomes, fresh int
	halfLife        int
	capacity        int64
}

var (
	_ Policy    = (*Chain)(nil)
	_ Accessor  = (*Chain)(nil)
	_ Forgetter = (*Chain)(nil)
	_ Hinter    = (*Chain)(nil)
)

// NewChain returns an empty Chain policy for block IDs in [0, capacity).
func NewChain(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, chainClasses)
	p := &Chain{
		lists:    make([]list, chainClasses),
		cls:      make([]uint8, capacity),
		ctrn:     make([]uint16, capacity),
		stamp:    make([]int64, capacity),
		last:     allocator.NoBlock,
		turn:     make([]uint16, capacity),
		hit:      make([]bool, capacity),
		key:      make([]uint64, capacity),
		keyed:    make([]bool, capacity),
		parent:   make([]allocator.BlockID, capacity),
		pgen:     make([]uint32, capacity),
		gen:      make([]uint32, capacity),
		ghost:    newGhost(capacity, 1),
		halfLife: max(capacity, 1),
		capacity: int64(max(capacity, 1)),
	}
	for c := range p.lists {
		p.lists[c] = newList(ln, capacity, capacity+c)
	}
	for i := range p.parent {
		p.parent[i] = allocator.NoBlock
	}
	slots := len(p.ghost.keys)
	p.gcls = make([]uint8, slots)
	p.gturn = make([]uint16, slots)
	p.gstamp = make([]int64, slots)
	return p
}

func (p *Chain) in(id allocator.BlockID) bool { return p.lists[0].linked(id) }

// classOf maps a turn count to its class.
func classOf(turn uint16) uint8 {
	return uint8(min(bits.Len16(turn), chainClasses-1))
}

// Insert releases id. A block released right after its child joins the
// child's class: the request is being released tail first, and its whole
// chain belongs to the request's turn.
func (p *Chain) Insert(id allocator.BlockID) {
	if p.in(id) {
		misuse("Chain", "Insert", id, inPolicy)
	}
	t := p.turn[id]
	if l := p.last; l >= 0 && p.parent[l] == id && p.pgen[l] == p.gen[id] {
		t = p.ctrn[l]
	}
	p.now++
	p.ctrn[id], p.cls[id], p.stamp[id] = t, classOf(t), p.now
	p.lists[p.cls[id]].pushBack(id)
	p.last = id
}

// Remove takes id out; its content keeps its turn count.
func (p *Chain) Remove(id allocator.BlockID) {
	if !p.in(id) {
		misuse("Chain", "Remove", id, notInPolicy)
	}
	p.lists[p.cls[id]].remove(id)
	p.last = allocator.NoBlock
}

// Access records a prefix hit on id's content: a reuse at its age when
// the block is evictable, and in any case a mark that a block committed
// after it starts a new turn.
func (p *Chain) Access(id allocator.BlockID) {
	if p.in(id) {
		p.observe(p.cls[id], p.now-p.stamp[id])
	}
	p.hit[id] = true
}

// Hint records id's new content: its turn from its parent's, its place
// among its parent's children, and a reuse if its key is in the ghost.
func (p *Chain) Hint(id allocator.BlockID, h Hint) {
	if p.in(id) {
		misuse("Chain", "Hint", id, inPolicy)
	}
	par := h.Parent
	if par >= 0 && par != id {
		p.in(par) // range check before any change
	}
	p.drop(id)
	p.key[id], p.keyed[id] = h.Key, true
	var t uint16
	if par >= 0 && par != id {
		p.parent[id], p.pgen[id] = par, p.gen[par]
		t = p.turn[par]
		if p.hit[par] {
			t = inc(t)
		}
	}
	if _, s := p.ghost.find(h.Key); s >= 0 {
		// The content is back: its chain was released at turn gturn and a
		// new turn recomputes it.
		p.observe(p.gcls[s], p.now-p.gstamp[s])
		t = max(t, inc(p.gturn[s]))
		p.ghost.remove(s)
	}
	p.turn[id] = t
}

// inc adds one turn, saturating.
func inc(t uint16) uint16 {
	if t < 1<<16-1 {
		t++
	}
	return t
}

// Forget drops id's content.
func (p *Chain) Forget(id allocator.BlockID) {
	if p.in(id) {
		misuse("Chain", "Forget", id, inPolicy)
	}
	p.drop(id)
}

// drop forgets what id knew of its content.
func (p *Chain) drop(id allocator.BlockID) {
	p.parent[id] = allocator.NoBlock
	p.turn[id], p.hit[id], p.keyed[id] = 0, false, false
	p.gen[id]++
	if p.last == id {
		p.last = allocator.NoBlock
	}
}

// Victim gives up the oldest block of the class whose oldest block has the
// lowest hit density; ties go to the oldest release. The content's key
// joins the ghost.
func (p *Chain) Victim() (allocator.BlockID, bool) {
	best, bestScore := allocator.NoBlock, 0.0
	for c := range p.lists {
		f, ok := p.lists[c].front()
		if !ok {
			continue
		}
		s := p.score[c][p.bucket(p.now-p.stamp[f])]
		if best < 0 || s < bestScore || (s == bestScore && p.stamp[f] < p.stamp[best]) {
			best, bestScore = f, s
		}
	}
	if best < 0 {
		return allocator.NoBlock, false
	}
	p.lists[p.cls[best]].remove(best)
	if p.keyed[best] {
		p.remember(p.key[best], p.cls[best], p.ctrn[best], p.stamp[best])
	}
	p.drop(best)
	return best, true
}

// remember adds an evicted content key to the ghost; a key pushed out
// unreused counts as never reused.
func (p *Chain) remember(key uint64, c uint8, turn uint16, stamp int64) {
	if _, s := p.ghost.find(key); s >= 0 {
		p.ghost.remove(s)
	}
	if p.ghost.full() {
		s, _ := p.ghost.lists[0].front()
		p.never[p.gcls[s]]++
		p.recorded()
	}
	p.ghost.add(0, key)
	_, s := p.ghost.find(key)
	p.gcls[s], p.gturn[s], p.gstamp[s] = c, turn, stamp
}

// observe records a reuse of class c content at age age.
func (p *Chain) observe(c uint8, age int64) {
	p.reuse[c][p.bucket(age)]++
	p.recorded()
}

// recorded counts one outcome: it halves the statistics once per
// half-life and rebuilds the score table once every table's worth.
func (p *Chain) recorded() {
	p.outcomes++
	if p.outcomes >= p.halfLife {
		p.outcomes = 0
		for c := range p.reuse {
			for b := range p.reuse[c] {
				p.reuse[c][b] /= 2
			}
			p.never[c] /= 2
		}
	}
	p.fresh++
	if p.fresh >= chainClasses*chainBuckets || p.fresh >= p.halfLife {
		p.fresh = 0
		p.rebuild()
	}
}

// bucket maps an age in releases to its bucket: u = 16*age/capacity, then
// u itself below 4 and quarter octaves above.
func (p *Chain) bucket(age int64) int {
	return bucketOfU(uint64(max(age, 0)) * 16 / uint64(p.capacity))
}

func bucketOfU(u uint64) int {
	if u < 4 {
		return int(u)
	}
	l := bits.Len64(u)
	return min(4*(l-2)+int(u>>(l-3)&3), chainBuckets-1)
}

// rebuild recomputes every class's table: for each age bucket, the share
// of the content still unused at that age that was reused later (within
// the ghost's reach) rather than never.
func (p *Chain) rebuild() {
	for c := range p.reuse {
		n := 0.0 // reuses at this age or later
		for b := chainBuckets - 1; b >= 0; b-- {
			n += p.reuse[c][b]
			p.score[c][b] = 0
			if n > 0 {
				p.score[c][b] = n / (n + p.never[c])
			}
		}
		if c > 0 && n+p.never[c] == 0 {
			// No outcome yet: a class first reached borrows the table of
			// the class below rather than looking worthless.
			p.score[c] = p.score[c-1]
		}
	}
}

// Len returns the number of blocks held.
func (p *Chain) Len() int {
	n := 0
	for c := range p.lists {
		n += p.lists[c].n
	}
	return n
}

// Contains reports whether id is held.
func (p *Chain) Contains(id allocator.BlockID) bool { return p.in(id) }
