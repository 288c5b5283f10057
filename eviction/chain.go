package eviction

import (
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

const (
	// chainTurns is the number of turn classes: content of a chain that
	// has been extended after a hit t times is in class bits.Len(t),
	// capped: never, once, more. The largest step in the chance of a
	// return is between chains that have never returned and those that
	// have; finer turn classes split the outcomes more thinly without
	// separating chains better. Where every request starts with a shared
	// block that is always hit (a system prompt), a first turn already
	// counts one return, so in practice the classes are "first turn" and
	// "later turns" (docs/cache.md, second and ninth rounds; a variant
	// that separates them again failed the held-out check).
	chainTurns = 3
	// chainRuns is the number of turn-size classes: a turn that added r
	// blocks to its chain is in class bits.Len(r), capped, so 0, 1, 2-3,
	// 4-7, ..., 64 or more blocks. Octaves, because turn sizes spread over
	// two orders of magnitude.
	chainRuns = 8
	// chainClasses counts every class: turn class x turn-size class x
	// whether the block was its request's last (released first).
	chainClasses = chainTurns * chainRuns * 2 // at most 64: a bit each in Chain.held
	// chainBuckets is the number of age buckets: quarter octaves of the age
	// in sixteenths of a pool turnover, which spans ages from a sixteenth
	// of a turnover to thousands of turnovers.
	chainBuckets = 64
)

// Chain is a conversation-aware policy: it learns, online, how much each
// kind of released content is worth keeping, by how often and how soon
// such content has been asked for again, and gives up first the content
// that promises the fewest hits per block held.
//
// # The idea
//
// In a multi-turn conversation each turn's prompt extends the previous
// one, and a returning turn asks for its whole chain again. Which chains
// return is not random: on the Mooncake conversation trace 30% of first
// turns get a second turn and about half of the later turns another; a
// turn that added one or two blocks (a short follow-up) returns more often
// than one that added a long document; and the last block of a request
// (a partial block, in practice) is almost never asked for again, since
// the next turn rewrites it. LRU knows none of this. Chain sorts every
// released block into a class by three things the manager's hints
// reveal:
//
//   - the chain's turn: a block committed right after a block that had
//     been hit starts a new turn, one more than that block's; a block
//     committed after a block of its own request continues its parent's
//     turn; content recomputed after an eviction resumes the turn its
//     release record (below) remembers, plus one;
//   - the size of that turn, in blocks (how many the request added);
//   - whether the block was its request's last.
//
// When a request is released tail first, every block of it takes the
// class of the request (its turn and size), and its last block the
// last-block class, so a chain is given up tail first within a class.
//
// For each class Chain estimates, by age, the chance that content still
// unused at that age is asked for in the next age bucket (a hazard), as
// a proportional-hazards model does (Cox 1972): one baseline hazard by age
// learned from every class's outcomes, times a factor per class, its
// reuses over those the baseline predicts for it. How soon a user comes
// back is a matter of human pace, much the same for every class; whether
// one comes back is what the classes tell apart, and a factor needs far
// fewer outcomes than a hazard at every age. From the hazard Chain
// computes the hit density of LHD (Beckmann, Chen and Cidon, "LHD:
// Improving Cache Hit Rate by Maximizing Hit Density", NSDI 2018): the most
// hits per block and unit of time that keeping the content for some horizon
// can earn. Victim gives up the lowest, weighing in each class its oldest
// block and its youngest release (see Victim). This is Belady's rule made
// statistical: content expected to be used far in the future, or never,
// costs space for nothing.
//
// A cache sees only the reuses of what it kept, so a class evicted young
// would look useless and stay evicted young. Chain watches outcomes whether
// or not the content stays: each released request leaves release records,
// keyed by the content of a few of its blocks, that outlive the blocks: one
// for its last block, and one at each place a later request is likely to
// leave it (the block above the last, the block before its own turn began,
// and the middle block), each standing for the blocks down to the next. A
// hit on a held block counts at once for its record; a record whose key is
// hit, or recomputed after an eviction, counts its remaining blocks as
// reused at their age. The unit of outcome is the release, not the block: a
// returning turn asks for its whole chain, so the blocks of one release
// come back together or not at all, and counting each as an outcome of its
// own would let one long chain weigh as much as dozens of short ones (the
// design effect of cluster samples, Kish, "Survey Sampling", 1965). Each
// block of a release of n blocks counts 1/n. Records still open, or pushed
// out unreused, count as not reused up to their age and no further, as
// Kaplan and Meier estimate survival with censored observations: nothing is
// assumed about content older than any record has been watched. Where ARC's
// ghost (Megiddo and Modha, FAST 2003) keeps one key per evicted block and
// so sees about one pool turnover past eviction, a few records per request
// see many turnovers for the same memory. Where TinyLFU (Einziger, Friedman
// and Manes, 2017) estimates how often a key recurs, Chain estimates
// whether and when a chain recurs.
//
// # Constants
//
// Nothing is tuned to a trace. The records share a ring of as many slots
// as the pool has blocks (ARC's bound on history), oldest pushed out
// first. Ages are measured in releases (Insert calls) in sixteenths of the
// pool, bucketed by quarter octaves, so statistics mean the same at any
// pool size. They are halved each time as many block outcomes as the pool
// has blocks have been recorded (LHD likewise ages its counts), and the
// tables are rebuilt whenever the outcomes since the last rebuild match
// those before it: often while Chain learns, about once per pool's worth
// later. The class boundaries are octaves and a cap, each explained where
// it is declared. Until the first reuse is recorded every score is zero
// and ties go to the oldest release, so Chain starts as LRU; without hints
// every block is in one class and Chain stays LRU.
//
// # Cost
//
// Each class keeps its blocks in an LRU list, cut into its releases'
// segments (each end linked to the other, kept up to date in O(1) as blocks
// come and go); Victim compares two blocks of each of the (at most 48)
// classes holding blocks, its oldest and its youngest release's deepest,
// by a score read from a table. A rebuild costs one pass over the open records and at most
// chainClasses x chainBuckets^2 steps, paid for by the outcomes since the
// last one (about a pool's worth once Chain has learned), so every
// operation is O(1) amortized, with a constant that is small for pools of
// a few thousand blocks and more; the records' index is a hash table (O(1)
// expected). The chain tree (sibling links, and a count of each block's
// children held; the code Priority uses) is kept in O(1) per operation,
// and marking a subtree as orphans visits each block once per content. Nothing allocates after
// construction; Chain keeps about 160 bytes per block in pools of 2^16
// blocks and more (its tables' fixed part costs more per block in small
// ones).
type Chain struct {
	lists []list // one per class, oldest release first
	held  uint64 // bit c set when class c holds a block
	cls   []uint8
	ctrn  []uint16 // turn of the chain each held block was released with
	crun  []uint16 // size of that turn
	stamp []int64  // release time of each held block
	// A release's blocks in one class form a segment of its list: seg
	// numbers the release, first and final link each segment's ends
	// (first[x] is valid where x ends its segment, final[x] where x
	// starts it).
	seg     []uint64
	first   []allocator.BlockID
	final   []allocator.BlockID
	nrel    uint64
	now     int64    // releases so far
	started bool     // the release under way has recorded its turn's start
	cut     [3]int32 // depths of its record blocks below the last
	last    allocator.BlockID

	// Content state, from Hint until the content goes.
	turn   []uint16
	run    []uint16 // blocks from its turn's first block to this one
	depth  []int32
	hit    []bool   // hit since committed
	key    []uint64 // valid while the chain tree marks the block live
	parent []allocator.BlockID
	pgen   []uint32 // parent's generation when hinted
	gen    []uint32 // bumped whenever a block's content changes

	// Release records, keyed by content, kept until reused or pushed out
	// of the ring whether or not their blocks stay cached.
	recs    ghost
	rcls    []uint8 // per record slot
	rturn   []uint16
	rweight []float64 // blocks the record still stands for
	runit   []float64 // outcome weight of one of them: 1 / the release's blocks
	unit    float64   // runit of the release under way
	rstamp  []int64
	rseq    []uint32 // bumped each time the slot opens a record
	// Each held block's record: the slot and its sequence number then.
	brec []int32
	bseq []uint32

	// The chain tree (see Victim), shared with Priority; a block is live
	// there from its Hint until its content goes. orphansFirst moves held
	// orphans to lists[chainClasses], given up before any class;
	// leavesFirst prefers, among Victim's candidates, those with no child
	// held. Both are on; tests turn them off to see the rest of Victim's
	// rule.
	tree                      chainTree[struct{}]
	orphansFirst, leavesFirst bool

	reuse [chainClasses][chainBuckets]float64 // closed by a reuse, by age
	cens  [chainClasses][chainBuckets]float64 // closed unreused, by age
	open  [chainClasses][chainBuckets]float64 // scratch for rebuild
	risk  [chainClasses][chainBuckets]float64 // scratch for rebuild
	score [chainClasses][chainBuckets]float64
	// outcomes counts block outcomes since the last halving, fresh since
	// the last table rebuild.
	outcomes, fresh, total float64
	capacity               int64
	perU                   float64 // 16 / capacity
}

// Chain.held has a bit per class.
var _ [64 - chainClasses]struct{}

var (
	_ Policy    = (*Chain)(nil)
	_ Accessor  = (*Chain)(nil)
	_ Forgetter = (*Chain)(nil)
	_ Hinter    = (*Chain)(nil)
)

// NewChain returns an empty Chain policy for block IDs in [0, capacity).
func NewChain(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, chainClasses+1)
	p := &Chain{
		lists:        make([]list, chainClasses+1),
		cls:          make([]uint8, capacity),
		ctrn:         make([]uint16, capacity),
		crun:         make([]uint16, capacity),
		stamp:        make([]int64, capacity),
		seg:          make([]uint64, capacity),
		first:        make([]allocator.BlockID, capacity),
		final:        make([]allocator.BlockID, capacity),
		last:         allocator.NoBlock,
		turn:         make([]uint16, capacity),
		run:          make([]uint16, capacity),
		depth:        make([]int32, capacity),
		hit:          make([]bool, capacity),
		key:          make([]uint64, capacity),
		parent:       make([]allocator.BlockID, capacity),
		pgen:         make([]uint32, capacity),
		gen:          make([]uint32, capacity),
		recs:         newGhost(capacity, 1),
		orphansFirst: true,
		leavesFirst:  true,
		capacity:     int64(max(capacity, 1)),
		perU:         16 / float64(max(capacity, 1)),
	}
	for c := range p.lists {
		p.lists[c] = newList(ln, capacity, capacity+c)
	}
	p.tree = newChainTree[struct{}](capacity, ln, p)
	for i := range p.parent {
		p.parent[i] = allocator.NoBlock
	}
	slots := len(p.recs.keys)
	p.rcls = make([]uint8, slots)
	p.rturn = make([]uint16, slots)
	p.rweight = make([]float64, slots)
	p.runit = make([]float64, slots)
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

// keyed reports whether id holds hinted content (its key is valid).
func (p *Chain) keyed(id allocator.BlockID) bool { return p.tree.node[id].live }

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
// chain belongs to the request's turn. The release's last block and its
// cut blocks (see Chain) open records, and the first block of the
// request's own turn one that only tells a later turn recomputing it
// which turn this was.
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
	if tail {
		p.nrel++
	}
	p.seg[id] = p.nrel
	q := &p.lists[c]
	if b := q.links[q.sentinel].prev; b != q.sentinel && p.seg[b] == p.nrel {
		// The release continues its segment.
		f := p.first[b]
		p.first[id], p.final[f] = f, id
	} else {
		p.first[id], p.final[id] = id, id
	}
	q.pushBack(id)
	p.held |= 1 << c
	p.brec[id] = -1
	if tail {
		// Where later requests are likely to leave this one: below its
		// last block, where its own turn began, and halfway.
		d := max(p.depth[id], 0)
		// The release hands over its chain, depth 0 to d, tail first
		// (counted in float64: d+1 overflows int32 at the largest depth).
		p.unit = 1 / (float64(d) + 1)
		p.cut = [3]int32{d - 1, -1, d / 2}
		if r >= 1 {
			p.cut[1] = d - int32(r)
		}
	}
	d := p.depth[id]
	switch {
	case tail:
		if p.keyed(id) {
			p.brec[id] = p.record(p.key[id], c, t, 1)
		}
	case p.keyed(id) && (d == p.cut[0] || d == p.cut[1] || d == p.cut[2]):
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
	if p.keyed(id) && !p.started && p.run[id] <= 1 {
		// The first block of the request's own turn: a record that only
		// tells a later turn recomputing it which turn this was.
		p.started = true
		if _, s := p.recs.find(p.key[id]); s < 0 {
			p.record(p.key[id], c, t, 0)
		}
	}
	p.last = id
	p.tree.enter(id)
	// Released after its chain lost an ancestor (one forgotten while this
	// block was in use)?
	p.toOrphans(id)
}

// Remove takes id out; its content keeps its turn count.
func (p *Chain) Remove(id allocator.BlockID) {
	if !p.in(id) {
		misuse("Chain", "Remove", id, notInPolicy)
	}
	p.unlink(id)
	p.last = allocator.NoBlock
}

// Access records a prefix hit on id's content: a reuse of one block of
// the release that last held it, a reuse of the rest if the content keys
// a record, and in any case a mark that a block committed after it
// starts a new turn.
func (p *Chain) Access(id allocator.BlockID) {
	p.in(id) // range check
	if s := p.brec[id]; s >= 0 && p.bseq[id] == p.rseq[s] && p.recs.which[s] >= 0 && p.rweight[s] >= 1 {
		// One block of a release is asked for again: its share of the
		// record is a reuse now, whatever becomes of the rest.
		p.rweight[s]--
		p.reuse[p.rcls[s]][p.bucket(p.now-p.rstamp[s])] += p.runit[s]
		p.recorded(1)
	}
	p.brec[id] = -1
	if p.keyed(id) {
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
	if par != allocator.NoBlock {
		p.in(par) // range check before any change, as LeafLRU's
	}
	p.drop(id)
	p.tree.hint(id, par)
	p.key[id], p.depth[id] = h.Key, h.Depth
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

// drop forgets what id knew of its content, which is not held: the
// blocks below it become orphans, and it leaves its parent.
func (p *Chain) drop(id allocator.BlockID) {
	p.tree.drop(id)
	p.parent[id] = allocator.NoBlock
	p.turn[id], p.run[id], p.hit[id] = 0, 0, false
	p.brec[id] = -1
	p.gen[id]++
	if p.last == id {
		p.last = allocator.NoBlock
	}
}

// Victim gives up an orphan if Chain holds one, else the block of lowest
// hit density among two candidates per class that has no child held,
// else the lowest of the candidates: each class's oldest block, and the
// deepest block of its youngest release (the first of that release's
// segment, released first: its chain's tail end). Ties go to the oldest
// release.
//
// An orphan is a block whose parent's content went (evicted, overwritten
// or forgotten), or one below such a block: a prefix lookup stops at the
// first miss, so it cannot be hit until a request recomputes the whole
// prefix above it, and holding it is worth nothing until then. Giving up
// a block with a child held would make orphans of the child and the
// blocks below it, so a leaf goes first whatever the scores: the rule of
// the Priority policy (and of vLLM, which frees a request's blocks tail
// first), here among Victim's candidates, so that Victim stays O(classes).
//
// Two candidates, because a class's hit density need not fall with age: a
// returning user comes back after a pause, so content just released may
// wait longer for its next hit than content released a minute ago, and
// the density rises with age over the pause before it falls. A density
// that rises and then falls is lowest, over any range of ages, at one of
// the range's ends: the oldest block or the youngest release.
func (p *Chain) Victim() (allocator.BlockID, bool) {
	if o, ok := p.lists[chainClasses].front(); ok {
		return p.evict(o)
	}
	var best, leaf candidate
	best.id, leaf.id = allocator.NoBlock, allocator.NoBlock
	for m := p.held; m != 0; m &= m - 1 {
		c := bits.TrailingZeros64(m)
		q := &p.lists[c]
		f := allocator.BlockID(q.links[q.sentinel].next)
		bf := p.bucket(p.now - p.stamp[f])
		p.consider(&best, &leaf, f, p.score[c][bf])
		// The youngest release's deepest block; in the oldest block's
		// bucket it scores the same and loses the tie.
		y := p.first[q.links[q.sentinel].prev]
		if by := p.bucket(p.now - p.stamp[y]); by != bf {
			p.consider(&best, &leaf, y, p.score[c][by])
		}
	}
	if p.leavesFirst && leaf.id >= 0 {
		best = leaf
	}
	return p.evict(best.id)
}

// candidate is a block Victim weighs and its score.
type candidate struct {
	id    allocator.BlockID
	score float64
}

// consider weighs x, of score s, against the best candidate so far and,
// when x has no child in the policy, the best such.
func (p *Chain) consider(best, leaf *candidate, x allocator.BlockID, s float64) {
	if best.id < 0 || s < best.score || (s == best.score && p.stamp[x] < p.stamp[best.id]) {
		*best = candidate{x, s}
	}
	if p.tree.node[x].kids == 0 && (leaf.id < 0 || s < leaf.score || (s == leaf.score && p.stamp[x] < p.stamp[leaf.id])) {
		*leaf = candidate{x, s}
	}
}

// evict gives up best, if any.
func (p *Chain) evict(best allocator.BlockID) (allocator.BlockID, bool) {
	if best < 0 {
		return allocator.NoBlock, false
	}
	p.unlink(best)
	p.drop(best)
	return best, true
}

// unlink takes id out of the policy.
func (p *Chain) unlink(id allocator.BlockID) {
	p.tree.leave(id)
	p.unlist(id)
}

// unlist takes id off its class's list, or the orphans'.
func (p *Chain) unlist(id allocator.BlockID) {
	c := p.cls[id]
	if c == chainClasses {
		p.lists[c].remove(id)
		return
	}
	q := &p.lists[c]
	pv, nx := q.links[id].prev, q.links[id].next
	starts := pv == q.sentinel || p.seg[pv] != p.seg[id]
	ends := nx == q.sentinel || p.seg[nx] != p.seg[id]
	switch {
	case starts && !ends: // the next block starts the segment
		e := p.final[id]
		p.final[nx], p.first[e] = e, allocator.BlockID(nx)
	case ends && !starts: // the previous block ends it
		f := p.first[id]
		p.first[pv], p.final[f] = f, allocator.BlockID(pv)
	}
	q.remove(id)
	if p.lists[c].n == 0 {
		p.held &^= 1 << c
	}
}

// unhome does nothing: a class's list does not depend on the chain tree
// (treeOwner).
func (p *Chain) unhome(allocator.BlockID) {}

// rehome moves id to the orphans' list if it has just become an orphan
// (treeOwner).
func (p *Chain) rehome(id allocator.BlockID, _ bool) { p.toOrphans(id) }

// toOrphans moves held id, if it is an orphan, from its class's list to
// the orphans', when orphans go first.
func (p *Chain) toOrphans(id allocator.BlockID) {
	if !p.orphansFirst || !p.tree.node[id].orphan || p.cls[id] == chainClasses {
		return
	}
	p.unlist(id)
	p.cls[id] = chainClasses
	p.lists[chainClasses].pushBack(id)
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
	p.runit[s] = p.unit
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
		p.reuse[c][b] += w * p.runit[s]
	} else {
		p.cens[c][b] += w * p.runit[s]
	}
	p.recs.remove(s)
	p.recorded(w)
}

// recorded counts w block outcomes: it halves the statistics once per
// pool's worth and rebuilds the score tables whenever the outcomes since
// the last rebuild weigh as much as those before it.
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
	return bucketOfU(uint64(float64(max(age, 0)) * p.perU))
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
// until then (LHD's ranking).
//
// The chance of reuse by age (the hazard) follows a proportional-hazards
// model (Cox, "Regression models and life-tables", 1972): every class
// shares one baseline hazard, estimated from the outcomes of all classes
// pooled, and a class differs from it by one factor, the reuses its
// records saw over those the baseline predicts for them (the standardized
// ratio O/E, which is the factor's maximum-likelihood estimate given the
// baseline). When a user comes back is a matter of human pace, much the
// same for every kind of content; whether one comes back at all is what
// the classes tell apart. So the shape by age is learned from every
// outcome, and each class needs only enough outcomes to fix its level: a
// class seen young, or rarely, is not taken for worthless at ages its own
// records have not reached. At-risk counts follow Kaplan and Meier: records
// still open or closed unreused count as at risk up to their age and no
// further, so nothing is assumed about content older than any record has
// been watched.
func (p *Chain) rebuild() {
	p.open = [chainClasses][chainBuckets]float64{}
	q := &p.recs.lists[0]
	for s := q.links[q.sentinel].next; s != q.sentinel; s = q.links[s].next {
		p.open[p.rcls[s]][p.bucket(p.now-p.rstamp[s])] += p.rweight[s] * p.runit[s]
	}
	// The outcomes at risk in each class and bucket (a censored outcome
	// counts half in its own bucket), and the baseline hazard of every
	// class pooled.
	var atRisk, reused [chainBuckets]float64
	for c := range p.reuse {
		risk := 0.0
		for b := chainBuckets - 1; b >= 0; b-- {
			risk += p.reuse[c][b] + p.cens[c][b] + p.open[c][b]
			p.risk[c][b] = risk - (p.cens[c][b]+p.open[c][b])/2
			atRisk[b] += p.risk[c][b]
			reused[b] += p.reuse[c][b]
		}
	}
	var base [chainBuckets]float64
	last := -1 // the oldest bucket in which anything was reused
	for b := range chainBuckets {
		if atRisk[b] > 0 {
			base[b] = reused[b] / atRisk[b]
		}
		if reused[b] > 0 {
			last = b
		}
	}
	for c := range p.reuse {
		obs, exp := 0.0, 0.0
		for b := range chainBuckets {
			obs += p.reuse[c][b]
			exp += p.risk[c][b] * base[b]
		}
		ratio := 0.0
		if exp > 0 {
			ratio = obs / exp
		}
		var mass, space [chainBuckets]float64
		surv := 1.0
		for b := range chainBuckets {
			mass[b] = surv * min(base[b]*ratio, 1)
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
