package paged

import (
	"math"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// AdmitChunk admits a waiting sequence for chunked prefill: at most maxNew
// of its uncached tokens are computed now. It looks up the longest cached
// prefix over the whole sequence, as Admit does, then cuts the sequence to
// that prefix plus maxNew tokens and admits the cut sequence: only the
// blocks of those tokens are claimed, allocated, committed to the prefix
// cache and announced (BlockStored), and the pool check counts only them.
// The tokens past the cut are appended to rest, which is returned; the
// caller gives them back chunk by chunk with Append once the KV before
// them is computed. The hashes of the cut-off full blocks, computed when
// the sequence was added, are kept with their tokens: when Append gives
// back the same tokens, each block that fills takes its kept hash instead
// of being hashed again (so a prompt hashed on the request's goroutine,
// AddHashed or NewPromptHasher, is not hashed again on the scheduler's);
// from the first block whose tokens differ, and after Truncate, Preempt or
// Fork, blocks are hashed as usual. (Admitting the whole sequence and truncating it would
// evict cached blocks for nothing and leave blocks whose KV was never
// computed in the prefix cache.) This is how vLLM schedules a long prompt:
// allocate_slots for the step's tokens only.
//
// When the uncached tokens are at most maxNew it is Admit, and rest comes
// back unchanged. The prefix statistics count the whole sequence once, as
// Admit's do. With State groups, the branch point where a state
// checkpoint is taken (docs/hybrid.md) is the whole sequence's lookup's,
// not the cut's: when it lies past the cut, the checkpoint's pages are
// taken now and TakeCheckpoints hands it out after the Append whose chunk
// reaches or passes it, so the step computing that chunk writes it.
// A checkpoint hit the whole admission drops for a miss (it would not
// fit, see Admit) is kept for the cut where the prefill in chunks of at
// most maxNew tokens fits the pool with it (counted as for ErrNever
// below: the hit's pages are held at the admission's step only, then as
// retention pins), and dropped for the cut too otherwise. Past the
// admission's step a kept hit holds no more blocks than the prompt
// computed from scratch would at the same position, which fits the pool
// whole: it never makes a later chunk fail where the miss's would not.
// Where the whole prompt keeps the hit, or the cut keeps it so, the cut
// drops it where Admit would drop the cut's, and the cut is then maxNew
// tokens computed from scratch: either drop counts in
// Stats.CheckpointHitsDropped.
// Where the longest hit makes the admission refused for good (the hit
// leaves at most maxNew tokens, admitted whole as Admit: ErrNever, or
// ErrNoSpace with no sequence running; or cut, ErrNever) and a miss does
// not, AdmitChunk takes the longest shorter hit that is not, with which
// it decides whole or cut anew, or the miss, in the default mode's
// hybrid managers (see Admit; Stats.HitFallbacks): a long cached prefix
// never makes a prompt that fits in chunks never fit. CanAdmitChunk
// answers for the same hit.
// maxNew below 1 is ErrInvalid; a sequence that is not
// waiting, ErrSequenceState; one created from hashes (AddFromHashes) that
// would be cut, ErrInvalid (its tokens are placeholders, which rest could
// not give back). ErrNoSpace means the chunk does not fit now. On any
// error nothing changes but the prefix statistics, as with Admit. Hybrid
// managers (Config.Groups) cut every group the same way.
//
// ErrNever means the prompt cannot be computed chunk by chunk in this
// pool, even alone: admitted with this chunk and given the rest by Append
// at most maxNew tokens a step, at some step it would hold more blocks
// than the pool's usable ones less the watermark (or it is longer than a
// sequence may be). That is not the whole prompt's size: a full-attention
// group holds every block of the tokens so far, but a sliding-window
// group only the window before the step and the step's tokens, a
// chunked-local group its chunk and the step's, a State group its pages,
// a Shared group nothing; the default mode adds the retention pins the
// sequence may hold (the window blocks before its branch point, its
// checkpoint pages; docs/hybrid.md), but for the checkpoint at its branch
// point, which the admission leaves out when the prompt fits chunk by
// chunk only without it (so a prompt that fits admitted whole is never
// never in chunks). So a prompt far larger than the pool
// admitted whole (Admit's ErrNever) can be admitted in chunks: Gemma 3's
// 128K-token prompt needs 253,952 blocks whole and peaks at 55,936 in
// 8,192-token chunks. The answer is for chunks of at most maxNew: a
// smaller chunk may fit where a larger one never does, and a caller that
// later appends chunks larger than maxNew may find an Append refused
// (ErrNoSpace) even alone. Counting the steps costs O(uncached tokens /
// maxNew x groups), paid only where the whole prompt does not fit or the
// pins might not.
func (m *Manager) AdmitChunk(id SeqID, maxNew int, rest []int32) (cached int, restOut []int32, err error) {
	s, err := m.seq(id)
	if err != nil {
		return 0, rest, err
	}
	if maxNew < 1 {
		return 0, rest, errorf(ErrInvalid, "AdmitChunk %v: %d new tokens, want at least 1", id, maxNew)
	}
	if s.state != seqWaiting {
		return 0, rest, errorf(ErrSequenceState, "AdmitChunk: %v is %s", id, s.state)
	}
	n := len(s.tokens)
	defer m.uncap()
	full, a := m.planFallback(s, maxNew)
	full, a = m.chunkHit(s, full, a, maxNew)
	if maxNew >= n-full.hits*m.bs {
		cached, err := m.Admit(id)
		return cached, rest, err
	}
	keep := full.hits*m.bs + maxNew
	never, noAsk := m.chunkNever(s, full, a, maxNew)
	if never {
		m.countQuery(n, full)
		return 0, rest, errorf(ErrNever, "%v needs %d blocks computed %d tokens a step (%d admitted whole), the pool has %d usable (watermark %d)",
			id, m.chunkPeak(s, full.hits*m.bs, maxNew), maxNew, full.held, m.bp.pool.Usable(), m.watermarkBlocks())
	}
	if s.unknown {
		return 0, rest, errorf(ErrInvalid, "AdmitChunk %v: created from hashes, its tokens past a cut at %d are unknown", id, keep)
	}
	// The cut sequence's lookup finds the same hits: the lookup returns
	// the longest hittable prefix up to a limit, and the cut still reaches
	// past every hit, so a full-attention sequence needs no second lookup
	// here. A lookup with windows (Config.Groups or SeqOptions.Window),
	// chunks or state checkpoints may find fewer over the cut: then cut
	// again.
	nh := len(s.hashes)
	// The branch point is the whole sequence's (branchPoint): the cut
	// lookup stops at the cut, not at the miss where the cached chain
	// ends. When it lies past the cut, its checkpoint waits for the
	// chunk that reaches it (TakeCheckpoints).
	w := &m.ret.whole
	if m.hybrid() {
		w.full, w.miss = m.ret.lastFull, m.ret.lastMiss
		if w.full > 0 {
			w.hash = s.hashes[w.full-1]
		}
	}
	// A whole plan that dropped its checkpoint hit for a miss (the hit's
	// pages besides the whole prompt never fit, or not now in an idle
	// pool) drops it for the cut too, unless chunkHit kept it (its
	// chunks fit): missed is then false.
	m.ret.noHit = m.ret.missed
	// Afterwards missed says whether this admission dropped it.
	defer func() { m.ret.missed, m.ret.noHit = m.ret.noHit, false }()
	m.truncate(s, keep) // a waiting sequence: tokens and hashes only
	for m.hybrid() || s.opts.Window > 0 {
		p, _ := m.planAdmit(s)
		if m.ret.missed && !m.ret.noHit {
			// The whole plan kept the hit but could not admit it now;
			// the cut's plan dropped it (planGroups: it does not fit
			// now, in an idle pool, where the cut from scratch does):
			// dropped for a miss, as Admit drops it, and counted so
			// (the statistics count the whole lookup with no hit,
			// Admit counts the drop). The cuts to come find no
			// checkpoint.
			m.ret.noHit = true
			full.hits, full.evictableHits, full.onboard = 0, 0, 0
		}
		if p.hits*m.bs+maxNew >= keep {
			break
		}
		keep = p.hits*m.bs + maxNew
		m.truncate(s, keep)
	}
	m.countQuery(n, full)
	m.keepPending(s, n, nh)
	w.on, w.noAsk = m.hybrid(), noAsk
	cached, err = m.admitUncounted(id)
	w.on, w.noAsk = false, false
	if err != nil {
		// Admit failed before changing anything: the buffers still hold
		// the cut tokens and hashes.
		dropPending(s)
		s.tokens = s.tokens[:n]
		s.hashes = s.hashes[:nh]
		return 0, rest, err
	}
	// What the statistics counted is the whole sequence's lookup, and
	// Admit's drop and fallback.
	dropped, fell := s.adm.dropped, s.adm.fell
	m.arrive(s, n, full)
	s.adm.cached, s.adm.dropped, s.adm.fell = int32(cached), dropped, fell
	return cached, append(rest, s.tokens[keep:n]...), nil
}

// CanAdmitChunk answers, without changing anything, whether AdmitChunk
// with maxNew would succeed now: the pool check counts the blocks of the
// cached prefix and the chunk only, and never means AdmitChunk's ErrNever
// (the prompt cannot be computed chunk by chunk, maxNew tokens a step,
// in this pool). It answers for the hit AdmitChunk takes, shorter than
// the longest where that one is refused for good (see AdmitChunk). Its
// errors are AdmitChunk's.
func (m *Manager) CanAdmitChunk(id SeqID, maxNew int) (Admission, error) {
	s, err := m.seq(id)
	if err != nil {
		return AdmitNever, err
	}
	if maxNew < 1 {
		return AdmitNever, errorf(ErrInvalid, "CanAdmitChunk %v: %d new tokens, want at least 1", id, maxNew)
	}
	if s.state != seqWaiting {
		return AdmitNever, errorf(ErrSequenceState, "CanAdmitChunk: %v is %s", id, s.state)
	}
	n, nh := len(s.tokens), len(s.hashes)
	defer m.uncap()
	full, a := m.planFallback(s, maxNew)
	full, a = m.chunkHit(s, full, a, maxNew)
	if maxNew >= n-full.hits*m.bs {
		return a, nil
	}
	if never, _ := m.chunkNever(s, full, a, maxNew); never {
		return AdmitNever, nil
	}
	keep := full.hits*m.bs + maxNew
	if s.unknown {
		return AdmitNever, errorf(ErrInvalid, "CanAdmitChunk %v: created from hashes, its tokens past a cut at %d are unknown", id, keep)
	}
	s.tokens, s.hashes = s.tokens[:keep], s.hashes[:min(nh, keep/m.bs)]
	m.ret.noHit = m.ret.missed // as AdmitChunk does
	_, a = m.planAdmit(s)
	m.ret.noHit = false
	s.tokens, s.hashes = s.tokens[:n], s.hashes[:nh]
	return a, nil
}

// chunkHit is AdmitChunk's second look, in chunks of k tokens, at a state
// checkpoint hit that planFallback's plan of the whole sequence s, p and
// a, dropped for a miss (planGroups: the hit never fits, or not now with
// no sequence running, and the miss fits now). That plan holds the whole
// prompt with the hit's pages at once; a prefill in chunks holds at each
// step only what the step reads (chunkPeak): window and chunked-local
// blocks behind it are released, and the hit's pages are held at the
// admission's step only, then as retention pins, which the sequence
// gives up when alone and short of room. So where the admission cuts the
// sequence (k below the tokens past the hit), the hit is kept, and its
// plan returned, when its prefill in chunks of at most k tokens fits the
// pool (chunkNever answers not never); otherwise p and a stand. The
// cut's own plan then judges the admission's step as Admit judges any
// (planGroups: the hit dropped where it does not fit now in an idle pool,
// waiting beside running sequences). From the next step on the sequence
// holds no more than the miss would at the same position, and the miss
// fits the pool now whole, so no chunk is refused alone for the hit; as
// for any prompt in chunks, the checkpoint asked at the branch point is
// the exception (chunkNever), which one-token chunks always fit (see
// AdmitChunk). Only a lookup whose hit was dropped pays the second plan.
func (m *Manager) chunkHit(s *sequence, p plan, a Admission, k int) (plan, Admission) {
	if !m.ret.missed || !m.ret.ckpt || m.ret.capOn {
		return p, a
	}
	m.ret.keepHit = true
	q, b := m.planAdmit(s)
	m.ret.keepHit = false
	if m.ret.hit > 0 && k < len(s.tokens)-q.hits*m.bs {
		if never, _ := m.chunkNever(s, q, b, k); !never {
			return q, b
		}
	}
	return m.missGroups(p.need, p.alloc), a
}

// keepPending keeps, in s.pend, the hashes of the full
// blocks a cut removed from s, which had n tokens and nh hashes before it
// (the buffers still hold them past their lengths), with the tokens they
// were computed over, so that hashing them again when Append gives them
// back is skipped (reusePending).
func (m *Manager) keepPending(s *sequence, n, nh int) {
	from := len(s.hashes)
	nh = min(nh, n/m.bs)
	if !m.hashing || nh <= from {
		return
	}
	if s.pend == nil {
		s.pend = new(pending)
	}
	p := s.pend
	p.from, p.parent = from, Hash{}
	if from > 0 {
		p.parent = s.hashes[from-1]
	}
	p.hashes = append(p.hashes[:0], s.hashes[from:nh]...)
	p.tokens = append(p.tokens[:0], s.tokens[from*m.bs:nh*m.bs]...)
}

// countQuery adds a lookup over n tokens, planned as p, to the prefix
// statistics.
func (m *Manager) countQuery(n int, p plan) {
	m.stats.queries++
	m.stats.queryTokens += uint64(n)
	m.stats.hitTokens += uint64(p.hits * m.bs)
	m.stats.queryBlocks += uint64(p.need)
	m.stats.hitBlocks += uint64(p.hits)
	if m.tier != nil {
		m.tier.hostHitBlocks += uint64(p.onboard)
	}
}

// admitUncounted is Admit leaving the prefix statistics as they were.
func (m *Manager) admitUncounted(id SeqID) (int, error) {
	saved := m.stats
	var host uint64
	if m.tier != nil {
		host = m.tier.hostHitBlocks
	}
	cached, err := m.Admit(id)
	m.stats.queries, m.stats.queryTokens, m.stats.hitTokens = saved.queries, saved.queryTokens, saved.hitTokens
	m.stats.queryBlocks, m.stats.hitBlocks = saved.queryBlocks, saved.hitBlocks
	if m.tier != nil {
		m.tier.hostHitBlocks = host
	}
	return cached, err
}

// Uncompute tells the manager that the KV of a running sequence from
// position computed on was never computed: its tokens were given to the
// manager (Append, AdmitChunk) for a step that then dropped the sequence,
// by preemption (Preempt, SwapOut) or otherwise. Blocks holding such a
// position were committed to the prefix cache when their last token came;
// every one of them that this sequence alone references leaves the cache
// now (BlockRemoved), so that no later lookup hits a slot that holds no KV,
// and the sequence counts them uncommitted: the next call that commits its
// blocks (Append, AcceptSpeculative, or Admit after Preempt) commits them
// again, which the caller makes when their tokens are scheduled again.
// Blocks shared with another sequence keep their content, but for those
// stored in the prefix cache during the step being built (a fork made in
// the step shares them, or a later admission of the step hit them): no
// kernel has computed them, and s will not, so they leave the cache too,
// and every sharer counts them uncommitted from its entry on, as s does
// (one that computes them commits them again with its next Append).
// Shared blocks onboarded or swapped in during the step hold KV copied
// before its kernels and stay, as computed (as for Pin). A state checkpoint
// TakeCheckpoints handed out for s past computed was never written
// either: it leaves the index too (a readmission of s asks for it
// again). A SwapOut before the next Append (or AppendSpeculative)
// keeps the blocks of every sliding window and chunked-local group that
// the query at computed reads, for the step that computes them again; a
// Truncate that cuts computed off forgets it. Until then, within the
// step being built (before its directives are taken), Truncate may cut a
// sequence with State groups down to computed (not below its accepted
// tokens otherwise): the step has not run, so no state absorbed its
// tokens. computed equal
// to the sequence's length changes nothing; computed outside 0 to the
// length is ErrInvalid, a sequence that is not running ErrSequenceState,
// and nothing changes.
func (m *Manager) Uncompute(id SeqID, computed int) error {
	s, err := m.running(id, "Uncompute")
	if err != nil {
		return err
	}
	if computed < 0 || computed > len(s.tokens) {
		return errorf(ErrInvalid, "Uncompute %v: %d computed tokens, want 0 to %d", id, computed, len(s.tokens))
	}
	m.uncompute(s, uint32(id), computed)
	return nil
}

// uncompute is Uncompute of running s, the sequence in slot idx.
// REQUIRES: computed in [0, length].
func (m *Manager) uncompute(s *sequence, idx uint32, computed int) {
	from := computed / m.bs // the first block holding an uncomputed slot
	// Entries a window released stay done (see Manager.slide): they name
	// the null block, which must never be committed.
	m.forgetFrom(s.blocks, from)
	s.committed = min(s.committed, max(from, s.released))
	for g := range s.ext {
		t := &s.ext[g]
		m.forgetFrom(t.blocks, from)
		t.committed = min(t.committed, max(from, t.released))
	}
	m.voidShared(s, from)
	m.uncomputeCheckpoint(s, computed)
	if computed < len(s.tokens) {
		// The next step computes from here (SwapOut keeps its window).
		// Clamped to 32 bits, which only keeps more: a position lower, a
		// length that never expires.
		r := uint32(min(uint64(computed)+1, math.MaxUint32))
		n := uint32(min(uint64(len(s.tokens)), math.MaxUint32))
		if !m.redoLive(s) {
			s.redo, s.redoLen = r, n
			if m.anyState && !s.dropNow {
				s.dropNow = true
				m.drops = append(m.drops, idx)
			}
		} else {
			// A live record of an earlier step (dropNow false) may name a
			// position a step computed since: it stays unmarked.
			s.redo, s.redoLen = min(s.redo, r), max(s.redoLen, n)
		}
	}
	// Append's fast paths commit only the block a token fills: the next
	// token takes the general path, which commits the blocks again.
	m.setOwn(s, false)
	s.gslow = m.hybrid()
}

// Unadmit takes back the admission (Admit, AdmitChunk, Create) of a
// sequence admitted during the step being built (see SwapOut for what a
// step is), for a scheduler that finds it cannot hold the sequence after
// all: its KV was never computed. It is Uncompute of every token past
// the cached prefix the admission returned, then Preempt, except that
// the statistics read as if the admission had not been made: the prefix
// statistics lose what it counted (PrefixQueries, PrefixQueryTokens,
// PrefixHitTokens, PrefixQueryBlocks, PrefixHitBlocks,
// Tiers.HostHitBlocks, and HitFallbacks and CheckpointHitsDropped where
// it fell back from its longest hit or dropped a checkpoint hit), and no
// preemption is counted. Blocks the admission stored in the prefix cache
// and this sequence alone references leave it (BlockRemoved), as with
// Uncompute; what it did stays done and counted: evictions and
// onboarding (Evictions, Tiers.Onboards and the groups'), blocks stored
// (BlocksStored), copy directives (Copies) and retention promises passed
// (RetainedHits). The sequence waits with
// its tokens and hashes, as after Preempt; the tokens AdmitChunk cut off
// are the caller's, to give back with Append (the hashes it kept for
// them are reused). Another sequence holding blocks the admission stored
// (a later admission of the step that hit them, or a fork of it made
// during the step) would count their uncomputed KV as cached: Unadmit
// refuses it with ErrSequenceState, changing nothing; take that one back
// first (Unadmit, or Free of the fork). A sequence that is not running, or
// was not admitted in the step being built (swapped in, forked, or admitted in an earlier
// step, whose KV a step computed: Preempt it), is ErrSequenceState, and
// nothing changes.
func (m *Manager) Unadmit(id SeqID) error {
	s, err := m.running(id, "Unadmit")
	if err != nil {
		return err
	}
	if !s.adm.ok || s.arrived != m.step {
		return errorf(ErrSequenceState, "Unadmit: %v was not admitted in the step being built (swapped in, forked, or a step ran since: Preempt it)", id)
	}
	r := s.adm
	if m.sharedFrom(s, int(r.hits)) {
		return errorf(ErrSequenceState, "Unadmit: another sequence holds blocks %v stored in the step being built (a later admission hit them, or a fork): take it back first (Unadmit, or Free of the fork)", id)
	}
	m.uncompute(s, uint32(id), min(int(r.cached), len(s.tokens)))
	m.preempt(s, true)
	st := &m.stats
	st.unadmits++
	st.queries--
	st.queryTokens -= uint64(r.tokens)
	st.hitTokens -= uint64(r.hits) * uint64(m.bs)
	st.queryBlocks -= uint64(r.need)
	st.hitBlocks -= uint64(r.hits)
	if r.dropped {
		st.ckptDropped--
	}
	if r.fell {
		st.hitFallbacks--
	}
	if m.tier != nil {
		m.tier.hostHitBlocks -= uint64(r.onboard)
	}
	return nil
}

// sharedFrom reports whether another sequence (or pin) references a
// block of s's attention tables from entry from on.
func (m *Manager) sharedFrom(s *sequence, from int) bool {
	for g := range m.ntables() {
		if m.isState(g) {
			continue
		}
		blocks, _, _, _ := s.tableAt(g)
		for _, b := range (*blocks)[min(from, len(*blocks)):] {
			if b > nullBlock && m.bp.pool.RefCount(b) > 1 {
				return true
			}
		}
	}
	return false
}

// forgetFrom drops the cached content of blocks[from:] where the table's
// owner alone references it.
func (m *Manager) forgetFrom(blocks []allocator.BlockID, from int) {
	for _, b := range blocks[min(from, len(blocks)):] {
		if b > nullBlock && m.bp.hasContent(b) && m.bp.pool.RefCount(b) == 1 {
			m.bp.forget(b)
		}
	}
}

// voidShared forgets the blocks of s's attention tables from entry from
// on that hold content stored in the step being built (blockPool.fresh)
// and that other sequences share too, a fork made during the step or an
// admission of the step that hit them: forgetFrom keeps shared blocks,
// but no kernel of the step computes this content for s, and a sharer
// that dropped it too (its own Uncompute) would otherwise leave it
// cached for later hits. A sharer that does compute it in the step
// commits it again with its next Append: each sharer counts the block
// uncommitted from its entry on (the committed marks are lowered, and
// Append takes the general path, as for s). A block that anything but
// running sequences' tables references (a retention pin, a parked copy
// source) is kept as before; a user pin never holds a fresh block
// (PinHashes). Shared fresh blocks are rare, so finding their sharers
// scans every running sequence's table of their group.
func (m *Manager) voidShared(s *sequence, from int) {
	cands := m.voids[:0]
	for g := range m.ntables() {
		if m.isState(g) {
			continue
		}
		blocks, _, _, _ := s.tableAt(g)
		for _, b := range (*blocks)[min(from, len(*blocks)):] {
			if b > nullBlock && m.bp.hasContent(b) && m.bp.fresh(b) && m.bp.pool.RefCount(b) > 1 {
				cands = append(cands, b)
			}
		}
	}
	m.voids = cands[:0]
	if len(cands) == 0 {
		return
	}
	slices.Sort(cands)
	refs := slices.Grow(m.voidRefs[:0], len(cands))[:len(cands)]
	clear(refs)
	m.voidRefs = refs[:0]
	// each calls fn for every entry of a running sequence's table that
	// names a candidate (i its index in cands).
	each := func(fn func(h *sequence, g, k, i int)) {
		for j := range m.seqs {
			h := &m.seqs[j]
			if h.state != seqRunning {
				continue
			}
			for g := range m.ntables() {
				if m.isState(g) {
					continue
				}
				blocks, _, _, _ := h.tableAt(g)
				for k, b := range *blocks {
					if b <= nullBlock {
						continue
					}
					if i, ok := slices.BinarySearch(cands, b); ok {
						fn(h, g, k, i)
					}
				}
			}
		}
	}
	each(func(_ *sequence, _, _, i int) { refs[i]++ })
	void := false
	for i, b := range cands {
		if refs[i] == m.bp.pool.RefCount(b) {
			void = true
		} else {
			refs[i] = -1 // held beside the tables: kept
		}
	}
	if !void {
		return
	}
	each(func(h *sequence, g, k, i int) {
		if refs[i] < 0 {
			return
		}
		if g == 0 {
			h.committed = min(h.committed, k)
		} else {
			t := &h.ext[g-1]
			t.committed = min(t.committed, k)
		}
		m.setOwn(h, false)
		h.gslow = m.hybrid()
	})
	for i, b := range cands {
		if refs[i] >= 0 {
			m.bp.forget(b)
		}
	}
}

// chunkNever reports whether waiting s, whose whole admission planAdmit
// answered a (plan p), can never have its prompt computed chunk by chunk:
// admitted from its p.hits cached blocks with a chunk of k tokens (k below
// the uncached tokens), then given the rest by Append at most k tokens a
// step, it would at some step hold more blocks than the pool can (Usable
// less the watermark); or it is longer than a sequence may be. A whole
// admission holds every block of the prompt in every group; computed in
// chunks, window and chunked-local groups release what the next step no
// longer reads (see chunkPeak), so the peak is far lower, but for the
// checkpoint pages of the default mode (docs/hybrid.md): those its hit
// restores, held at the admission's step, and those of the checkpoint it
// asks at its branch point, held until the step whose chunk reaches it.
// Its other retention pins count for nothing: alone in the pool, a
// sequence releases them when it needs the room (retention.go). Where
// the whole admission fits and those pages cannot add enough to
// overflow, the answer is false without counting the steps; with
// UnifiedFreeQueue or prefix caching off there are none, so a prompt
// that fits whole is never refused (vLLM's decisions). The state checkpoint an admission asks for at the branch
// point is taken only where there is room for it: when the prompt fits
// chunk by chunk without it and not with it, the answer is false and
// noAsk true, and AdmitChunk's admission leaves it out (its pages, held
// to the end of the prefill, would make a later chunk fail alone).
func (m *Manager) chunkNever(s *sequence, p plan, a Admission, k int) (never, noAsk bool) {
	n := len(s.tokens)
	lim := m.cfg.MaxModelLen
	if !m.hybrid() {
		if s.opts.Window == 0 {
			return a == AdmitNever, false // full attention holds the whole prompt at the end
		}
		lim = m.seqLimit(s.opts.Window)
	}
	if n > lim {
		return true, false
	}
	room := m.bp.pool.Usable() - m.watermarkBlocks()
	_, pages, ask := m.chunkPins(s)
	if a != AdmitNever {
		if pages+ask == 0 {
			return false, false
		}
		// The window pins are released when the sequence alone needs
		// the room (releasePins): only the hit's pages (at the
		// admission's step) and the asked checkpoint's (until a chunk
		// passes it) count.
		if p.held+pages+ask <= room {
			return false, false
		}
	}
	// The asked checkpoint's pages are held at every step (chunkPeak).
	switch {
	case m.chunkPeak(s, p.hits*m.bs, k) <= room:
		return false, false
	case ask > 0 && m.chunkPeakAsk(s, p.hits*m.bs, k, false) <= room:
		return false, true
	}
	return true, false
}

// chunkPins returns the branch point of s (in blocks; 0 when retention
// pins no window block for it), the checkpoint pages it pins, the ones
// its hit restored, and those of the one an admission may ask for at its
// branch point (ask).
func (m *Manager) chunkPins(s *sequence) (br, pages, ask int) {
	if !m.hybrid() || !m.ret.on {
		return 0, 0, 0
	}
	br = m.ret.lastFull
	if s.keep.branch >= 0 {
		br = int(s.keep.branch)
	}
	if r := &m.ret; r.ckpt {
		pages = m.statePages()
		// admitState's condition to ask for a checkpoint (an upper
		// bound: it asks only where the pool has room for it, and not
		// for a point already cached or asked).
		if s.keep.branch >= 0 && int(s.keep.pendingAt) > r.hit && len(s.keep.pending) == 0 ||
			s.keep.branch < 0 && r.lastMiss && br > r.hit {
			ask = r.size()
		}
	}
	return br, pages, ask
}

// chunkPeak returns the most blocks, in every group, that s holds while
// its n tokens are computed from c0 cached ones, k at a time (see
// chunkNever). It takes O((n-c0)/k x groups) steps; it runs only for
// sequences that do not fit the pool whole.
func (m *Manager) chunkPeak(s *sequence, c0, k int) int { return m.chunkPeakAsk(s, c0, k, true) }

// chunkPeakAsk is chunkPeak, without the asked checkpoint's pages unless
// ask.
func (m *Manager) chunkPeakAsk(s *sequence, c0, k int, withAsk bool) int {
	n := len(s.tokens)
	var one [1]groupKind
	kinds := m.kinds
	if !m.hybrid() {
		one[0] = windowKind{newAttention(m.bs), s.opts.Window}
		kinds = one[:]
	}
	// The checkpoint pages: those of the hit, the source of the
	// admission's Copy directives, at the admission's step, and those of
	// the checkpoint asked at the branch point until the step whose chunk
	// reaches it has run. The other retention pins (the window blocks
	// before the branch point once the window leaves them, and these
	// checkpoints after those steps) are released when the sequence
	// alone needs the room (releasePins), so they count for nothing.
	br, pages, ask := m.chunkPins(s)
	if !withAsk {
		ask = 0
	}
	at := br
	if s.keep.branch >= 0 {
		at = int(s.keep.pendingAt)
	}
	peak := 0
	for t0 := c0; t0 < n; t0 += k {
		t1 := min(t0+k, n)
		committed := 0
		if m.hashing {
			committed = t0 / m.bs
		}
		held := 0
		if t0 == c0 {
			held += pages
		}
		if t0 < at*m.bs {
			held += ask
		}
		for g, kind := range kinds {
			need := kind.need(t1)
			if !kind.local() {
				held += need
				continue
			}
			// Released: the entries before the admission's hit row (the
			// first block a hit of c0 tokens needs), then those before
			// the first block the step's first query reads.
			from := 0
			if c0 > 0 && m.hybrid() {
				from = m.hitFrom(g, c0/m.bs)
			} else if c0 > 0 {
				from = windowFrom(one[0].(windowKind), c0/m.bs)
			}
			dead := max(from, kind.dead(t0, committed))
			if t0 == c0 {
				dead = from // the admission does not slide
			}
			held += need - dead
		}
		peak = max(peak, held)
	}
	return peak
}
