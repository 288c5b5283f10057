package paged

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// blockPool is the device pool with its prefix index, vLLM's BlockPool:
// the block allocator, the eviction policy (and the optional interfaces it
// implements), the per-block metadata, the hash index over committed
// content and the KV event buffer, which change together. The Manager
// holds it by value (Manager.bp), so a hot path reaches a field at a fixed
// offset of the Manager, as before the split, and coordinates it with the
// sequences, the retention shelves and the host tier.
type blockPool struct {
	pool   *allocator.Pool
	policy eviction.Policy
	// lru is policy when it is the default LRU, else nil: available
	// (every admission's check) reads its Len directly, which inlines.
	lru *eviction.LRU

	accessor  eviction.Accessor
	forgetter eviction.Forgetter
	hinter    eviction.Hinter
	ticker    eviction.Ticker

	// Per block, indexed by BlockID.
	hash []Hash
	// parent is the hash before hash[id] in its chain (root for a first
	// block), for Snapshot; kept only with events on (Config.Events), the
	// stream a snapshot resynchronises, so a manager without events does
	// not pay 32 bytes per block for it.
	parent []Hash
	// grouped: the manager has more than one KV cache group (initGroups);
	// the group whose content each block holds is its index entry's
	// (blockLinks.group), 0 without groups.
	grouped bool
	index   hashIndex // first-inserted block per hash
	events  eventBuffer
	// unified: every unreferenced block lives in the policy
	// (Config.UnifiedFreeQueue).
	unified bool
	// shelves order evictions beside the policy (shelves.go).
	shelves shelves
	// host is the host tier evicted content is offloaded to (offload.go;
	// nil without one), quiet the groups whose cached blocks are state
	// checkpoint pages, which are not reported as KV events.
	host  *hostTier
	quiet []bool
	// gone, when set (events on, state checkpoints kept), is told of a
	// quiet group's content k of group g, whose parent is h, leaving the
	// device index (Manager.checkpointGone).
	gone func(k, h *Hash, g int)
	// memo is the hash memo (memo.go), nil without Config.HashMemo: last,
	// so that the hot fields above keep their offsets.
	memo *hashMemo
	// named are the step's Copy directives (Manager.queueCopy, those
	// folded into the tier's stream included); parked are the sources
	// of those whose last reference was dropped during the step while a
	// copy still has to read them (its Dst is held), each with the shelf
	// it was released to. A parked block keeps that reference, so nothing
	// hands it out again before the server has run the step's copies;
	// EndStep (unpark) releases it and forgets named, and a parked block
	// whose every copy became moot (its Dst freed) goes at once.
	named   []Copy
	parked  []parkedBlock
	pruning bool
	// stored is, per block, the stamp of the step in which its content
	// was last committed to the device index (stamp then), 0 for content
	// a step had computed when it came (onboarded or swapped in: its copy
	// runs before any kernel reads it) or whose step ended before EndStep
	// swept it. A block whose stamp is the step being built's holds KV no
	// kernel has written yet (fresh): a pin never holds one
	// (Manager.PinHashes), and Uncompute forgets one even when shared
	// (Manager.voidShared). Meaningful only while the block holds
	// content. Stamps are 16 bits (2 bytes a block, where Manager.step's
	// 32 would break the metadata budget), so they repeat every 65,535
	// steps; EndStep clears the stamps of 1/sweepSteps of the pool each
	// step (sweep is where it goes on), so every stamp is cleared within
	// sweepSteps steps of its step's end, long before its value comes
	// back.
	stored []uint16
	stamp  uint16 // the step being built's, never 0
	sweep  int
}

// sweepSteps is the most steps a stamp (blockPool.stored) outlives its
// step: EndStep clears a 1/sweepSteps part of the pool each step, below
// the 65,535 steps after which a stamp value comes back.
const sweepSteps = 1 << 15

// parkedBlock is a block whose release waits for the end of the step.
type parkedBlock struct {
	id allocator.BlockID
	to shelf
}

// park keeps id's last reference, to be released to shelf s at the end of
// the step, when a Copy directive of the step still has to read id. It
// reports whether it did.
func (p *blockPool) park(id allocator.BlockID, s shelf) bool {
	if p.pool.RefCount(id) == 1 && p.read(id) {
		p.parked = append(p.parked, parkedBlock{id, s})
		return true
	}
	return false
}

// stepRelease handles releaseTo(id, s) while the step has copies, and
// reports whether it did: it parks id if a copy still has to read it;
// otherwise, with blocks parked, it releases id and then the parked
// blocks whose copies that made moot. A false return leaves the plain
// release to the caller.
func (p *blockPool) stepRelease(id allocator.BlockID, s shelf) bool {
	if p.pruning {
		return false
	}
	if p.park(id, s) {
		return true
	}
	if len(p.parked) == 0 {
		return false
	}
	p.pruning = true
	p.releaseTo(id, s)
	p.prune()
	p.pruning = false
	return true
}

// read reports whether a copy of the step still has to read block id: it
// is the source of a live one (live).
func (p *blockPool) read(id allocator.BlockID) bool {
	for _, c := range p.named {
		if c.Src == id && p.live(c) {
			return true
		}
	}
	return false
}

// live reports whether copy c of the step still matters: its destination
// is held, or free but still cached, so that a prefix hit may claim it
// again in the step and read what the copy fills in. A destination
// handed out again drops its copies (Manager.dropCopiesInto).
func (p *blockPool) live(c Copy) bool {
	return c.Src != c.Dst && (p.pool.RefCount(c.Dst) > 0 || p.hasContent(c.Dst))
}

// frees reports whether dropping one reference to block id frees it for
// allocation: the reference is its last, and no copy of the step still
// has to read it (else it is parked). The space checks that count what a
// release frees (Manager.slidable, slidableGroups) ask it, so that they
// agree with park.
func (p *blockPool) frees(id allocator.BlockID) bool {
	return p.pool.RefCount(id) == 1 && (len(p.named) == 0 || !p.read(id))
}

// unparks counts the parked blocks that releasing the blocks dies
// reports frees would release with them: those whose every live copy
// writes one of those blocks, uncached (prune). Zero when none is parked.
func (p *blockPool) unparks(dies func(allocator.BlockID) bool) int {
	n := 0
	for _, b := range p.parked {
		moot := true
		for _, c := range p.named {
			if c.Src == b.id && p.live(c) && (!dies(c.Dst) || p.hasContent(c.Dst)) {
				moot = false
				break
			}
		}
		if moot {
			n++
		}
	}
	return n
}

// prune releases the parked blocks no copy has to read any more.
// REQUIRES: p.pruning.
func (p *blockPool) prune() {
	for again := true; again; {
		again = false
		for i := 0; i < len(p.parked); i++ {
			if b := p.parked[i]; !p.read(b.id) {
				p.parked = append(p.parked[:i], p.parked[i+1:]...)
				p.releaseTo(b.id, b.to)
				again = true
				break
			}
		}
	}
}

// unpark releases the parked blocks, in the order they were parked, and
// forgets the step's copies.
func (p *blockPool) unpark() {
	p.named = p.named[:0]
	for _, b := range p.parked {
		p.releaseTo(b.id, b.to)
	}
	p.parked = p.parked[:0]
}

// newBlockPool returns the pool of cfg, whose defaults are filled in.
func newBlockPool(cfg *Config) (blockPool, error) {
	pool, err := allocator.New(allocator.Config{NumBlocks: cfg.NumBlocks, Reserved: 1})
	if err != nil {
		return blockPool{}, err
	}
	p := blockPool{
		pool:    pool,
		policy:  cfg.Policy(cfg.NumBlocks),
		hash:    make([]Hash, cfg.NumBlocks),
		stored:  make([]uint16, cfg.NumBlocks),
		stamp:   1,
		unified: cfg.UnifiedFreeQueue,
	}
	p.index = newHashIndex(cfg.NumBlocks, p.hash)
	p.index.track(cfg.NumBlocks, true)
	if cfg.Events > 0 {
		p.parent = make([]Hash, cfg.NumBlocks)
	}
	// The per-block arrays are the pool's, for its whole life: their
	// pages are faulted in here, as a server's pool is set up before its
	// first request, not by the first requests that reach each page.
	prefault(p.hash)
	prefault(p.stored)
	prefault(p.parent)
	prefault(p.index.slots)
	prefault(p.index.meta)
	p.memo = newMemo(cfg)
	p.lru, _ = p.policy.(*eviction.LRU)
	p.accessor, _ = p.policy.(eviction.Accessor)
	p.forgetter, _ = p.policy.(eviction.Forgetter)
	p.hinter, _ = p.policy.(eviction.Hinter)
	p.ticker, _ = p.policy.(eviction.Ticker)
	p.events.init(cfg.Events)
	return p, nil
}

// prefault writes the zero value over one element of every page of s,
// a slice just made (so every element is zero), so that the kernel maps
// the pages now rather than at the first store of each.
func prefault[T any](s []T) {
	var zero T
	step := max(1, pageBytes/int(unsafe.Sizeof(zero)))
	for i := 0; i < len(s); i += step {
		s[i] = zero
	}
}

// pageBytes is the smallest page size of the platforms Go runs on.
const pageBytes = 4096

// hasContent reports whether block id's content is committed to the
// index (it may be found by a lookup once the index is settled). The
// flag lives in the index's per-block entry (blockLinks.cached) and is
// current at once, even while the index defers the entry's other
// updates.
func (p *blockPool) hasContent(id allocator.BlockID) bool { return p.index.meta[id].cached }

// fresh reports whether block id's content was committed in the step
// being built: no kernel has computed it yet (see stored).
func (p *blockPool) fresh(id allocator.BlockID) bool { return p.stored[id] == p.stamp }

// markComputed takes block id, just committed, as holding KV a step
// computed (not fresh): its content came by a copy (SwapIn, Onboard)
// that runs before any kernel of the step reads it.
func (p *blockPool) markComputed(id allocator.BlockID) { p.stored[id] = 0 }

// endStep ends the step being built for the stamps (see stored): the
// next part of the pool's are cleared, and the next step takes the next
// nonzero stamp.
func (p *blockPool) endStep() {
	n := len(p.stored)
	end := min(p.sweep+(n+sweepSteps-1)/sweepSteps, n)
	clear(p.stored[p.sweep:end])
	p.sweep = end
	if end == n {
		p.sweep = 0
	}
	p.stamp++
	if p.stamp == 0 {
		p.stamp = 1
	}
}

// available returns the free blocks plus those the policy may evict.
func (p *blockPool) available() int {
	if p.lru != nil {
		return p.pool.Free() + p.lru.Len()
	}
	return p.pool.Free() + p.policy.Len()
}

// release drops one reference to id. A block whose last reference goes
// becomes evictable if it holds cached content, else free.
func (p *blockPool) release(id allocator.BlockID) {
	if id == nullBlock {
		return // a released sliding-window entry
	}
	if len(p.named) > 0 && p.stepRelease(id, shelfPolicy) {
		return
	}
	if p.unified || p.hasContent(id) {
		// The Try forms inline; on misuse the checked calls panic.
		last, ok := p.pool.TryReleaseToCache(id)
		if !ok {
			p.pool.ReleaseToCache(id)
		}
		if last && (p.lru == nil || !p.lru.TryInsert(id)) {
			p.policy.Insert(id)
		}
		return
	}
	p.pool.Release(id)
}

// claim takes a reference to a block found by a lookup: an evictable
// block leaves the policy or its shelf, a held one gains a reference.
func (p *blockPool) claim(id allocator.BlockID) {
	if p.accessor != nil {
		p.accessor.Access(id)
	}
	if p.pool.IsCached(id) {
		if p.lru == nil || p.shelves.shelfOf(id) != shelfPolicy || !p.lru.TryRemove(id) {
			p.unshelve(id)
		}
		if !p.pool.TryClaim(id) {
			p.pool.Claim(id)
		}
		return
	}
	if !p.pool.TryRef(id) {
		p.pool.Ref(id)
	}
}

// alloc takes one block for new content: from the free list, else the
// victim of the eviction order, whose cached content moves to the host
// tier or is given up; it reports whether it evicted cached content.
// REQUIRES: a free or evictable block.
func (p *blockPool) alloc(now int64) (allocator.BlockID, bool) {
	if p.pool.Free() > 0 {
		id, _ := p.pool.Alloc()
		return id, false
	}
	// The default LRU's victim, when no low-priority shelf goes first,
	// inlines (see blockPool.victim for the general order).
	var id allocator.BlockID
	ok := false
	if p.lru != nil && p.shelves.n[shelfLow] == 0 {
		id, ok = p.lru.Victim()
	}
	if !ok {
		if id, ok = p.victim(); !ok {
			panic("paged: allocation with no free or evictable block")
		}
	}
	evicted := p.hasContent(id)
	if evicted {
		switch {
		case p.host == nil && !p.events.on():
			if p.drop(id) {
				p.index.flush()
			}
		case p.host == nil || !p.offload(id, now):
			p.uncache(id, !p.quiet[p.groupOf(id)])
		}
	}
	if !p.pool.TryClaim(id) {
		p.pool.Claim(id)
	}
	return id, evicted
}

// allocRun fills dst with new blocks, each taken as alloc takes one, in
// order, and returns how many of them evicted cached content. With the
// default LRU, no host tier and no events (the vLLM-compatible replay's
// configuration) it is alloc unrolled for a run: the configuration is
// tested once, not once a block, and the run pays no call a block. An
// admission takes a block per block of its prompt in every group this way.
// REQUIRES: len(dst) free or evictable blocks.
func (p *blockPool) allocRun(dst []allocator.BlockID, now int64) (evicted int) {
	if p.lru == nil || p.host != nil || p.events.on() {
		for i := range dst {
			id, ev := p.alloc(now)
			dst[i] = id
			if ev {
				evicted++
			}
		}
		return evicted
	}
	for i := range dst {
		var id allocator.BlockID
		if p.pool.Free() > 0 {
			id, _ = p.pool.Alloc()
			dst[i] = id
			continue
		}
		ok := false
		if p.shelves.n[shelfLow] == 0 {
			id, ok = p.lru.Victim()
		}
		if !ok {
			if id, ok = p.victim(); !ok {
				panic("paged: allocation with no free or evictable block")
			}
		}
		if p.hasContent(id) {
			evicted++
			if p.drop(id) {
				p.index.flush()
			}
		}
		if !p.pool.TryClaim(id) {
			p.pool.Claim(id)
		}
		dst[i] = id
	}
	return evicted
}

// releaseTail releases blocks[from:] tail first, so a chain's tail is
// given up before its head. With UnifiedFreeQueue and the default LRU
// (every block whose last reference goes joins the LRU list, cached or
// not) it is release unrolled for a run, as allocRun is alloc.
func (p *blockPool) releaseTail(blocks []allocator.BlockID, from int) {
	if !p.unified || p.lru == nil || len(p.named) > 0 {
		// release parks a block a live copy of the step reads.
		for i := len(blocks) - 1; i >= from; i-- {
			p.release(blocks[i])
		}
		return
	}
	for i := len(blocks) - 1; i >= from; i-- {
		id := blocks[i]
		if id == nullBlock {
			continue // a released sliding-window entry
		}
		last, ok := p.pool.TryReleaseToCache(id)
		if !ok {
			p.pool.ReleaseToCache(id)
		}
		if last && !p.lru.TryInsert(id) {
			p.policy.Insert(id)
		}
	}
}

// uncache removes block id's content from the index and reports it. The
// index may defer the removal to its next read; cached[id] changes at
// once, and from then on nothing reads hash[id] until the block is
// committed again.
func (p *blockPool) uncache(id allocator.BlockID, report bool) {
	if report {
		p.events.removed(&p.hash[id], Device, p.groupOf(id))
	}
	if p.drop(id) {
		p.index.flush()
	}
	if p.gone != nil && !report {
		if g := p.groupOf(id); p.quiet[g] {
			p.gone(&p.hash[id], &p.parent[id], g)
		}
	}
}

// drop is uncache without the event, and like the index's remove leaves
// applying a full log to the caller (it reports whether the log is full),
// so it inlines on the allocation path of a pool that reports nothing.
func (p *blockPool) drop(id allocator.BlockID) (full bool) {
	p.index.meta[id].cached = false
	return p.index.remove(id)
}

// forget drops the cached content of a block that is not in the policy
// (it is held, and about to be overwritten).
func (p *blockPool) forget(id allocator.BlockID) {
	p.uncache(id, true)
	if p.forgetter != nil {
		p.forgetter.Forget(id)
	}
}

// groupOf returns the KV cache group whose content block id holds.
func (p *blockPool) groupOf(id allocator.BlockID) int { return int(p.index.meta[id].group) }

// successor guesses that a chain's next block is the block after the
// previous hit's: a chain is usually committed in one run of blocks
// allocated in order, so a warm lookup walks the per-block arrays in order
// instead of probing the index at random. The guess stands only where the
// index would give the same answer: the block holds h and heads its
// duplicates (the index names the first-inserted of the blocks holding h).
func (p *blockPool) successor(prev allocator.BlockID, h *Hash) (allocator.BlockID, bool) {
	if prev <= nullBlock {
		return allocator.NoBlock, false
	}
	return p.guess(prev+1, h, 0)
}

// run returns how many of hashes, in group 0, the blocks from first on
// answer as the index would (see successor): the longest k such that
// block first+j holds hashes[j] and heads its holders, for every j < k.
// It is successor over a whole run, which also counts the run's
// evictable blocks (cached, no reference: a hit on one consumes a block
// an allocation could have had). The first runShort blocks are checked
// one at a time, which is cheapest for the short runs of a mixed
// workload; past them, the rest of a long run (a warm long prompt's)
// is checked a stage at a time (runLong).
func (p *blockPool) run(first allocator.BlockID, hashes []Hash) (k, evictable int) {
	if first <= nullBlock || int(first) >= len(p.hash) {
		return 0, 0
	}
	p.index.settle() // the heads are current
	n := min(len(hashes), len(p.hash)-int(first))
	short := min(n, runShort)
	held, meta := p.hash[first:][:short], p.index.meta[first:][:short]
	for k := range held {
		id := first + allocator.BlockID(k)
		// A head is cached: uncache takes a block out of the index,
		// which is settled.
		// The hash first: after a hit the index found, the block
		// after it seldom holds the next hash, and its hash shares the
		// line the lookup just compared, unlike its entry in meta.
		if !equal(&held[k], &hashes[k]) || !meta[k].head || p.groupOf(id) != 0 {
			return k, evictable
		}
		if p.pool.IsCached(id) {
			evictable++
		}
	}
	if n == short {
		return n, evictable
	}
	k, ev := p.runLong(first+runShort, hashes[runShort:n])
	return runShort + k, evictable + ev
}

// runShort is how many blocks run checks one at a time before it
// checks the rest of a run a stage at a time.
const runShort = 16

// runLong is run over a long run, one stage at a time: the hashes first,
// a kilobyte at a time (samePrefix), then the head flags of the blocks
// that hold them, then their groups, then the evictable count, each a
// loop of its own that keeps few values live. Checking block by block
// costs three times as much on a run of thousands.
// REQUIRES: the index is settled and len(hashes) <= len(p.hash)-first.
func (p *blockPool) runLong(first allocator.BlockID, hashes []Hash) (k, evictable int) {
	n := samePrefix(p.hash[first:][:len(hashes)], hashes)
	n = p.heads(first, n)
	if p.grouped {
		for k, m := range p.index.meta[first:][:n] {
			if m.group != 0 {
				n = k
				break
			}
		}
	}
	return n, p.pool.CountCached(first, n)
}

// heads returns how many of the n blocks from first on head their
// holders, eight at a time while it can. A head is cached: uncache takes
// a block out of the index, which run has settled.
func (p *blockPool) heads(first allocator.BlockID, n int) int {
	meta := p.index.meta[first:][:n]
	for ; len(meta) >= 8; meta = meta[8:] {
		m := (*[8]blockLinks)(meta)
		if b2u(m[0].head)&b2u(m[1].head)&b2u(m[2].head)&b2u(m[3].head)&
			b2u(m[4].head)&b2u(m[5].head)&b2u(m[6].head)&b2u(m[7].head) == 0 {
			break
		}
	}
	for len(meta) > 0 && meta[0].head {
		meta = meta[1:]
	}
	return n - len(meta)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// fillRun sets dst to first, first+1, ..., eight at a time while it can.
func fillRun(dst []allocator.BlockID, first allocator.BlockID) {
	id := first
	for len(dst) >= 8 {
		d := (*[8]allocator.BlockID)(dst)
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = id, id+1, id+2, id+3, id+4, id+5, id+6, id+7
		dst, id = dst[8:], id+8
	}
	for j := range dst {
		dst[j] = id + allocator.BlockID(j)
	}
}

// predecessor guesses, scanning a chain right to left in group g, that the
// block before next's holds h: a run of blocks admitted together has
// consecutive IDs. The guess stands only where the index would answer the
// same: the block holds (h, g) and heads the blocks holding it.
func (p *blockPool) predecessor(next allocator.BlockID, h *Hash, g int) (allocator.BlockID, bool) {
	if next == allocator.NoBlock {
		return allocator.NoBlock, false
	}
	return p.guess(next-1, h, g)
}

// guess reports whether block id answers a lookup of (h, g) as the index
// would: it holds (h, g) and heads the blocks holding it, the
// first-inserted, which the index names (a block that duplicates it
// does not stand, whichever of the two a chain runs through).
func (p *blockPool) guess(id allocator.BlockID, h *Hash, g int) (allocator.BlockID, bool) {
	if id <= nullBlock || int(id) >= len(p.hash) {
		return allocator.NoBlock, false
	}
	p.index.settle() // the heads are current
	if !p.hasContent(id) || !equal(&p.hash[id], h) || !p.index.meta[id].head || p.groupOf(id) != g {
		return allocator.NoBlock, false
	}
	return id, true
}

// commit records that block id holds the content named by h for KV cache
// group g: in the per-block metadata and the index, after the blocks
// already holding (h, g). The chain hash before it (parent, kept with
// events) is the caller's to record (Manager.noteCommit).
func (p *blockPool) commit(id allocator.BlockID, h *Hash, g int) {
	if p.index.dels > 0 {
		p.index.flush() // a deferred removal may still need hash[id]
	}
	// The tag is mixed from the caller's copy of h, not from hash[id]
	// after the store: at a random block of a large pool that line is
	// not in the cache, and reading it back would wait for it.
	tag := home(h) ^ groupSalt(g)
	p.hash[id] = *h
	p.stored[id] = p.stamp
	// The flag and the group, one line the deferred insert writes too.
	m := &p.index.meta[id]
	m.cached, m.group = true, uint8(g)
	if p.index.insert(id, tag) {
		p.index.flush()
	}
}

// commitRun commits blocks[from:limit] of a table of group g whose
// content is hashes[from:limit], each block as commit does, but for a
// null entry (out of a sliding window) and a block that already holds
// the content (a fork committed it first), which it skips; it returns how
// many it committed. It is commit unrolled for a run, for
// Manager.commitRun when nothing else hears of a commit (no events, no
// host tier, no hinting policy): an admission commits a block per block
// of its prompt in every group.
func (p *blockPool) commitRun(blocks []allocator.BlockID, hashes []Hash, from, limit, g int) (stored int) {
	blocks, hashes = blocks[:limit], hashes[:limit]
	meta, held, salt := p.index.meta, p.hash, groupSalt(g)
	stamps, stamp := p.stored, p.stamp
	for k := from; k < limit; k++ {
		id := blocks[k]
		if id == nullBlock {
			continue
		}
		h := &hashes[k]
		if meta[id].cached {
			if !equal(&held[id], h) {
				panic(fmt.Sprintf("paged: group %d block %d holds committed content other than the sequence's tokens", g, id))
			}
			continue
		}
		if p.index.dels > 0 {
			p.index.flush() // as commit
		}
		tag := home(h) ^ salt
		held[id] = *h
		stamps[id] = stamp
		m := &meta[id]
		m.cached, m.group = true, uint8(g)
		if p.index.insert(id, tag) {
			p.index.flush()
		}
		stored++
	}
	return stored
}

// lookup appends to dst the blocks of the longest run of leading hashes
// present in the device index, or else in the host index (a hostRef),
// at most max of them: group 0's prefix lookup. It also returns how many
// of the device hits are evictable (see run) and how many hits are on
// the host, which an admission counts anyway: counting them here saves a
// second pass over the hits.
//
// dst's spare capacity is read as guesses: a caller that looks up into
// one buffer again and again (the manager's hits) leaves there the
// answer of its last lookup, and a request refused for space heads the
// queue and is looked up again at the next step, usually with the same
// answer. Position i of the spare capacity is tried (blockPool.guess,
// which stands only where the index would answer the same) before the
// index is probed for hashes[i], until a guess fails: a guess is a
// block's index entry and hash, where a probe is a bucket and a hash.
func (p *blockPool) lookup(dst []allocator.BlockID, hashes []Hash, max int) (hits []allocator.BlockID, evictable, host int) {
	if max < len(hashes) {
		hashes = hashes[:0]
		if max > 0 {
			hashes = hashes[:max]
		}
	}
	// last[i] is the guess for hashes[i]: dst's array is written at
	// position len(dst)+i only after last[i] is read.
	last := dst[len(dst):cap(dst)]
	p.index.settle() // the heads are current
	prev := allocator.NoBlock
	for i := 0; i < len(hashes); i++ {
		// The blocks after the previous hit's, as far as they hold the
		// chain (see blockPool.successor), then the last answer's block,
		// then one probe of the index.
		// Most hits come from probes of blocks allocated one at a time,
		// whose next block holds other content: its hash is compared
		// here first, so that those pay no call of run.
		if next := prev + 1; next > nullBlock && int(next) < len(p.hash) && equal(&p.hash[next], &hashes[i]) {
			if k, ev := p.run(next, hashes[i:]); k > 0 {
				evictable += ev
				n := len(dst)
				dst = slices.Grow(dst, k)[:n+k]
				fillRun(dst[n:], next)
				if i += k; i == len(hashes) {
					break
				}
				prev += allocator.BlockID(k)
			}
		}
		var id allocator.BlockID
		ok := false
		if i < len(last) {
			// guess, inline: the index is settled (above), and a
			// head is cached (uncache takes a block out of the index).
			if g := last[i]; g > nullBlock && int(g) < len(p.hash) &&
				equal(&p.hash[g], &hashes[i]) && p.index.meta[g].head && p.groupOf(g) == 0 {
				id, ok = g, true
			} else {
				last = nil
			}
		}
		if !ok {
			id, ok = p.index.get(&hashes[i])
		}
		switch {
		case ok && p.pool.IsCached(id):
			evictable++
		case !ok:
			if id, ok = p.hostHitIn(&hashes[i], 0); !ok {
				return dst, evictable, host
			}
			host++
		}
		dst = append(dst, id)
		prev = id
	}
	return dst, evictable, host
}
