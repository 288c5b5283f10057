package paged

import (
	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// Offloading keeps more prefix cache than the device holds, in the manner
// of TensorRT-LLM's secondary pool: a cached device block that is evicted
// has its content copied to the host tier (an Offload directive) when it
// is the last device copy of that content, its retention priority reaches
// Config.OffloadPriority and the host tier can take it (possibly by
// evicting older offloaded content under Config.HostPolicy). The content
// stays in the prefix index as host-resident; a later hit onboards it (an
// Onboard directive into a fresh device block) instead of recomputing it.
// Tiers are exclusive for offloaded content: onboarding moves it back and
// frees the host block, so each hash is on the host at most once per KV
// cache group.
//
// With several groups every group whose blocks the prefix cache keeps
// offloads: full attention, sliding window and chunked blocks, and state
// checkpoint pages in the default mode (checkpoint.go; a checkpoint is
// only worth something whole, but its pages are cached blocks like any
// other and are evicted one by one, so each is offloaded on its own, and
// the lookup needs every page on one tier or the other). The host index
// keys content by (hash, group) as the device index does, and the hybrid
// lookup (groups.go, group_kinds.go) takes content found on the host as
// present, under each kind's hit rule. Admission onboards every host hit
// of every group, and of the checkpoint, into a new device block before
// allocating the rest; Onboard does the same ahead of admission.

// hostRef encodes host block hb in a lookup result, where device IDs are
// positive and 0 is the null block of a sliding window.
func hostRef(hb allocator.BlockID) allocator.BlockID { return -2 - hb }

// hostOf decodes hostRef.
func hostOf(ref allocator.BlockID) allocator.BlockID { return -2 - ref }

// hostHit looks h up in group 0 of the host index (blockPool.hostHitIn).
func (m *Manager) hostHit(h *Hash) (allocator.BlockID, bool) { return m.bp.hostHitIn(h, 0) }

// hostHitIn looks (h, g) up in the host index and returns it as a hostRef.
func (p *blockPool) hostHitIn(h *Hash, g int) (allocator.BlockID, bool) {
	if p.host == nil {
		return 0, false
	}
	hb, ok := p.host.get(h, g)
	if !ok {
		return 0, false
	}
	return hostRef(hb), true
}

// findIn looks (h, g) up in the device index, else the host index (a
// hostRef): the hybrid lookup treats offloaded content as present.
func (p *blockPool) findIn(h *Hash, g int) (allocator.BlockID, bool) {
	if id, ok := p.index.getIn(h, groupSalt(g)); ok {
		return id, true
	}
	return p.hostHitIn(h, g)
}

// moved reports content (h, g) moving between tiers; state checkpoint
// pages are not KV events (checkpoint.go).
func (p *blockPool) moved(h *Hash, g int, from, to Medium) {
	if !p.quiet[g] {
		p.events.moved(h, from, to, g)
	}
}

// offload moves the cached content of device block id, just taken from the
// eviction order as a victim, to the host tier, and reports whether it
// did; when it did, the content has left the device index (a BlockMoved
// event). now is the time the content's retention priority is read at.
// With several groups the content keeps its group: the host index is keyed
// by (hash, group) as the device index is.
func (p *blockPool) offload(id allocator.BlockID, now int64) bool {
	t := p.host
	if t == nil || !t.offload {
		return false
	}
	p.index.settle() // the duplicate lists are current
	if p.index.dupNext(id) != id {
		return false // another device block still holds the content
	}
	h := &p.hash[id]
	g := p.groupOf(id)
	if _, ok := t.get(h, g); ok || t.available() == 0 || t.priority(id, now) < t.floor {
		return false
	}
	hb := t.alloc(&p.events)
	var parent *Hash
	if p.parent != nil {
		parent = &p.parent[id]
	}
	t.hprio[hb], t.hexp[hb] = int8(t.priority(id, now)), t.expires[id]
	t.put(hb, h, g, parent)
	t.push(Swap{Src: id, Dst: hb, Kind: Offload, Group: g})
	p.moved(h, g, Device, Host)
	p.uncache(id, false)
	t.offloads++
	t.groups[g].Offloads++
	return true
}

// pinHost takes host hit ref out of the host policy, so offloads caused by
// the device allocations of the same admission cannot evict it.
func (m *Manager) pinHost(ref allocator.BlockID) {
	hb := hostOf(ref)
	m.tier.policy.Remove(hb)
	m.tier.pool.Claim(hb)
}

// onboardRef moves host hit ref (pinned by pinHost), content (h, g) at
// depth in s's chain after device block parent, into a new device block
// (an Onboard directive), commits it there and returns it.
func (m *Manager) onboardRef(ref allocator.BlockID, h Hash, g, depth int, parent allocator.BlockID, s *sequence) allocator.BlockID {
	t := m.tier
	hb := hostOf(ref)
	level, until := int(t.hprio[hb]), t.hexp[hb]
	d := m.allocBlock()
	t.push(Swap{Src: hb, Dst: d, Kind: Onboard, Group: g})
	t.unindex(hb)
	if !m.bp.quiet[g] {
		// The move, with what a BlockStored of the block carries, for
		// consumers that cannot follow moves (event.go, BlockMoved).
		var parentHash *Hash
		if depth > 0 {
			parentHash = &s.hashes[depth-1]
		}
		var toks []int32
		if !s.unknown {
			toks = s.tokens[depth*m.bs : (depth+1)*m.bs]
		}
		m.bp.events.onboarded(&h, parentHash, toks, m.bs, s.opts.LoRA, g)
	}
	t.hash[hb] = Hash{}
	if t.forgetter != nil {
		t.forgetter.Forget(hb)
	}
	t.pool.Release(hb)
	// Onboarding is a reuse: the content comes back at the level it
	// had (as a device hit keeps it); the admission's promise, if any,
	// reaches it afterwards (retainHits), raising it, never lowering.
	if until != 0 && until <= m.now {
		level, until = eviction.DefaultPriority, 0
	}
	m.bp.commit(d, &h, g)
	m.bp.markComputed(d) // the Onboard brings KV a step computed
	m.stats.stored++
	m.noteCommitAt(d, &h, g, depth, parent, s, level, until)
	t.onboards++
	t.groups[g].Onboards++
	return d
}

// takeHits finishes an admission whose table s.blocks holds the lookup's
// hits: host hits are onboarded into new device blocks and the leading
// null entries of a sliding window are counted as released. onboard is the
// number of host hits.
func (m *Manager) takeHits(s *sequence, onboard int) {
	s.released = 0
	for s.released < len(s.blocks) && s.blocks[s.released] == nullBlock {
		s.released++
	}
	if onboard == 0 {
		return
	}
	// Pin every host hit first: offloads caused by the device allocations
	// below must not pick one of them as a host victim.
	for _, ref := range s.blocks {
		if ref < 0 {
			m.pinHost(ref)
		}
	}
	for k, ref := range s.blocks {
		if ref >= 0 {
			continue
		}
		parent := allocator.NoBlock
		if k > 0 && s.blocks[k-1] != nullBlock {
			parent = s.blocks[k-1]
		}
		s.blocks[k] = m.onboardRef(ref, s.hashes[k], 0, k, parent, s)
	}
}

// hostHits counts the host hits of the last hybrid lookup: in the groups'
// rows and in the state checkpoint pages.
func (m *Manager) hostHits() int {
	n := 0
	for g := range m.ntables() {
		n += countHost(m.hitRow(g))
	}
	return n + countHost(m.ret.hitPages)
}

// countHost counts the host hits (hostRefs) of row.
func countHost(row []allocator.BlockID) int {
	n := 0
	for _, b := range row {
		if b < 0 {
			n++
		}
	}
	return n
}

// onboardGroups onboards the host hits of the last hybrid lookup for s:
// every group's row, left to right, then the checkpoint pages, each into
// a new device block that takes the hit's place in its row. The device
// hits must be claimed first, so the allocations cannot evict them.
func (m *Manager) onboardGroups(s *sequence) {
	if m.tier == nil || m.hostHits() == 0 {
		return
	}
	// Pin every host hit before the first allocation (see takeHits).
	for g := range m.ntables() {
		for _, b := range m.hitRow(g) {
			if b < 0 {
				m.pinHost(b)
			}
		}
	}
	for _, b := range m.ret.hitPages {
		if b < 0 {
			m.pinHost(b)
		}
	}
	for g := range m.ntables() {
		row := m.hitRow(g)
		for k, b := range row {
			if b >= 0 {
				continue
			}
			parent := allocator.NoBlock
			if k > 0 && row[k-1] != nullBlock {
				parent = row[k-1]
			}
			row[k] = m.onboardRef(b, s.hashes[k], g, k, parent, s)
		}
	}
	r := &m.ret
	for i, b := range r.hitPages {
		if b < 0 {
			g, j := r.pageAt(i)
			k := ckptKey(&s.hashes[r.hit-1], j)
			r.hitPages[i] = m.onboardRef(b, k, g, r.hit-1, allocator.NoBlock, s)
			m.notePage(r.hitPages[i], &s.hashes[r.hit-1])
			if m.bp.gone != nil {
				// The page was on the host only (a device copy is a device hit).
				var toks []int32
				if !s.unknown {
					toks = s.tokens[(r.hit-1)*m.bs : r.hit*m.bs]
				}
				m.checkpointMoved(&k, &s.hashes[r.hit-1], g, false, true, toks, s.opts.LoRA)
			}
		}
	}
}

// hitRow is group g's row of the last hybrid lookup.
func (m *Manager) hitRow(g int) []allocator.BlockID {
	if g == 0 {
		return m.hits
	}
	return m.ghits[g-1]
}

// Onboard moves the offloaded part of a waiting sequence's cached prefix
// back to the device ahead of its admission, so the transfers (Onboard
// directives) overlap the current step instead of delaying the admitting
// one. The onboarded blocks join the device prefix cache as evictable; the
// blocks already on the device are kept there. It returns the number of
// blocks onboarded. It prefetches the longest cached prefix, the lookup
// Admit starts from (for the whole sequence, also when AdmitChunk will
// admit a chunk): where a hybrid manager's Admit or AdmitChunk takes a
// shorter hit instead (Stats.HitFallbacks), the blocks onboarded past it
// stay in the device prefix cache, evictable. All-or-nothing: ErrNoHostTier without a host tier,
// ErrSequenceState unless the sequence is waiting, ErrNoSpace when the
// device cannot take the blocks without evicting the prefix itself.
func (m *Manager) Onboard(id SeqID) (int, error) {
	s, err := m.seq(id)
	if err != nil {
		return 0, err
	}
	if m.tier == nil {
		return 0, errorf(ErrNoHostTier, "Onboard %v: Config.HostBlocks is 0", id)
	}
	if s.state != seqWaiting {
		return 0, errorf(ErrSequenceState, "Onboard %v: it is %s", id, s.state)
	}
	p, _ := m.planAdmit(s)
	if m.hybrid() {
		return m.onboardWaiting(s, id, p)
	}
	if p.onboard == 0 {
		return 0, nil
	}
	if p.onboard+p.evictableHits > m.available() {
		return 0, errorf(ErrNoSpace, "Onboard %v: %d blocks to onboard, %d available", id, p.onboard, m.available())
	}
	// Pin the device part of the prefix while the allocations run, as
	// Admit does, then give every block back to the cache tail first.
	for _, b := range m.hits {
		if b > nullBlock {
			m.claim(b)
		}
	}
	s.blocks = append(s.blocks[:0], m.hits...)
	m.takeHits(s, p.onboard)
	m.bp.releaseTail(s.blocks, 0)
	s.blocks, s.released = s.blocks[:0], 0
	return p.onboard, nil
}

// onboardWaiting is Onboard for a hybrid manager, whose last lookup (plan
// p) found the hits of every group: the device hits are claimed while the
// host hits are onboarded, then every block is given back to the cache.
func (m *Manager) onboardWaiting(s *sequence, id SeqID, p plan) (int, error) {
	n := m.hostHits()
	if n == 0 {
		return 0, nil
	}
	if need := n + p.evictableHits + m.stateClaims(); need > m.available() {
		return 0, errorf(ErrNoSpace, "Onboard %v: %d blocks to onboard, %d more to keep, %d available", id, n, need-n, m.available())
	}
	m.claimHits(s)
	m.onboardGroups(s)
	m.bp.releaseTail(m.ret.hitPages, 0)
	for g := len(m.ghits) - 1; g >= 0; g-- {
		m.bp.releaseTail(m.ghits[g], 0)
	}
	m.bp.releaseTail(m.hits, 0)
	return n, nil
}
