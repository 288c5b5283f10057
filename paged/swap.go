package paged

import (
	"math"

	"github.com/pagedkv/pagedkv/allocator"
)

// seqSwapped: the sequence's KV lives in the host tier (s.host); it holds
// no device blocks until SwapIn.
const seqSwapped = seqRunning + 1

// SwapKind says which way a Swap directive moves a block and why.
type SwapKind uint8

const (
	// SwapOut copies a device block of a preempted sequence to the host.
	SwapOut SwapKind = iota + 1
	// SwapIn copies a host block of a resumed sequence back to the device.
	SwapIn
	// Offload copies an evicted device block's cached content to the host.
	Offload
	// Onboard copies offloaded content back to the device on a prefix hit.
	Onboard
	// DeviceCopy is a copy-on-write copy between device blocks that was
	// decided before a later directive of the stream, so it runs in order
	// with them rather than with Batch.Copies.
	DeviceCopy
)

// String names the kind.
func (k SwapKind) String() string {
	switch k {
	case SwapOut:
		return "swap-out"
	case SwapIn:
		return "swap-in"
	case Offload:
		return "offload"
	case Onboard:
		return "onboard"
	case DeviceCopy:
		return "device-copy"
	}
	return "SwapKind(?)"
}

// SrcMedium returns where the directive reads.
func (k SwapKind) SrcMedium() Medium {
	if k == SwapIn || k == Onboard {
		return Host
	}
	return Device
}

// DstMedium returns where the directive writes.
func (k SwapKind) DstMedium() Medium {
	if k == SwapOut || k == Offload {
		return Host
	}
	return Device
}

// Swap is a transfer directive between tiers: the server copies the KV of
// block Src into block Dst, Src and Dst naming blocks of the pools
// Kind.SrcMedium and Kind.DstMedium (host and device block IDs are separate
// namespaces). Directives must run in the order given, before Batch.Copies
// and before the step's kernels: a source block may be handed out again by
// a later decision of the same step.
type Swap struct {
	// Src is the block copied from and Dst the block copied to.
	Src, Dst allocator.BlockID
	// Kind is the transfer kind; its SrcMedium and DstMedium name the pools.
	Kind SwapKind
	// Group is the KV cache group whose content the block holds
	// (Config.Groups; 0 for a model of one kind, and for DeviceCopy), so
	// a server whose groups keep their layers apart copies those layers.
	Group int
}

// TakeSwaps appends the pending tier directives to dst in order and clears
// them. BuildBatch does this for the caller; a caller that drains by hand
// takes swaps before copies (TakeCopies) and runs them in that order.
// Taking them ends the step being built (see SwapOut): the caller runs
// them and then the step's kernels.
func (m *Manager) TakeSwaps(dst []Swap) []Swap {
	m.EndStep()
	return m.takeSwaps(dst)
}

// takeSwaps is TakeSwaps without ending the step.
func (m *Manager) takeSwaps(dst []Swap) []Swap {
	if m.tier == nil {
		return dst
	}
	dst = append(dst, m.tier.moves...)
	m.tier.moves = m.tier.moves[:0]
	return dst
}

// EndStep tells the manager that the step being built ran: its kernels
// computed the KV of the sequences admitted or swapped in during it, so
// SwapOut may move them now, and Unadmit no longer takes back their
// admissions. Taking the step's directives ends the step too (TakeSwaps,
// TakeCopies, BuildBatch and DecodeStep: the directives decided after
// them run after the step's kernels), so a server that builds a batch
// every step never needs it; a caller that builds none (a simulation,
// package sched's Update) calls it once per step, after the step. It
// allocates nothing.
func (m *Manager) EndStep() {
	if len(m.bp.named) > 0 {
		m.bp.unpark()
	}
	m.bp.endStep()
	m.step++
	if m.step == 0 {
		m.wrapSteps()
	}
	if len(m.drops) > 0 {
		m.clearDrops()
	}
}

// clearDrops ends the marks Uncompute set in the step that just ran
// (sequence.dropNow): its kernels ran. A slot freed and reused since
// was cleared when it was taken, and is cleared again, which is right.
func (m *Manager) clearDrops() {
	for _, i := range m.drops {
		m.seqs[i].dropNow = false
	}
	m.drops = m.drops[:0]
}

// wrapSteps restarts the step counter after 2^32 steps: no sequence
// arrived in the new step 1, nor was swapped out in it.
func (m *Manager) wrapSteps() {
	m.step = 1
	for i := range m.seqs {
		m.seqs[i].arrived, m.seqs[i].outStep = 0, 0
		m.seqs[i].adm.ok = false
	}
}

// arrive records the admission of s in the step being built, whose lookup
// of n tokens, planned as p, the prefix statistics counted (Unadmit takes
// it back).
func (m *Manager) arrive(s *sequence, n int, p plan) {
	s.arrived = m.step
	s.adm = admitRecord{tokens: int32(n), need: int32(p.need), hits: int32(p.hits), onboard: int32(p.onboard),
		cached: int32(p.hits * m.bs), ok: true}
}

// nextStamp starts a pass that marks sequences (sequence.mark: the
// duplicate detection of BuildBatch, AppendStep, DecodeStep and the swaps)
// and returns its stamp: a mark equal to m.stamp is from this pass. When
// the stamp comes back to 0 every mark is cleared, so no mark of 2^32
// passes ago reads as this one's.
func (m *Manager) nextStamp() uint32 {
	m.stamp++
	if m.stamp == 0 {
		m.stamp = 1
		for i := range m.seqs {
			m.seqs[i].mark = 0
		}
	}
	return m.stamp
}

// swapGroup resolves ids to sequences in state want, each once.
func (m *Manager) swapGroup(op string, ids []SeqID, want seqState) error {
	if m.tier == nil {
		return errorf(ErrNoHostTier, "%s: Config.HostBlocks is 0", op)
	}
	if len(ids) == 0 {
		return errorf(ErrInvalid, "%s: no sequences", op)
	}
	stamp := m.nextStamp()
	var fresh SeqID // a sequence arrived in the step being built
	for _, id := range ids {
		s, err := m.seq(id)
		if err != nil {
			return err
		}
		if s.state != want {
			return errorf(ErrSequenceState, "%s: %v is %s", op, id, s.state)
		}
		if s.mark == stamp {
			return errorf(ErrInvalid, "%s: %v given twice", op, id)
		}
		s.mark = stamp
		if want == seqRunning && s.arrived == m.step && fresh == 0 {
			fresh = id
		}
	}
	if fresh != 0 {
		return errorf(ErrUncomputed, "%s: %v was admitted or swapped in during the step being built (its directives not taken yet), which has not computed its KV: preempt it by recompute", op, fresh)
	}
	return nil
}

// String names the state in error messages.
func (st seqState) String() string {
	switch st {
	case seqWaiting:
		return "waiting (not admitted, or preempted)"
	case seqRunning:
		return "running"
	case seqSwapped:
		return "swapped out"
	}
	return "unused"
}

// SwapOut preempts running sequences by swapping: every device block of
// the group is copied to a host block (a SwapOut directive each) and
// released, so the sequences keep their KV and SwapIn resumes them without
// recompute. Give sequences that share blocks (a fork group) in one call:
// a block shared inside the group is copied once and stays shared on the
// host. A block shared with a sequence outside the group is copied and
// stays on the device for the other. Committed blocks released here stay
// in the device prefix cache until evicted, and SwapIn reclaims them
// instead of copying when they are still there. All-or-nothing: ErrNoSpace
// when the host tier cannot take the group, ErrNoHostTier without one.
// With KV cache groups every group's table is swapped, state pages
// included (those of pending drafts' states too: the drafts stay pending),
// group 0 first.
//
// Of a sliding window (a window group's, or SeqOptions.Window's) and a
// chunked-local group only the blocks the next step reads are swapped:
// those from the first block the query at the position it computes from
// reads, the rule Append slides by (but a chunked-local group's last
// cached block, which a running sequence keeps with prefix caching as
// vLLM does, is not swapped where that query does not read it: it stays
// in the device prefix cache). That position is the accepted length
// (one less with drafts pending: the token sampled last is computed with
// them), or the earlier one Uncompute named since the sequence's last
// Append. The blocks before it are released with the others, without a
// host copy, and their entries come back null. A window slides only when
// tokens are appended, so a sequence swapped out right after a step of
// several tokens (a prompt chunk, a decode with drafts) still holds every
// block that step read; swapping them would bring it back holding more
// than its next step needs, and more than an admission may take
// (CanSwapIn's AdmitNever) where that step fits.
//
// Only computed KV is swapped. A step is built by the calls between two
// takings of its directives (TakeSwaps or TakeCopies; BuildBatch and
// DecodeStep take both) or EndStep calls, and its directives run before
// its kernels (Swap). So a sequence admitted (Admit, AdmitChunk, Create)
// or swapped in during the step being built, or forked from one, holds
// KV that step has not written yet: its own prompt blocks, and prefix
// hits on blocks another admission of the step committed, which that
// admission's kernels fill. SwapOut refuses a group naming such a
// sequence with ErrUncomputed, after its other checks, and changes
// nothing (the copies would be taken before the KV is written, and a
// SwapIn that found the device blocks evicted would read the copies);
// preempt it by recompute (Preempt, or Unadmit for an admission of the
// step). vLLM v1's scheduler preempts before it admits, so it never
// preempts a request admitted in the same step either. Tokens appended
// during the step to a sequence that was running before it are the
// caller's to account for, as with any preemption: Uncompute them first
// (their blocks leave the prefix cache, so SwapIn copies them back rather
// than reclaiming them) and schedule them again after SwapIn: the
// windows keep what the first of them reads. Without Uncompute, SwapOut
// takes every token as computed: it keeps only the window of the query
// at the accepted length (what the uncomputed tokens' queries read is
// released without a copy), and the full blocks they filled stay in the
// prefix cache, committed, for later lookups to hit. Those tokens cannot
// be computed after SwapIn (Truncate back to them is refused where a
// window released what their queries read): Preempt the sequence, so
// it is recomputed.
func (m *Manager) SwapOut(ids ...SeqID) error {
	if err := m.swapGroup("SwapOut", ids, seqRunning); err != nil {
		return err
	}
	t := m.tier
	need := 0
	for _, id := range ids {
		s := m.seqAt(id)
		c := m.swapFrom(s)
		for g := range m.ntables() {
			blocks, released, _, _ := s.tableAt(g)
			for _, b := range (*blocks)[max(released, m.swapDead(s, g, c)):] {
				if t.mark[b] == allocator.NoBlock {
					t.mark[b] = markCounted
					need++
				}
			}
		}
	}
	if need > t.available() {
		m.clearMarks(ids)
		return errorf(ErrNoSpace, "SwapOut: %d host blocks needed, %d available", need, t.available())
	}
	for _, id := range ids {
		s := m.seqAt(id)
		c := m.swapFrom(s)
		for g := range m.ntables() {
			blocks, released, _, host := s.tableAt(g)
			released = max(released, m.swapDead(s, g, c))
			for k, b := range *blocks {
				if k < released {
					*host = append(*host, allocator.NoBlock)
					continue
				}
				hb := t.mark[b]
				if hb == markCounted {
					hb = t.alloc(&m.bp.events)
					t.mark[b] = hb
					m.tier.push(Swap{Src: b, Dst: hb, Kind: SwapOut, Group: g})
					t.swapOuts++
					t.groups[g].SwapOutBlocks++
				} else {
					t.pool.Ref(hb)
				}
				*host = append(*host, hb)
			}
		}
	}
	m.clearMarks(ids)
	for _, id := range ids {
		s := m.seqAt(id)
		m.dropSpares(s) // spare draft states are not swapped
		c := m.swapFrom(s)
		for g := range m.ntables() {
			blocks, released, _, _ := s.tableAt(g)
			// Every device block is released, tail first, as before:
			// the dead ones (swapDead) got no host copy, and only now
			// count as released.
			m.bp.releaseTail(*blocks, released)
			*blocks = (*blocks)[:0]
			m.swapRelease(s, g, m.swapDead(s, g, c))
		}
		m.releaseKept(s)
		m.draftPages -= m.spages * s.spec // its drafts' states go too
		s.state = seqSwapped
		s.outStep = m.step
		s.version++
		m.nrunning--
	}
	t.swapOutCalls++
	t.nswapped += len(ids)
	return nil
}

// swapFrom is the first position of running s that a step computes
// after it is swapped back in: its accepted length, every token before
// which the caller has computed, as Append slides from (one less with
// drafts pending: the token sampled last is computed with them), or the
// earlier position Uncompute named since its last Append.
func (m *Manager) swapFrom(s *sequence) int {
	c := max(0, slideFrom(s, s.spec > 0))
	if m.redoLive(s) {
		c = min(c, int(s.redo-1)) // at most a position of s: an int
	}
	return c
}

// redoLive reports whether the position Uncompute named for s still
// stands: no Append grew s past the length it had then.
func (m *Manager) redoLive(s *sequence) bool {
	return s.redo > 0 && (s.redoLen == math.MaxUint32 || uint64(len(s.tokens)) <= uint64(s.redoLen))
}

// swapDead is how many leading entries of group g's table of running s no
// query from position c on reads: the blocks a sliding window (a window
// group's, or SeqOptions.Window's without groups) or a chunked-local
// group would release when the next step appends at c (the rule of
// slide and slideGroups). SwapOut releases them without a host copy, so a
// sequence swapped out right after a step of several tokens (drafts, a
// prompt chunk), whose groups still hold what that step read, comes back
// holding what its next step reads, as one swapped out after a decode
// does; else it could hold more than its next step needs, and more than
// an admission may take beside the watermark (CanSwapIn's AdmitNever).
// A chunked-local group with prefix caching keeps its last cached block
// in a running sequence (vLLM's rule, deadBlocks), which no query from c
// reads where c's chunk starts after it: SwapOut releases that block too
// (committed, it stays in the device prefix cache). Swapped with the
// rest, it came back as a block more than the next step reads, and a
// sample at the edge of what a swap-in may take (the watermark's) was
// never swapped in where a readmission fits (sched's
// TestSwappedOutPastTheChunkComesBack).
func (m *Manager) swapDead(s *sequence, g, c int) int {
	switch {
	case g == 0 && s.opts.Window > 0 && !m.hybrid():
		return m.windowStart(s.opts.Window, c)
	case g > 0 && m.kinds[g].local():
		return m.liveStart(g, c)
	}
	return 0
}

// swapRelease counts the entries before to of group g's table of s, just
// swapped out, released, as a slide to to would (slide, slideTable): they
// have no host copy.
func (m *Manager) swapRelease(s *sequence, g, to int) {
	if g == 0 {
		if to > s.released {
			s.released = to
			s.committed = max(s.committed, min(to, len(s.hashes)))
		}
		return
	}
	if t := &s.ext[g-1]; to > t.released {
		t.released = to
		t.committed = max(t.committed, min(to, len(s.hashes)))
	}
}

func (m *Manager) seqAt(id SeqID) *sequence {
	idx, _ := id.parts()
	return &m.seqs[idx]
}

func (m *Manager) clearMarks(ids []SeqID) {
	for _, id := range ids {
		s := m.seqAt(id)
		for g := range m.ntables() {
			blocks, released, _, _ := s.tableAt(g)
			for _, b := range (*blocks)[released:] {
				m.tier.mark[b] = allocator.NoBlock
			}
		}
	}
}

// CanSwapIn answers, without changing anything, whether SwapIn of the
// group would succeed now, and how many device blocks it takes. Blocks
// whose committed content is still held on the device by another sequence
// cost nothing; the watermark applies as for admission.
func (m *Manager) CanSwapIn(ids ...SeqID) (Admission, int, error) {
	if err := m.swapGroup("CanSwapIn", ids, seqSwapped); err != nil {
		return AdmitNever, 0, err
	}
	need, a := m.planSwapIn(ids)
	return a, need, nil
}

// planSwapIn counts the device blocks a swap-in of the group allocates:
// one per distinct host block, except committed content the device index
// holds in a referenced block (claiming it is free). REQUIRES: a valid group.
func (m *Manager) planSwapIn(ids []SeqID) (int, Admission) {
	t := m.tier
	need, full := 0, 0
	for _, id := range ids {
		s := m.seqAt(id)
		for g := range m.ntables() {
			_, released, committed, host := s.tableAt(g)
			for k := released; k < len(*host); k++ {
				hb := (*host)[k]
				if t.hmark[hb] != allocator.NoBlock {
					continue
				}
				t.hmark[hb] = markCounted
				full++
				if k < committed {
					if d, ok := m.bp.index.getIn(&s.hashes[k], groupSalt(g)); ok && !m.bp.pool.IsCached(d) {
						continue
					}
				}
				need++
			}
		}
	}
	m.clearHostMarks(ids)
	wm := m.watermarkBlocks()
	switch {
	case full > m.bp.pool.Usable()-wm:
		return need, AdmitNever
	case need > m.available()-wm:
		return need, AdmitLater
	}
	return need, AdmitOK
}

func (m *Manager) clearHostMarks(ids []SeqID) {
	for _, id := range ids {
		s := m.seqAt(id)
		for g := range m.ntables() {
			_, released, _, host := s.tableAt(g)
			for _, hb := range (*host)[released:] {
				m.tier.hmark[hb] = allocator.NoBlock
			}
		}
	}
}

// SwapIn resumes swapped-out sequences: committed blocks still in the
// device prefix cache are reclaimed, every other host block is copied to a
// new device block (a SwapIn directive each; host blocks shared in the
// group come back as one shared device block), and the host blocks are
// freed. All-or-nothing with the answer of CanSwapIn: ErrNoSpace (later)
// or ErrNever.
func (m *Manager) SwapIn(ids ...SeqID) error {
	if err := m.swapGroup("SwapIn", ids, seqSwapped); err != nil {
		return err
	}
	need, a := m.planSwapIn(ids)
	switch a {
	case AdmitNever:
		return errorf(ErrNever, "SwapIn: the group needs more than the %d usable blocks (watermark %d)", m.bp.pool.Usable(), m.watermarkBlocks())
	case AdmitLater:
		return errorf(ErrNoSpace, "SwapIn: %d blocks needed, %d available (watermark %d)", need, m.available(), m.watermarkBlocks())
	}
	t := m.tier
	// Claims first: an evictable block counted as a hit must not be
	// evicted by the allocations that follow.
	for _, id := range ids {
		s := m.seqAt(id)
		for g := range m.ntables() {
			blocks, released, committed, host := s.tableAt(g)
			*blocks = (*blocks)[:0]
			for k, hb := range *host {
				d := nullBlock
				switch {
				case k < released:
				case t.hmark[hb] >= 0:
					d = t.hmark[hb]
					m.bp.pool.Ref(d)
				case k < committed:
					if hit, ok := m.bp.index.getIn(&s.hashes[k], groupSalt(g)); ok {
						m.claim(hit)
						t.hmark[hb], d = hit, hit
					}
				}
				*blocks = append(*blocks, d)
			}
		}
	}
	for _, id := range ids {
		s := m.seqAt(id)
		for g := range m.ntables() {
			blocks, released, committed, host := s.tableAt(g)
			for k, hb := range *host {
				if k < released || (*blocks)[k] != nullBlock {
					continue
				}
				d := t.hmark[hb]
				if d >= 0 {
					m.bp.pool.Ref(d)
				} else {
					d = m.allocBlock()
					t.hmark[hb] = d
					m.tier.push(Swap{Src: hb, Dst: d, Kind: SwapIn, Group: g})
					t.swapIns++
					t.groups[g].SwapInBlocks++
				}
				(*blocks)[k] = d
				// Sequences sharing a block may disagree on whether it is
				// committed (a fork accepted speculative tokens the other
				// has not): the first that counts it committed commits it.
				if k < committed && !m.bp.hasContent(d) {
					m.recommit(s, g, k, d)
				}
			}
		}
	}
	m.notePeak() // the claims alone may have raised it: no allocation noted it
	m.clearHostMarks(ids)
	for _, id := range ids {
		s := m.seqAt(id)
		m.dropHostTables(s)
		// A block shared inside the group comes back shared.
		s.gslow = m.hybrid()
		m.draftPages += m.spages * s.spec
		s.state = seqRunning
		// Its reclaimed blocks may hold content an admission of this
		// step committed and has not computed: no SwapOut in this step.
		s.arrived, s.adm.ok = m.step, false
		s.version++
		m.nrunning++
	}
	t.swapInCalls++
	t.nswapped -= len(ids)
	return nil
}

// recommit commits block k of group g of s, just filled from another tier
// with the content s.hashes[k], to the device index and reports it.
func (m *Manager) recommit(s *sequence, g, k int, d allocator.BlockID) {
	blocks, _, _, _ := s.tableAt(g)
	parent := allocator.NoBlock
	if k > 0 && (*blocks)[k-1] != nullBlock {
		parent = (*blocks)[k-1]
	}
	m.commit(d, &s.hashes[k], g, k, parent, s)
	m.bp.markComputed(d) // the SwapIn brings KV a step computed
	if m.bp.events.on() {
		var ph *Hash
		if k > 0 {
			ph = &s.hashes[k-1]
		}
		m.bp.events.stored(s.hashes[k:k+1], ph, s.tokens[k*m.bs:(k+1)*m.bs], m.bs, s.opts.LoRA, Device, g)
	}
}

// dropHost releases the host tables of a swapped-out sequence (Free).
func (m *Manager) dropHost(s *sequence) {
	m.dropHostTables(s)
	m.tier.nswapped--
}

// dropHostTables releases every group's host table of s, group 0 first,
// each tail first, and empties them. Released entries are NoBlock, so it
// does not depend on the released counts (Free resets those first).
func (m *Manager) dropHostTables(s *sequence) {
	for g := range m.ntables() {
		_, _, _, host := s.tableAt(g)
		for k := len(*host) - 1; k >= 0 && (*host)[k] != allocator.NoBlock; k-- {
			m.tier.pool.Release((*host)[k])
		}
		*host = (*host)[:0]
	}
}
