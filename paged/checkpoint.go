package paged

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// State checkpoints: prefix hits for State groups (Mamba, Gated DeltaNet,
// KDA layers) in the default mode (docs/hybrid.md).
//
// A state group's state does not grow with the sequence and is rewritten
// by every token, so unlike attention KV it cannot be shared block by
// block: a prefix hit of L tokens needs a copy of the state as it was after
// exactly L tokens, a checkpoint, in every state group, besides the
// full-attention blocks of [0, L). vLLM v1 at f20c3b0 keeps none, so a
// model with a state group never hits.
//
// A checkpoint of group g after L blocks is Pages cached blocks, page j
// keyed in the prefix index by (the chain hash of block L-1 with j mixed
// in, g): one index entry per page, like any cached block. The lookup takes
// the longest L, at most the full-attention hit, at which every state
// group has all the pages of a checkpoint; admission claims them and emits
// Copy directives from them into the sequence's own state pages.
//
// Checkpoints are taken where hits are likely and the manager knows it: at
// a sequence's branch point (the end of the cached prefix it shared at its
// first admission; see retention.go), when the lookup found the
// full-attention blocks there but no checkpoint. The state at a point
// inside a prefill exists only while the kernel runs, so the manager asks
// for it: TakeCheckpoints hands the server, once per step, the pages to
// write each checkpoint into, and commits them to the index at that moment;
// a lookup takes a checkpoint only once the step that writes it has ended
// (its pages are fresh until then: lookupState), so no sequence hits a
// checkpoint before it is written, even one admitted after TakeCheckpoints
// in the same step.
//
// Budget: a sequence holds (pins) while it runs the checkpoint it hit
// (pinState: the source of its Copy directives, and the hit of the next
// sequence sharing that prefix) and the one it took at its branch point,
// at most two, one when the hit is at the branch point; sequences sharing
// a prefix share them. Pinned checkpoints thus cost at most twice the
// running sequences' own state (as much again when every hit is at its
// sequence's branch point), and in practice each state group's Pages per
// distinct shared prefix (State groups of different sizes each take their
// own). Released
// checkpoints wait on the high shelf. With groups of other kinds beside
// (a window), the checkpoint serves a hit only with their blocks before
// the same point, which retention keeps for the same branch point.

// Checkpoint is a directive to save a state: while computing sequence
// Seq, the server writes the state of KV cache group Group after the
// sequence's first Tokens tokens into Pages, in order (the layout of the
// sequence's own state pages). Tokens lies within the tokens the step
// computes for Seq, or equals the tokens computed before the step (then
// the state is copied before the step's kernels run).
//
// With events on, a checkpoint is reported as one block of group Group:
// BlockStored of the chain hash of the block ending at Tokens when it is
// handed out (unless an earlier copy is whole), BlockRemoved of that hash
// when one of its pages leaves the cache with no copy left.
type Checkpoint struct {
	// Seq is the sequence whose state is saved and Group its state group.
	Seq   SeqID
	Group int
	// Tokens is the position of the state: after this many tokens.
	Tokens int
	// Pages are the blocks to write, a view valid until the next call
	// that changes the manager.
	Pages []allocator.BlockID
}

// checkpointer is the part of retainer that keeps state checkpoints.
type checkpointer struct {
	ckpt bool
	// states are the State groups; off[i] is where state group i's pages
	// start in a checkpoint's pages (hitPages, a sequence's pending), all
	// the groups' pages in order, off[len(states)] their number.
	states []int
	off    []int
	// hit and hitPages are the last lookup's checkpoint: its length in
	// blocks and its pages, state group by state group.
	hit      int
	hitPages []allocator.BlockID
	// missed: the last plan dropped the lookup's checkpoint hit for a
	// miss (planGroups), or, after AdmitChunk cut a sequence, the
	// admission did; noHit makes lookups find no checkpoint, while
	// AdmitChunk admits a cut sequence whose whole plan, or a cut's,
	// dropped it. keepHit: planGroups keeps a checkpoint hit it would
	// drop, answering AdmitNever where it never fits (chunkHit).
	missed, noHit, keepHit bool
	// capOn: hits are cut to at most hitCap blocks (lookupGroups), set
	// by planFallback for the admission being planned; fell: it fell
	// back so from the longest hit (Stats.HitFallbacks).
	capOn, fell bool
	hitCap      int
	// pend lists sequences with a checkpoint to hand out; out holds the
	// views of the last TakeCheckpoints.
	pend []SeqID
	out  []allocator.BlockID
	// whole is set by AdmitChunk while it admits a sequence it cut: the
	// lookup over the whole sequence, whose branch point may lie past the
	// cut (branchPoint); noAsk: the prompt fits chunk by chunk only
	// without the checkpoint at its branch point, which is not asked
	// (chunkNever).
	whole struct {
		on, miss, noAsk bool
		full            int
		hash            Hash
	}
}

// initCheckpoints turns checkpoints on for a manager with State groups and
// its own free list.
func (m *Manager) initCheckpoints() {
	r := &m.ret
	if !m.hybrid() || !m.anyState || m.cfg.UnifiedFreeQueue || !m.hashing {
		return
	}
	r.ckpt = true
	r.off = append(r.off, 0)
	for g, k := range m.kinds {
		if p := k.pages(); p > 0 {
			r.states = append(r.states, g)
			r.off = append(r.off, r.off[len(r.off)-1]+p)
		}
	}
	r.hitPages = make([]allocator.BlockID, 0, r.size())
}

// size is the number of pages of a checkpoint, every state group's.
func (r *checkpointer) size() int { return r.off[len(r.off)-1] }

// pageAt names page i of a checkpoint's pages: its state group and its
// index in that group's state.
func (r *checkpointer) pageAt(i int) (g, j int) {
	k := 0
	for r.off[k+1] <= i {
		k++
	}
	return r.states[k], i - r.off[k]
}

// ckptKey is the index key of page j of a checkpoint after the block whose
// chain hash is h: h with j+1 mixed into its last word, so every page has
// an entry of its own and none equals a block's chain hash.
func ckptKey(h *Hash, j int) Hash {
	k := *h
	t := uint64(j+1) * 0x9e3779b97f4a7c15
	for i := range 8 {
		k[24+i] ^= byte(t >> (8 * i))
	}
	return k
}

// Checkpoint events. A checkpoint's pages are not KV events one by one:
// a consumer (a fleet index) needs to know where a state hit is possible,
// which is where every page of a checkpoint is cached. So with events on
// a checkpoint of state group g after L blocks is reported as one block
// of group g: BlockStored of the chain hash of block L-1 (with its
// tokens, no parent) when the checkpoint becomes whole (TakeCheckpoints
// commits its pages and they were not all cached already), BlockRemoved
// of that hash when it stops being whole: a page's content leaves the
// device and the host and no other copy holds it (a checkpoint page's
// parent, kept with events on, is the checkpoint's hash, so the hooks
// know which checkpoint a page belongs to). Its medium is the device
// while every page is on the device, the host once a page must be
// onboarded for a hit; a page moving between tiers that changes it is a
// BlockMoved of the checkpoint (an onboard with the block's tokens, as a
// BlockStored carries them). A checkpoint is thus reported held exactly
// while lookupState would find it, on the tier a hit would find it.

// initCheckpointEvents turns checkpoint events on: with events and
// checkpoints.
func (m *Manager) initCheckpointEvents() {
	if !m.ret.ckpt || !m.bp.events.on() {
		return
	}
	m.bp.gone = m.checkpointGone
	if m.tier != nil {
		m.tier.gone = m.checkpointHostGone
	}
}

// checkpointMedium reports whether the checkpoint of state group g after
// the block whose chain hash is h is whole, and its medium then: Device
// when every page is in the device index, else Host. Page k (when not
// nil) is taken as on the device when dev and on either tier when any,
// whatever the indexes say: the hooks ask what the checkpoint was before
// a page moved. O(Pages) probes.
func (m *Manager) checkpointMedium(h *Hash, g int, k *Hash, dev, any bool) (Medium, bool) {
	medium := Device
	for j := range m.kinds[g].pages() {
		p := ckptKey(h, j)
		onDev, onAny := dev, any
		if k == nil || p != *k {
			_, onDev = m.bp.index.getIn(&p, groupSalt(g))
			onAny = onDev
			if !onDev {
				_, onAny = m.bp.hostHitIn(&p, g)
			}
		}
		if !onAny {
			return 0, false
		}
		if !onDev {
			medium = Host
		}
	}
	return medium, true
}

// notePage records, with events on, that device block id holds a page of
// the checkpoint after the block whose chain hash is h: its parent, which
// for a checkpoint page names the checkpoint (and goes with the page to
// the host), so checkpointGone knows which checkpoint a page leaving
// belongs to.
func (m *Manager) notePage(id allocator.BlockID, h *Hash) {
	if m.bp.parent != nil {
		m.bp.parent[id] = *h
	}
}

// checkpointGone is told that page k of checkpoint group g, of the
// checkpoint after the block whose chain hash is h, left the device index
// (evicted, offloaded to the host, forgotten); checkpointHostGone, that
// it left the host index (given up, not onboarded). They report the
// checkpoint removed when it stops being whole, moved to the host when a
// page it had on the device only is on the host now.
func (m *Manager) checkpointGone(k, h *Hash, g int) { m.checkpointMoved(k, h, g, true, true, nil, 0) }

func (m *Manager) checkpointHostGone(k, h *Hash, g int) {
	_, dev := m.bp.index.getIn(k, groupSalt(g))
	m.checkpointMoved(k, h, g, dev, true, nil, 0)
}

// checkpointMoved reports the change of the checkpoint after h in state
// group g when its page k was on the device (wasDev) or on either tier
// (wasAny) and is now where the indexes say: BlockRemoved on its old
// medium when it stops being whole, BlockMoved when its medium changes
// (with tokens and lora, those of the block before it, when it comes back
// to the device). Becoming whole is TakeCheckpoints' to report.
func (m *Manager) checkpointMoved(k, h *Hash, g int, wasDev, wasAny bool, tokens []int32, lora int32) {
	before, was := m.checkpointMedium(h, g, k, wasDev, wasAny)
	if !was {
		return // not whole before: reported already, or never
	}
	after, is := m.checkpointMedium(h, g, nil, false, false)
	switch {
	case !is:
		m.bp.events.removed(h, before, g)
	case after == before:
	case after == Device:
		m.bp.events.onboarded(h, nil, tokens, m.bs, lora, g)
	default:
		m.bp.events.moved(h, before, after, g)
	}
}

// eachCheckpoint calls fn for the hash of every whole checkpoint of
// every state group, once each (for Snapshot), with its medium: at the
// index entry of its page 0.
func (m *Manager) eachCheckpoint(fn func(h *Hash, g int, medium Medium)) {
	if m.bp.gone == nil {
		return
	}
	first := func(k, h *Hash, g int, ref allocator.BlockID) {
		if *k != ckptKey(h, 0) {
			return
		}
		if id, ok := m.bp.findIn(k, g); ok && id == ref {
			if medium, whole := m.checkpointMedium(h, g, nil, false, false); whole {
				fn(h, g, medium)
			}
		}
	}
	for id := allocator.BlockID(1); int(id) < len(m.bp.hash); id++ {
		if m.bp.hasContent(id) && m.isCheckpoint(id) {
			first(&m.bp.hash[id], &m.bp.parent[id], m.bp.groupOf(id), id)
		}
	}
	if t := m.tier; t != nil {
		t.index.each(func(_ *Hash, id allocator.BlockID) {
			if g := t.groupOf(id); t.quiet[g] {
				k := t.content(id)
				first(&k, &t.parent[id], g, hostRef(id))
			}
		})
	}
}

// isCheckpoint reports whether block id holds a checkpoint page (it is in
// a State group): those are not reported as KV events page by page.
func (m *Manager) isCheckpoint(id allocator.BlockID) bool {
	return m.ckptGroup(m.bp.groupOf(id))
}

// ckptGroup reports whether group g's cached blocks are checkpoint pages.
func (m *Manager) ckptGroup(g int) bool {
	return m.ret.ckpt && m.kinds[g].pages() > 0
}

// lookupState finds the longest L <= full with a checkpoint after L blocks
// in every state group, records its pages and returns L (0 when none, or
// when checkpoints are off). A checkpoint TakeCheckpoints handed out in
// the step being built is no hit (unwritten, below).
func (m *Manager) lookupState(s *sequence, full int) int {
	r := &m.ret
	r.hit, r.hitPages = 0, r.hitPages[:0]
	if !r.ckpt || r.noHit {
		return 0
	}
	for L := full; L > 0; L-- {
		k := ckptKey(&s.hashes[L-1], 0)
		if _, ok := m.bp.findIn(&k, r.states[0]); !ok {
			continue
		}
		if m.checkpointAt(s, L) && !m.freshPages() {
			r.hit = L
			return L
		}
		r.hitPages = r.hitPages[:0]
	}
	return 0
}

// freshPages reports whether a device page of the checkpoint in hitPages
// was committed in the step being built: TakeCheckpoints handed it out to
// be written by that step's kernels, which run after the Copy directives
// a hit reads it with (audit 65: an admission made after TakeCheckpoints
// in the same step restored the unwritten state). The scheduler takes
// checkpoints last in a step, so no hit of its is refused here.
func (m *Manager) freshPages() bool {
	for _, b := range m.ret.hitPages {
		if b > nullBlock && m.bp.fresh(b) {
			return true
		}
	}
	return false
}

// checkpointAt collects into hitPages every page of the checkpoints after
// L blocks of s, reporting whether all are cached (on the device, or the
// host: a hostRef).
func (m *Manager) checkpointAt(s *sequence, L int) bool {
	return m.findCheckpoint(&s.hashes[L-1], true)
}

// checkpointed reports whether a whole checkpoint after the block whose
// chain hash is h is cached, on either tier: with groups of another kind
// besides the State groups, the hit may stop short of a checkpoint that
// exists (a window cut it), and one is enough.
func (m *Manager) checkpointed(h *Hash) bool { return m.findCheckpoint(h, false) }

// findCheckpoint reports whether every page of the checkpoints after the
// block whose chain hash is h is cached, appending each to hitPages when
// keep is set.
func (m *Manager) findCheckpoint(h *Hash, keep bool) bool {
	r := &m.ret
	for i, g := range r.states {
		for j := range r.off[i+1] - r.off[i] {
			k := ckptKey(h, j)
			id, ok := m.bp.findIn(&k, g)
			if !ok {
				return false
			}
			if keep {
				r.hitPages = append(r.hitPages, id)
			}
		}
	}
	return true
}

// statePages counts the last lookup's checkpoint pages that an admission
// adds to the blocks the pool holds: those claiming takes out of the
// evictable blocks (stateClaims) and those on the host tier, each
// onboarded into a new device block.
func (m *Manager) statePages() int {
	n := 0
	for _, b := range m.ret.hitPages {
		if b < 0 || b > nullBlock && m.bp.pool.IsCached(b) {
			n++
		}
	}
	return n
}

// stateClaims counts the last lookup's checkpoint pages that claiming takes
// out of the evictable blocks, for admission's block count.
func (m *Manager) stateClaims() int {
	n := 0
	for _, b := range m.ret.hitPages {
		if b > nullBlock && m.bp.pool.IsCached(b) {
			n++
		}
	}
	return n
}

// claimState claims the device checkpoint pages of the lookup just made
// for s, before its own pages are allocated (host ones are onboarded).
func (m *Manager) claimState(s *sequence) {
	for _, b := range m.ret.hitPages {
		if b > nullBlock {
			m.claim(b)
		}
	}
}

// pinState pins the checkpoint pages s hit, all on the device now, while
// it runs.
func (m *Manager) pinState(s *sequence) {
	s.keep.pins = append(s.keep.pins, m.ret.hitPages...)
	m.ret.pinned += len(m.ret.hitPages)
}

// admitState finishes the admission of s for its state groups: copies
// from the checkpoint it hit into its own state pages, and, at its first
// admission, a checkpoint at its branch point full when the lookup stopped
// there at a miss (miss), the hit stopped short of it and the blocks are
// available. h is the chain hash of block full-1: the branch point may lie
// past the tokens s holds now, when AdmitChunk cut it (branchPoint); the
// checkpoint is then handed out by the TakeCheckpoints of the step whose
// chunk passes it.
func (m *Manager) admitState(s *sequence, id SeqID, full int, miss bool, h *Hash) {
	r := &m.ret
	if !r.ckpt {
		return
	}
	if r.hit > 0 {
		for i, g := range r.states {
			own := s.ext[g-1].blocks
			for j, src := range r.hitPages[r.off[i]:r.off[i+1]] {
				m.queueCopy(src, own[j])
			}
		}
		m.stats.copies += uint64(len(r.hitPages))
	}
	if s.keep.branch >= 0 {
		m.reaskState(s, id)
		return
	}
	if !miss || full <= r.hit || full == 0 {
		return
	}
	// Remembered for a readmission (reaskState), should this admission
	// not get it.
	s.keep.pendingAt, s.keep.pendingHash = int32(full), *h
	if r.whole.noAsk || m.available() < r.size() || m.pendingAt(h, full) || m.checkpointed(h) {
		return
	}
	m.askState(s, id, full, h)
}

// askState asks for the checkpoint of s (handle id) after L blocks, the
// block whose chain hash is h: its pages, handed out by TakeCheckpoints.
func (m *Manager) askState(s *sequence, id SeqID, L int, h *Hash) {
	r := &m.ret
	for range r.size() {
		s.keep.pending = append(s.keep.pending, m.allocBlock())
	}
	s.keep.pendingAt, s.keep.pendingLen, s.keep.pendingHash = int32(L), len(s.tokens), *h
	r.pend = append(r.pend, id)
	m.notePeak()
}

// reaskState asks again, at a readmission of s, for the checkpoint at its
// branch point that its first admission wanted and that is not cached:
// not asked then (no room for its pages), dropped before it was handed
// out (the admission was undone, or the sequence preempted before the
// step's TakeCheckpoints), forgotten by Uncompute, or evicted since. The readmission computes the point when its
// hit stops before it. Only a checkpoint of s's own content is asked: the
// slot's record may be an earlier sequence's (then its hash differs, or
// names the same content, whose checkpoint serves s alike).
func (m *Manager) reaskState(s *sequence, id SeqID) {
	r := &m.ret
	L := int(s.keep.pendingAt)
	if L == 0 || L <= r.hit || len(s.keep.pending) > 0 || r.whole.noAsk || m.available() < r.size() {
		return
	}
	h := &s.keep.pendingHash
	switch {
	case L <= len(s.hashes) && s.hashes[L-1] == *h:
	case r.whole.on && r.whole.full == L && r.whole.hash == *h:
		// Past the chunk AdmitChunk kept: the lookup over the whole
		// sequence names it.
	default:
		return
	}
	if m.pendingAt(h, L) || m.checkpointed(h) {
		return
	}
	m.askState(s, id, L, h)
}

// branchPoint is the full-attention hit of the lookup just made for s, in
// blocks, whether it stopped at a miss, and the chain hash of its last
// block (nil when 0): the lookup over the whole sequence when AdmitChunk
// cut it, so that a branch point past the first chunk is still s's.
func (m *Manager) branchPoint(s *sequence) (full int, miss bool, h *Hash) {
	r := &m.ret
	if r.whole.on {
		full, miss, h = r.whole.full, r.whole.miss, &r.whole.hash
	} else {
		full, miss = r.lastFull, r.lastMiss
		if full > 0 {
			h = &s.hashes[full-1]
		}
	}
	return full, miss, h
}

// pendingAt reports whether a sequence with a checkpoint not handed out
// yet already asks for the checkpoint after the same L blocks of content
// (chain hash h of block L-1): one is enough. On the way it drops from the
// list the sequences whose checkpoint is gone (freed, preempted, swapped
// out), so that a caller that never takes checkpoints does not grow it
// for the manager's life: it holds the sequences with a checkpoint
// pending, those admitted in the step and those waiting for a chunk to
// reach theirs, which bounds its cost.
func (m *Manager) pendingAt(h *Hash, L int) bool {
	r := &m.ret
	live := r.pend[:0]
	found := false
	for _, id := range r.pend {
		o, err := m.seq(id)
		if err != nil || len(o.keep.pending) == 0 {
			continue
		}
		live = append(live, id)
		found = found || int(o.keep.pendingAt) == L && o.keep.pendingHash == *h
	}
	clear(r.pend[len(live):])
	r.pend = live
	return found
}

// TakeCheckpoints appends to dst the state checkpoints to write in the
// step being built (see Checkpoint) and commits them to the prefix index:
// a server calls it once per step, with TakeCopies, and writes each while
// computing the step. A checkpoint is asked at a sequence's first
// admission and handed out by the next call, or, when AdmitChunk cut the
// sequence before its branch point, by the first call after the chunk
// (Append) that reaches or passes the point: the step computing that
// chunk writes it. A checkpoint whose sequence was preempted or freed
// before, or, when asked within the admitted tokens, appended to before
// this call, is dropped, and so is one whose position lies inside the
// sequence's pending drafts (AppendSpeculative): a checkpoint is never
// taken from a draft's state; a readmission of a preempted sequence asks
// for it again, while it is not cached. A checkpoint handed out is no hit
// until the step being built ends (EndStep, or a call taking its
// directives): the step's kernels write it, after the Copy directives a
// hit would read it with. It appends nothing without State groups or in
// the vLLM-compatible mode (UnifiedFreeQueue), where states are not
// cached.
func (m *Manager) TakeCheckpoints(dst []Checkpoint) []Checkpoint {
	r := &m.ret
	r.out = r.out[:0]
	first := len(dst)
	wait := r.pend[:0] // the checkpoints no chunk has reached yet
	for _, id := range r.pend {
		s, err := m.seq(id)
		if err != nil || s.state != seqRunning || len(s.keep.pending) == 0 {
			continue
		}
		L := int(s.keep.pendingAt)
		switch at := L * m.bs; {
		case at <= s.keep.pendingLen && len(s.tokens) != s.keep.pendingLen:
			// Asked within the admitted tokens, which were appended to
			// since: the step that passed the checkpoint's position has
			// run without it.
			m.dropPending(s)
			continue
		case at <= s.keep.pendingLen:
		case len(s.tokens) < at:
			// Past the tokens computed so far (AdmitChunk cut the
			// sequence before it): this step does not reach it either.
			s.keep.pendingLen = len(s.tokens)
			wait = append(wait, id)
			continue
		case at > len(s.tokens)-s.spec:
			// A draft's position: the state there is a draft's, which a
			// rejection would leave keyed by tokens the sequence no
			// longer has, and the step computes the position as a draft,
			// not again once it is accepted. A checkpoint is never taken
			// from a draft's state: dropped, as one passed without it (a
			// readmission asks for it again).
			m.dropPending(s)
			continue
		case m.checkpointed(&s.hashes[L-1]):
			// The step computes (pendingLen, len], which passes it;
			// another sequence's copy was written meanwhile.
			m.dropPending(s)
			continue
		}
		for i, g := range r.states {
			pages := s.keep.pending[r.off[i]:r.off[i+1]]
			var before Medium
			was := true
			if m.bp.gone != nil {
				before, was = m.checkpointMedium(&s.hashes[L-1], g, nil, false, false)
			}
			for j, b := range pages {
				key := ckptKey(&s.hashes[L-1], j)
				m.commit(b, &key, g, L-1, allocator.NoBlock, s)
				m.notePage(b, &s.hashes[L-1])
			}
			switch toks := s.tokens[(L-1)*m.bs : L*m.bs]; {
			case !was:
				// Block L-1's hash and tokens, without a parent: a
				// checkpoint is the whole state at L and follows no
				// block of its group (Snapshot lists it alike).
				m.bp.events.stored(s.hashes[L-1:L], nil, toks, m.bs, s.opts.LoRA, Device, g)
			case before == Host:
				// Whole on the host already (another state group's
				// checkpoint was missing): its pages are on the device now.
				m.bp.events.onboarded(&s.hashes[L-1], nil, toks, m.bs, s.opts.LoRA, g)
			}
			r.out = append(r.out, pages...)
			dst = append(dst, Checkpoint{Seq: id, Group: g, Tokens: L * m.bs})
		}
		s.keep.pins = append(s.keep.pins, s.keep.pending...)
		m.ret.pinned += len(s.keep.pending)
		s.keep.pending, s.keep.freshStep = s.keep.pending[:0], m.step
	}
	r.pend = wait
	// Views into out, taken once it no longer grows: each checkpoint's
	// pages, its state group's number.
	off := 0
	for i := first; i < len(dst); i++ {
		n := m.kinds[dst[i].Group].pages()
		dst[i].Pages = r.out[off : off+n : off+n]
		off += n
	}
	return dst
}

// uncomputeCheckpoint forgets the checkpoint at s's branch point when
// TakeCheckpoints handed it out (its pages are among s's pins) and it lies
// past computed, so the step that was to write it never ran (Uncompute):
// each page s alone holds leaves the index (BlockRemoved for the
// checkpoint, as when it is evicted) and the pins. O(pins x pages).
func (m *Manager) uncomputeCheckpoint(s *sequence, computed int) {
	r := &m.ret
	L := int(s.keep.pendingAt)
	if !r.ckpt || len(s.keep.pending) > 0 || L == 0 || L*m.bs <= computed || L > len(s.hashes) {
		return
	}
	pins := s.keep.pins[:0]
	for _, b := range s.keep.pins {
		if g := m.bp.groupOf(b); m.isState(g) && m.bp.hasContent(b) && m.bp.pool.RefCount(b) == 1 && m.isPageOf(b, &s.hashes[L-1], g) {
			m.forgetPage(b, g)
			m.bp.release(b)
			continue
		}
		pins = append(pins, b)
	}
	m.ret.pinned -= len(s.keep.pins) - len(pins)
	s.keep.pins = pins
}

// forgetPage drops the cached content of checkpoint page b of state group
// g, which s holds: as eviction does, reported for the checkpoint
// (checkpointGone) and not as a page of its own.
func (m *Manager) forgetPage(b allocator.BlockID, g int) {
	m.bp.uncache(b, m.bp.quiet == nil || !m.bp.quiet[g])
	if m.bp.forgetter != nil {
		m.bp.forgetter.Forget(b)
	}
}

// isPageOf reports whether cached block b of state group g holds a page
// of the checkpoint after the block whose chain hash is h.
func (m *Manager) isPageOf(b allocator.BlockID, h *Hash, g int) bool {
	for j := range m.kinds[g].pages() {
		if m.bp.hash[b] == ckptKey(h, j) {
			return true
		}
	}
	return false
}

// dropPending releases the pages of a checkpoint of s never handed out.
func (m *Manager) dropPending(s *sequence) {
	for i := len(s.keep.pending) - 1; i >= 0; i-- {
		m.bp.release(s.keep.pending[i])
	}
	s.keep.pending = s.keep.pending[:0]
}

// checkPending counts the pending checkpoint pages of running sequence s
// into refs: held, uncached, of a state group.
func (m *Manager) checkPending(i int, s *sequence, refs []int32) error {
	for _, b := range s.keep.pending {
		if !m.bp.pool.Valid(b) || m.bp.hasContent(b) {
			return fmt.Errorf("paged: sequence slot %d has pending checkpoint page %d, which is cached or invalid", i, b)
		}
		refs[b]++
	}
	return nil
}
