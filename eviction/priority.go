package eviction

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// MaxPriority is the highest retention level a Hint may carry.
const MaxPriority = 100

// Priority is the retention-priority LRU of TensorRT-LLM's KV cache
// manager (its "priority-based eviction" with KvCacheRetentionConfig).
// Every block has a level from 0 to 100, DefaultPriority unless its Hint
// says otherwise; all evictable blocks of a lower level go before any of a
// higher one, and within a level the least recently released goes first.
//
// A Hint may give the level an expiry tick: when the caller's Advance
// reaches it, the content falls back to DefaultPriority; an evictable
// block then joins its new level as the most recently released.
// TensorRT-LLM counts the duration from the block's release
// (evictionPolicy.cpp, LRUEvictionPolicy::releaseBlock); here the manager
// computes the absolute tick from the commit or the hit, and the policy
// only compares it with the logical time it is given.
//
// # Promises follow hits
//
// A level is a promise made to the request that cached the block, and a
// request that reuses the block makes its own (Retain). The block keeps
// the strongest promise in force at each tick: its level is the highest
// of its content's own level (the Hint's, DefaultPriority once that
// lapses) and the levels of the reuse promises not yet lapsed. So a reuse
// never lowers a level, and a reuse at a higher level raises the block
// until that promise lapses, then the block falls back to what the
// earlier promises still say. A block keeps two steps of this staircase
// (a level until a tick, then a lower one until a later tick); a promise
// that would need a third step merges the two lower steps into one, at the
// higher of their levels until the later of their ticks, which keeps more
// than promised, never less. A last step at DefaultPriority, with or
// without an end, is not a step (the block is at DefaultPriority after it
// either way: it is where every block ends once its promises lapse), so it
// never takes part in a merge. TensorRT-LLM instead lets the last claimer's level replace the
// block's (evictionPolicy.cpp, LRUEvictionPolicy::claimBlock, called from
// WindowBlockManager::loadOrAllocateBlocks with the reusing request's
// per-block retention), so a later low-priority request can revoke an
// earlier request's promise.
//
// # Chains
//
// Hint's Parent links a block to the block holding the previous block of
// its chain. A prefix lookup stops at the first miss, so a block is worth
// nothing once its parent's content is gone. Two rules keep the cache
// prefix-closed:
//
//   - a block with a child in the policy is never the victim: the subtree
//     goes leaf first, so a parent's effective level is the highest of its
//     own and its evictable descendants'. A parent whose last evictable
//     child is evicted takes that child's place, the front of its level
//     (it was released with or after the child, tail first).
//   - a block whose parent content was given up (its parent was the victim
//     while the child was referenced, or was forgotten) is an orphan, as
//     is every block below it: orphans go before any level.
//
// TensorRT-LLM frees a reclaimed block's descendants from its radix tree
// (kvCacheManager.cpp, WindowBlockManager::getFreeBlock and freeChildren),
// whatever their priority; here the low-priority parent of a high-priority
// child stays, so the child's promise holds and it stays reachable. A
// block whose parent is a duplicate of other cached content (two blocks
// with one hash) may be taken for an orphan while the duplicate keeps it
// reachable: it is then given up early, never wrongly kept.
//
// Insert, Remove, Hint, Retain and Victim are O(1), apart from the
// orphaning of a subtree, which visits each block once per content
// (amortized O(1)); Victim finds the lowest level through a two-word
// occupancy bitmap; Advance is amortized O(1) per block that lapses or is
// pending (see expiry). Nothing allocates after NewPriority.
type Priority struct {
	levels [MaxPriority + 1]list
	// orphans are candidates whose chain lost an ancestor, evicted first;
	// inner are blocks with a child in the policy, never victims.
	orphans, inner list
	occ            [2]uint64
	// tree is the chain tree, each block's record holding its levels too
	// (one 24-byte record per block, so that the operations on a block
	// touch one record); lowerAt is when each block's lower step lapses in
	// turn (never for no end), read only when promises change.
	tree    chainTree[plevels]
	lowerAt []int64
	exp     expiry
	lapse   func(allocator.BlockID) // p.revert, bound once so Advance does not allocate
	now     int64
	n       int
	retains uint64
}

// plevels is a block's level and the level of the promise step after the
// current one lapses (noStep for none).
type plevels struct {
	level, lower uint8
}

const (
	noStep = math.MaxUint8
	never  = math.MaxInt64
)

var (
	_ Policy    = (*Priority)(nil)
	_ Forgetter = (*Priority)(nil)
	_ Hinter    = (*Priority)(nil)
	_ Ticker    = (*Priority)(nil)
	_ Retainer  = (*Priority)(nil)
)

// Retainer is implemented by policies that keep a block for the requests
// that reuse it (Priority). The manager calls Retain when a request that
// asked for retention claims a cached block through a prefix hit, after
// claiming it: priority is the request's level in [0, MaxPriority] and
// expires the tick its promise lapses (0: never). It calls it too when
// content offloaded to a host tier comes back to the device, with the
// promise the content had when it left.
type Retainer interface {
	Retain(id allocator.BlockID, priority int, expires int64)
}

// NewPriority returns an empty priority LRU for block IDs in [0, capacity).
func NewPriority(capacity int) Policy {
	capacity = max(capacity, 0)
	ln := links(capacity, MaxPriority+3)
	p := &Priority{lowerAt: make([]int64, capacity), exp: newExpiry(capacity)}
	for l := range p.levels {
		p.levels[l] = newList(ln, capacity, capacity+l)
	}
	p.orphans = newList(ln, capacity, capacity+MaxPriority+1)
	p.inner = newList(ln, capacity, capacity+MaxPriority+2)
	p.tree = newChainTree[plevels](capacity, ln, p)
	for i := range p.tree.node {
		p.tree.node[i].x = plevels{level: DefaultPriority, lower: noStep}
	}
	p.lapse = p.revert
	return p
}

// home is the list id belongs on while it is in the policy.
func (p *Priority) home(id allocator.BlockID) *list {
	switch n := &p.tree.node[id]; {
	case n.kids > 0:
		return &p.inner
	case n.orphan:
		return &p.orphans
	}
	return &p.levels[p.tree.node[id].x.level]
}

// push adds id to its home list, at the back (most recently released) or
// the front.
func (p *Priority) push(id allocator.BlockID, front bool) {
	l := p.home(id)
	if front {
		l.pushFront(id)
	} else {
		l.pushBack(id)
	}
	if lv := p.tree.node[id].x.level; l == &p.levels[lv] {
		p.occ[lv/64] |= 1 << (lv % 64)
	}
	p.n++
}

// unlink takes id off its home list; the state home reads must not have
// changed since push.
func (p *Priority) unlink(id allocator.BlockID) {
	l := p.home(id)
	l.remove(id)
	if lv := p.tree.node[id].x.level; l == &p.levels[lv] && l.n == 0 {
		p.occ[lv/64] &^= 1 << (lv % 64)
	}
	p.n--
}

// Insert adds id as the most recently released block of its level; its
// parent, if it is in the policy, stops being a candidate.
func (p *Priority) Insert(id allocator.BlockID) {
	if p.levels[0].linked(id) {
		misuse("Priority", "Insert", id, inPolicy)
	}
	// A candidate parent becomes inner; one already inner stays.
	p.tree.enter(id)
	p.push(id, false)
}

// unhome takes held id off its home list before the chain tree changes
// what decides it (treeOwner).
func (p *Priority) unhome(id allocator.BlockID) { p.unlink(id) }

// rehome puts id back on its home list after the chain tree's change
// (treeOwner).
func (p *Priority) rehome(id allocator.BlockID, front bool) { p.push(id, front) }

// leveled reports whether id is in the policy on a level's list, the one
// its level decides (not inner, not an orphan).
func (p *Priority) leveled(id allocator.BlockID) bool {
	return p.levels[0].linked(id) && p.tree.node[id].kids == 0 && !p.tree.node[id].orphan
}

// Remove takes id out; its level stays with its content.
func (p *Priority) Remove(id allocator.BlockID) {
	if !p.levels[0].linked(id) {
		misuse("Priority", "Remove", id, notInPolicy)
	}
	p.unlink(id)
	// A parent left with no child in the policy becomes a candidate at
	// the front of its list, where the child was.
	p.tree.leave(id)
}

// Hint sets the level of id's new content and, when h.Expires is set, when
// it lapses (an expiry at or before the current tick, a negative one
// included, applies at once, as in Retain), and
// links id under h.Parent when that block holds content. A level outside
// [0, 100] is a bug in the caller, which validates user input.
func (p *Priority) Hint(id allocator.BlockID, h Hint) {
	if p.levels[0].linked(id) {
		misuse("Priority", "Hint", id, inPolicy)
	}
	if h.Priority < 0 || h.Priority > MaxPriority {
		panic(fmt.Sprintf("eviction: Priority.Hint of block %d: priority %d outside [0, %d]", id, h.Priority, MaxPriority))
	}
	p.drop(id)
	p.tree.hint(id, h.Parent)
	if h.Expires != 0 && h.Expires <= p.now {
		return
	}
	p.tree.node[id].x.level = uint8(h.Priority)
	if h.Expires > 0 && h.Priority != DefaultPriority {
		p.exp.push(id, h.Expires)
	}
}

// Retain records a promise made by a request that reuses id (Retainer):
// id keeps the highest level of the promises in force. A block in the
// policy on its level's list then joins its level (the new one, if the
// promise raised it) as the most recently released, as a block whose
// level lapses does. A level outside [0, 100] is a bug in the caller.
func (p *Priority) Retain(id allocator.BlockID, priority int, expires int64) {
	in := p.leveled(id)
	if priority < 0 || priority > MaxPriority {
		panic(fmt.Sprintf("eviction: Priority.Retain of block %d: priority %d outside [0, %d]", id, priority, MaxPriority))
	}
	if expires == 0 {
		expires = never
	}
	// The promises in force: the current step, unless it is the default
	// with nothing pending (no promise), the lower step, the new one.
	var s [3]step
	n := 0
	lv := &p.tree.node[id].x
	cur := step{int(lv.level), never}
	if p.exp.queued(id) {
		cur.until = p.exp.at[id]
	}
	if cur.level != DefaultPriority || cur.until != never {
		s[n] = cur
		n++
	}
	if lv.lower != noStep {
		s[n] = step{int(lv.lower), p.lowerAt[id]}
		n++
	}
	if priority <= DefaultPriority {
		// The default is the floor once the content's own level below
		// it (the committing request's) lapses: a promise at or below
		// the default counts only while that lasts. A step at the
		// default counts too: it ends with that level (a promise at the
		// default is cut to it, a merge ends with the lower step), and
		// hides it once it outlasts it.
		var low int64
		for _, x := range s[:n] {
			if x.level <= DefaultPriority {
				low = max(low, x.until)
			}
		}
		expires = min(expires, low)
	}
	if expires <= p.now {
		return
	}
	p.retains++
	s[n] = step{priority, expires}
	n++
	hi, lo, two := staircase(s[:n])
	if in {
		p.unlink(id)
	}
	if p.exp.queued(id) {
		p.exp.remove(id)
	}
	lv.level, lv.lower = uint8(hi.level), noStep
	if hi.until != never {
		p.exp.push(id, hi.until)
	}
	if two {
		lv.lower, p.lowerAt[id] = uint8(lo.level), lo.until
	}
	if in {
		p.push(id, false)
	}
}

// step is a promise: a level until a tick (never: no end).
type step struct {
	level int
	until int64
}

// staircase reduces promises (at most three) to the steps of their
// maximum over time: hi until hi.until, then lo until lo.until when two.
// Dominated promises (no higher and no longer than another) drop out, and
// so does a last step at DefaultPriority, whatever its end (the level a
// block has once every promise lapses, so the step changes no level); of
// three steps left, the two lower merge into the middle level until the
// latest tick, which over-keeps rather than under-keeps.
func staircase(s []step) (hi, lo step, two bool) {
	// Insertion sort by level, highest first, then latest first.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && (s[j].level > s[j-1].level || s[j].level == s[j-1].level && s[j].until > s[j-1].until); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	// Keep the steps that outlast every higher one.
	k := 1
	for _, x := range s[1:] {
		if x.until > s[k-1].until {
			s[k] = x
			k++
		}
	}
	// The default is where every block falls back to, so a last step at
	// the default, ending or not, is not a step: counted as one, it would
	// make a third promise merge the middle level into it, for good or
	// until its end, past the middle promise's own end.
	if k > 1 && s[k-1].level == DefaultPriority {
		k--
	}
	switch k {
	case 1:
		return s[0], step{}, false
	case 2:
		return s[0], s[1], true
	}
	return s[0], step{s[1].level, s[2].until}, true
}

// Forget drops id's level and its place in the chains: its content is
// gone, and with it the reach of every block below it.
func (p *Priority) Forget(id allocator.BlockID) {
	if p.levels[0].linked(id) {
		misuse("Priority", "Forget", id, inPolicy)
	}
	p.drop(id)
}

// drop ends id's content, which is not in the policy: its children's
// subtrees become orphans, it leaves its parent, and its level reverts.
func (p *Priority) drop(id allocator.BlockID) {
	p.tree.drop(id)
	p.reset(id)
}

func (p *Priority) reset(id allocator.BlockID) {
	if p.exp.queued(id) {
		p.exp.remove(id)
	}
	p.tree.node[id].x = plevels{level: DefaultPriority, lower: noStep}
}

// Advance sets the logical time; levels that lapse at or before now
// revert to the lower promise still in force, else DefaultPriority. Time
// never goes back: an earlier now is ignored.
func (p *Priority) Advance(now int64) {
	if now <= p.now {
		return
	}
	p.now = now
	p.exp.expire(now, p.lapse)
}

func (p *Priority) revert(id allocator.BlockID) {
	in := p.leveled(id)
	if in {
		p.unlink(id)
	}
	x := &p.tree.node[id].x
	x.level = DefaultPriority
	if lv := x.lower; lv != noStep {
		x.lower = noStep
		if at := p.lowerAt[id]; at > p.now {
			x.level = lv
			if at != never {
				p.exp.push(id, at)
			}
		}
	}
	if in {
		p.push(id, false)
	}
}

// Victim pops the first orphan, else the least recently released
// candidate of the lowest level. Its children, all referenced, become
// orphans.
func (p *Priority) Victim() (allocator.BlockID, bool) {
	id, ok := p.orphans.front()
	if !ok {
		var l int
		switch {
		case p.occ[0] != 0:
			l = bits.TrailingZeros64(p.occ[0])
		case p.occ[1] != 0:
			l = 64 + bits.TrailingZeros64(p.occ[1])
		default:
			return allocator.NoBlock, false
		}
		id, _ = p.levels[l].front()
	}
	p.unlink(id)
	p.tree.leave(id)
	p.drop(id)
	return id, true
}

// Len returns the number of blocks held.
func (p *Priority) Len() int { return p.n }

// Contains reports whether id is held.
func (p *Priority) Contains(id allocator.BlockID) bool { return p.levels[0].linked(id) }

// Retains returns how many promises Retain has recorded.
func (p *Priority) Retains() uint64 { return p.retains }
