package paged

import "github.com/pagedkv/pagedkv/allocator"

// Offloading keeps more prefix cache than the device holds, in the manner
// of TensorRT-LLM's secondary pool: a cached device block that is evicted
// has its content copied to the host tier (an Offload directive) when it
// is the last device copy of that content, its retention priority reaches
// Config.OffloadPriority and the host tier can take it (possibly by
// evicting older offloaded content under Config.HostPolicy). The content
// stays in the prefix index as host-resident; a later hit onboards it (an
// Onboard directive into a fresh device block) instead of recomputing it.
// Tiers are exclusive for offloaded content: onboarding moves it back and
// frees the host block, so each hash is on the host at most once.

// hostRef encodes host block hb in a lookup result, where device IDs are
// positive and 0 is the null block of a sliding window.
func hostRef(hb allocator.BlockID) allocator.BlockID { return -2 - hb }

// hostOf decodes hostRef.
func hostOf(ref allocator.BlockID) allocator.BlockID { return -2 - ref }

// hostHit looks h up in the host index and returns it as a hostRef.
func (m *Manager) hostHit(h *Hash) (allocator.BlockID, bool) {
	if m.tier == nil {
		return 0, false
	}
	hb, ok := m.tier.index.get(h)
	if !ok {
		return 0, false
	}
	return hostRef(hb), true
}

// offload moves the cached content of device block id, just taken from the
// policy as a victim, to the host tier, and reports whether it did; when it
// did, the content has left the device index (a BlockMoved event).
func (m *Manager) offload(id allocator.BlockID) bool {
	t := m.tier
	if t == nil || !t.offload || m.bp.dupNext[id] != id {
		return false // no tier, or another device block still holds the content
	}
	h := &m.bp.hash[id]
	if _, ok := t.index.get(h); ok || t.available() == 0 || t.priority(id, m.now) < t.floor {
		return false
	}
	hb := t.alloc(&m.bp.events)
	t.hash[hb] = *h
	if m.bp.parent != nil {
		t.parent[hb] = m.bp.parent[id]
	}
	t.index.set(h, hb)
	t.pool.ReleaseToCache(hb)
	t.policy.Insert(hb)
	m.push(Swap{Src: id, Dst: hb, Kind: Offload})
	m.bp.events.moved(h, Device, Host)
	m.bp.uncache(id, false)
	t.offloads++
	return true
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
	t := m.tier
	// Pin every host hit first: offloads caused by the device allocations
	// below must not pick one of them as a host victim.
	for _, ref := range s.blocks {
		if ref < 0 {
			hb := hostOf(ref)
			t.policy.Remove(hb)
			t.pool.Claim(hb)
		}
	}
	for k, ref := range s.blocks {
		if ref >= 0 {
			continue
		}
		hb := hostOf(ref)
		d := m.allocBlock()
		m.push(Swap{Src: hb, Dst: d, Kind: Onboard})
		t.index.del(&t.hash[hb])
		m.bp.events.moved(&t.hash[hb], Host, Device)
		t.hash[hb] = Hash{}
		if t.forgetter != nil {
			t.forgetter.Forget(hb)
		}
		t.pool.Release(hb)
		s.blocks[k] = d
		parent := allocator.NoBlock
		if k > 0 && s.blocks[k-1] != nullBlock {
			parent = s.blocks[k-1]
		}
		m.commit(d, s.hashes[k], 0, k, parent, s)
		t.onboards++
	}
}

// Onboard moves the offloaded part of a waiting sequence's cached prefix
// back to the device ahead of its admission, so the transfers (Onboard
// directives) overlap the current step instead of delaying the admitting
// one. The onboarded blocks join the device prefix cache as evictable; the
// blocks already on the device are kept there. It returns the number of
// blocks onboarded. All-or-nothing: ErrNoHostTier without a host tier,
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
