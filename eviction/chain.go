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
	chainTurns = 3
	// chainRuns is the number of turn-size classes: a turn that added r
	// blocks to its chain is in class bits.Len(r), capped, so 0, 1, 2-3,
	// 4-7, ..., 64 or more blocks.
	chainRuns = 8
	// chainClasses counts every class: turn class x turn-size class x
	// whether the block was its request's last (released first).
	chainClasses = chainTurns * chainRuns * 2
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
	lists   []list // one per class, oldest release first
	cls     []uint8
	ctrn    []uint16 // turn of the chain each held block was released with
	crun    []uint16 // size of that turn
	stamp   []int64  // release time of each held block
	now     int64    // releases so far
	started bool     // the release under way has recorded its turn's start
	cut     [3]int32 // depths of its record blocks below the last
	last    allocator.BlockID

	// Content state, from Hint until the content goes.
	turn   []uint16
	run    []uint16 // blocks from its turn's first block to this one
	depth  []int32
	hit    []bool // hit since committed
	key    []uint64
	keyed  []bool
	parent []allocator.BlockID
	pgen   []uint32 // parent's generation when hinted
	gen    []uint32 // bumped whenever a block's content changes

	// Release records: one for the last block of each released request and
	// one for the block above it, standing for the rest of the request,
	// keyed by content and kept for window releases whether or not the
	// blocks stay cached.
	recs    ghost
	rcls    []uint8 // per record slot
	rturn   []uint16
	rweight []float64
	rstamp  []int64
	rseq    []uint32 // bumped each time the slot opens a record
	// Each held block's record: the slot and its sequence number then.
	brec []int32
	bseq []uint32

	reuse [chainClasses][chainBuckets]float64 // closed by a reuse, by age
	cens  [chainClasses][chainBuckets]float64 // closed unreused, by age
	open  [chainClasses][chainBuckets]float64 // scratch for rebuild
	score [chainClasses][chainBuckets]float64
	// outcomes counts block outcomes since the last halving, fresh since
	// the last table rebuild.
	outcomes, fresh, total float64
	capacity               int64
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
	prev, next := links(capacity, chainClasses)
	p := &Chain{
		lists:    make([]list, chainClasses),
		cls:      make([]uint8, capacity),
		ctrn:     make([]uint16, capacity),
		crun:     make([]uint16, capacity),
		stamp:    make([]int64, capacity),
		last:     allocator.NoBlock,
		turn:     make([]uint16, capacity),
		run:      make([]uint16, capacity),
		depth:    make([]int32, capacity),
		hit:      make([]bool, capacity),
		key:      make([]uint64, capacity),
		keyed:    make([]bool, capacity),
		parent:   make([]allocator.BlockID, capacity),
		pgen:     make([]uint32, capacity),
		gen:      make([]uint32, capacity),
		recs:     newGhost(capacity, 1),
		capacity: int64(max(capacity, 1)),
	}
	for c := range p.lists {
		p.lists[c] = newList(prev, next, capacity, capacity+c)
	}
	for i := range p.parent {
		p.parent[i] = allocator.NoBlock
	}
	slots := len(p.recs.keys)
	p.rcls = make([]uint8, slots)
	p.rturn = make([]uint16, slots)
	p.rweight = make([]float64, slots)
	p.rstamp = make([]int64, slots)
	p.rseq = make([]uint32, slots)
	p.brec = make([]int32, capacity)
	p.bseq = make([]uint32, capacity)
	for i := range p.brec {
		p.brec[i] = -1
	}
	return p
}

func (p *Chain) in(id allocator.BlockID) bool { return p.lists[0].linked(id) }

// classOf maps a turn count, the size of that turn and whether the block
// was its request's last to a class.
func classOf(turn, run uint16, tail bool) uint8 {
	c := min(bits.Len16(turn), chainTurns-1)*chainRuns + min(bits.Len16(run), chainRuns-1)
	c *= 2
	if tail {
		c++
	}
	return uint8(c)
}

// Insert releases id. A block released right after its child joins the
// child's class: the request is being released tail first, and its whole
// chain belongs to the request's turn. The first two blocks of such a
// release leave records.
func (p *Chain) Insert(id allocator.BlockID) {
	if p.in(id) {
		misuse("Chain", "Insert", id, inPolicy)
	}
	t, r, tail := p.turn[id], p.run[id], true
	l := p.last
	if l >= 0 && p.parent[l] == id && p.pgen[l] == p.gen[id] {
		t, r, tail = p.ctrn[l], p.crun[l], false
	}
	p.now++
	c := classOf(t, r, tail)
	p.ctrn[id], p.crun[id], p.cls[id], p.stamp[id] = t, r, c, p.now
	p.lists[c].pushBack(id)
	p.brec[id] = -1
	if tail {
		// Where later requests are likely to leave this one: below its
		// last block, where its own turn began, and halfway.
		d := p.depth[id]
		p.cut = [3]int32{d - 1, -1, d / 2}
		if r >= 1 {
			p.cut[1] = d - int32(r)
		}
	}
	d := p.depth[id]
	switch {
	case tail:
		if p.keyed[id] {
			p.brec[id] = p.record(p.key[id], c, t, 1)
		}
	case p.keyed[id] && (d == p.cut[0] || d == p.cut[1] || d == p.cut[2]):
		// A cut block stands for itself and the blocks above it down to
		// the next cut: a later request that leaves this one at a cut
		// or below reaches it.
		lower := int32(-1)
		for _, x := range p.cut {
			if x < d && x > lower {
				lower = x
			}
		}
		p.brec[id] = p.record(p.key[id], c, t, float64(d-lower))
	default:
		p.brec[id] = p.brec[l]
	}
	if s := p.brec[id]; s >= 0 {
		p.bseq[id] = p.rseq[s]
	}
	if tail {
		p.started = false
	}
	if p.keyed[id] && !p.started && p.run[id] <= 1 {
		// The first block of the request's own turn: a record that only
		// tells a later turn recomputing it which turn this was.
		p.started = true
		if _, s := p.recs.find(p.key[id]); s < 0 {
			p.record(p.key[id], c, t, 0)
		}
	}
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

// Access records a prefix hit on id's content: a reuse if the content has
// a record, and in any case a mark that a block committed after it starts
// a new turn.
func (p *Chain) Access(id allocator.BlockID) {
	p.in(id) // range check
	if s := p.brec[id]; s >= 0 && p.bseq[id] == p.rseq[s] && p.recs.which[s] >= 0 && p.rweight[s] >= 1 {
		// One block of a release is asked for again: its share of the
		// record is a reuse now, whatever becomes of the rest.
		p.rweight[s]--
		p.reuse[p.rcls[s]][p.bucket(p.now-p.rstamp[s])]++
		p.recorded(1)
	}
	p.brec[id] = -1
	if p.keyed[id] {
		p.reused(p.key[id])
	}
	p.hit[id] = true
}

// Hint records id's new content: its turn from its parent's (or from its
// record's, if the content is back after an eviction) and how many blocks
// its turn has added so far.
func (p *Chain) Hint(id allocator.BlockID, h Hint) {
	if p.in(id) {
		misuse("Chain", "Hint", id, inPolicy)
	}
	par := h.Parent
	if par >= 0 && par != id {
		p.in(par) // range check before any change
	}
	p.drop(id)
	p.key[id], p.keyed[id], p.depth[id] = h.Key, true, h.Depth
	var t uint16
	r := uint16(1)
	if par >= 0 && par != id {
		p.parent[id], p.pgen[id] = par, p.gen[par]
		t = p.turn[par]
		if p.hit[par] {
			t = inc(t)
		} else {
			r = inc(p.run[par])
		}
	}
	if rt, ok := p.reused(h.Key); ok {
		// The content is back, recomputed after an eviction: its chain was
		// released at turn rt, and this is the next turn, which has added
		// nothing yet.
		t, r = max(t, inc(rt)), 0
	}
	p.turn[id], p.run[id] = t, r
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
	p.turn[id], p.run[id], p.hit[id], p.keyed[id] = 0, 0, false, false
	p.gen[id]++
	if p.last == id {
		p.last = allocator.NoBlock
	}
}

// Victim gives up the oldest block of the class whose oldest block has the
// lowest hit density; ties go to the oldest release.
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
	p.drop(best)
	return best, true
}

// record opens a release record for content key: weight blocks of class c
// released now at turn turn. A record the key already had is closed first,
// unreused.
func (p *Chain) record(key uint64, c uint8, turn uint16, w float64) int32 {
	if _, s := p.recs.find(key); s >= 0 {
		p.close(s, false)
	}
	if p.recs.full() {
		s, _ := p.recs.lists[0].front()
		p.close(int32(s), false)
	}
	p.recs.add(0, key)
	_, s := p.recs.find(key)
	p.rcls[s], p.rturn[s], p.rweight[s], p.rstamp[s] = c, turn, w, p.now
	p.rseq[s]++
	return s
}

// reused closes key's record, if any, as a reuse at its age, and returns
// the turn it was released with.
func (p *Chain) reused(key uint64) (uint16, bool) {
	_, s := p.recs.find(key)
	if s < 0 {
		return 0, false
	}
	t := p.rturn[s]
	p.close(s, true)
	return t, true
}

// close records the outcome of record slot s and frees it.
func (p *Chain) close(s int32, reused bool) {
	c, w := p.rcls[s], p.rweight[s]
	if b := p.bucket(p.now - p.rstamp[s]); reused {
		p.reuse[c][b] += w
	} else {
		p.cens[c][b] += w
	}
	p.recs.remove(s)
	p.recorded(w)
}

// recorded counts w block outcomes: it halves the statistics once per
// window's worth and rebuilds the score table once every table's worth.
func (p *Chain) recorded(w float64) {
	p.outcomes += w
	p.total += w
	if p.outcomes >= float64(p.capacity) {
		p.outcomes = 0
		p.total /= 2
		for c := range p.reuse {
			for b := range p.reuse[c] {
				p.reuse[c][b] /= 2
				p.cens[c][b] /= 2
			}
		}
	}
	p.fresh += w
	if p.fresh > 0 && p.fresh >= p.total/2 {
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

// bucketWidth is the width of age bucket b in sixteenths of the pool.
func bucketWidth(b int) float64 {
	if b < 4 {
		return 1
	}
	return float64(uint64(1) << (b/4 - 1))
}

// rebuild recomputes every class's table: for each age bucket, the hit
// density of content of that class still unused at that age, the best
// over every horizon of reuses expected per unit of cache space held
// until then (LHD's ranking). The chance of reuse in each bucket is
// estimated as Kaplan and Meier do, so records still open or closed
// unreused count as at risk up to their age and no further: nothing is
// assumed about content older than any record has been watched.
func (p *Chain) rebuild() {
	p.open = [chainClasses][chainBuckets]float64{}
	q := &p.recs.lists[0]
	for s := q.next[q.sentinel]; s != q.sentinel; s = q.next[s] {
		p.open[p.rcls[s]][p.bucket(p.now-p.rstamp[s])] += p.rweight[s]
	}
	for c := range p.reuse {
		var mass, space [chainBuckets]float64
		last := -1
		risk := 0.0
		for b := chainBuckets - 1; b >= 0; b-- {
			risk += p.reuse[c][b] + p.cens[c][b] + p.open[c][b]
			mass[b] = risk - (p.cens[c][b]+p.open[c][b])/2 // at risk in b
			if last < 0 && p.reuse[c][b] > 0 {
				last = b
			}
		}
		surv := 1.0
		for b := range chainBuckets {
			h := 0.0
			if mass[b] > 0 {
				h = p.reuse[c][b] / mass[b]
			}
			mass[b] = surv * h
			space[b] = (surv - mass[b]/2) * bucketWidth(b)
			surv -= mass[b]
		}
		for b := range chainBuckets {
			p.score[c][b] = 0
			hits, room := 0.0, 0.0
			for e := b; e <= last; e++ {
				hits += mass[e]
				room += space[e]
				if room > 0 && hits/room > p.score[c][b] {
					p.score[c][b] = hits / room
				}
			}
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
