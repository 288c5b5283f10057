package paged

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// Hybrid retention: which cached blocks a hybrid manager gives up first
// (docs/hybrid.md has the reasoning and the figures).
//
// With a sliding-window group, a prefix hit of L tokens needs the
// full-attention blocks of [0, L) and only the window blocks of the last
// window before L: need = ceil((W-1)/BlockSize) blocks. A window block
// therefore serves a hit only if a likely hit point lies less than a window
// after it; every other window block is dead weight in the cache. And a hit
// is all or nothing: once a chain's last full-attention block or one of its
// last window blocks is evicted, the hit falls back to the previous point
// whose window is still cached, often the start.
//
// So without Config.UnifiedFreeQueue a manager with a window (or state,
// checkpoint.go) group sorts the cached, unreferenced blocks onto three
// shelves, evicted in order:
//
//   - low: window blocks no known hit point can use (they slid out of the
//     window far from any such point). They stay cached, so a hit that
//     nobody foresaw can still use them, but any allocation takes them
//     before anything else cached.
//   - the eviction policy (Config.Policy, LRU by default): everything with
//     a speculative future, as in a single-group manager: a finished
//     sequence's full-attention chain and the window before its end (the
//     hit point of a next turn).
//   - high: blocks with a known future: the window before a sequence's
//     branch point (the end of the cached prefix it shared at its first
//     admission: every later sequence sharing that prefix hits there), and
//     a preempted sequence's whole hit (its full-attention chain and the
//     window before its end), which Admit will claim back when the
//     sequence resumes. They go only when the policy is empty.
//
// And a running sequence pins (keeps referenced: a retention pin, not a
// prefix pin of Manager.Pin) the window before its
// branch point after its window has left it: it holds the prefix's
// full-attention blocks anyway, and that window is what makes them a hit
// for the next sequence sharing the prefix (pinsAt).
//
// Every local group is shelved by its own rule (hitFrom): with two windows
// each keeps the blocks its own window before a hit point needs, a
// chunked group those of the hit point's chunk; State groups are kept by
// their checkpoints (checkpoint.go). So a layout of several kinds keeps,
// per hit point, what each of its groups needs there, and no more. Only
// window blocks are pinned (a chunk's can be a whole chunk's worth: they
// wait on the high shelf instead), and the shelves are on only with a
// window or State group: a layout of full and chunked groups alone
// releases blocks to the free list and the policy, as before.
//
// The likely hit points are the ones the manager sees: where a sequence's
// full-attention lookup stopped on its first admission (its branch point)
// and where it ends when it is preempted or finishes. No constant is tuned:
// the number of window blocks kept per point is the window's own need.
//
// A sequence's blocks are released tail first across groups (at each
// position the full-attention block, then the others), so evictions from a
// shelved hit shorten it a position at a time where the window reaches
// back far enough, instead of leaving a window no hit can use.
//
// Shelved blocks are counted as available like the policy's: shelving
// never makes an allocation fail, it only orders evictions. Every shelf
// operation is O(1) on intrusive lists preallocated at New.

// retainer is the retention policy of a hybrid manager: which shelf a
// released block goes to (the shelves are the pool's, shelves.go), and the
// state checkpoints.
type retainer struct {
	on bool
	// lastFull is the full-attention hit of the last lookup, in blocks,
	// before the window groups cut it; lastMiss says the lookup stopped
	// there at a block not cached (the cached chain branches or ends
	// there), not at the end of what the sequence may hit.
	lastFull int
	lastMiss bool
	// pinned counts the retention pins running sequences hold (entries of
	// their seqRetention.pins); released counts those given up early
	// because their sequence, alone in the pool, needed the room
	// (releasePins, Stats.RetentionPinsReleased).
	pinned   int
	released uint64
	checkpointer
}

// initRetention turns the shelves on for a manager with a window or state
// group and its own free list (UnifiedFreeQueue keeps vLLM's decisions).
func (m *Manager) initRetention() {
	m.initCheckpoints()
	window := slices.ContainsFunc(m.kinds, func(k groupKind) bool { _, ok := k.(windowKind); return ok })
	if !m.hybrid() || !window && !m.ret.ckpt || m.cfg.UnifiedFreeQueue || !m.hashing {
		return
	}
	m.ret.on = true
	m.bp.shelves.init(m.cfg.NumBlocks)
}

// hitFrom is the first block of local group g that a hit of L blocks
// needs: the first the query at position L*BlockSize reads (the window
// before it, ceil((W-1)/BlockSize) blocks, or its chunk); a window of one
// token needs the block before L all the same, where its lookup's scan
// ends (as vLLM's).
func (m *Manager) hitFrom(g, L int) int {
	if g == m.oneLocal && m.window > 0 {
		// The one window group (the common layouts): its rule called
		// directly, as every block its window leaves asks.
		return windowFrom(m.windowKind(), L)
	}
	if k, ok := m.kinds[g].(windowKind); ok {
		return windowFrom(k, L)
	}
	return m.kinds[g].live(L * m.bs)
}

// windowFrom is hitFrom for window kind k.
func windowFrom(k windowKind, L int) int {
	if L == 0 {
		return 0
	}
	return min(k.start(L*k.bs), L-1)
}

// windowShelf is the shelf of block k of local group g of s when its last
// reference goes: high if a hit at s's branch point needs it, or a hit at
// end when a preempted sequence releases its hit (end is its full blocks;
// 0 while sliding); the policy if a hit at end needs it when s finishes;
// low otherwise.
func (m *Manager) windowShelf(s *sequence, g, k, end int, preempt bool) shelf {
	if b := int(s.keep.branch); k < b && k >= m.hitFrom(g, b) {
		return shelfHigh
	}
	if k < end && k >= m.hitFrom(g, end) {
		if preempt {
			return shelfHigh
		}
		return shelfPolicy
	}
	return shelfLow
}

// seqRetention is what retention knows of a sequence.
type seqRetention struct {
	// branch is the full-attention hit of the first admission, in blocks;
	// -1 before it.
	branch int32
	// freshStep is the step (Manager.step) in which TakeCheckpoints
	// handed out the checkpoint at pendingAt: until the step ends, the
	// kernels that write it may not have run, its pages are pinned as
	// data, not as retention, and releasePins keeps them (Uncompute may
	// still have to forget them). 0: none. (Beside branch: two 32-bit
	// fields share a word, which keeps the sequence record's size.)
	freshStep uint32
	// pins are window blocks before the branch point that left the window,
	// and checkpoint pages, that stay referenced while the sequence runs.
	pins []allocator.BlockID
	// pending are the pages of a checkpoint after pendingAt blocks not yet
	// handed out by TakeCheckpoints (checkpoint.go).
	pending   []allocator.BlockID
	pendingAt int32
	// line numbers the forks of one sequence, the sequence included
	// (Fork; 0: it neither forked nor is a fork): a parallel sampling
	// request's samples, forked one after another, are one line
	// (aloneInLine). (Beside pendingAt, a block count in 32 bits: the
	// two share a word, which keeps the sequence record's size.)
	line uint32
	// pendingLen is the sequence's length when the checkpoint was asked,
	// or, while it waits for a chunk to reach pendingAt, at the last
	// TakeCheckpoints; pendingHash is the chain hash of block pendingAt-1
	// when it was asked.
	pendingLen  int
	pendingHash Hash
}

func (k *seqRetention) reset() {
	k.branch, k.pins, k.pending, k.freshStep, k.line = -1, k.pins[:0], k.pending[:0], 0, 0
}

// aloneInLine reports whether running s is alone in the pool but for
// sequences of its line (its forks, its parent's, ...). A scheduler forks
// a prompt's samples one after another: alone before the first fork, the
// prompt is alone at the second too, whose refusal for want of the pins'
// room (the first fork counted as another sequence running) aborted the
// request. O(sequences), paid on a refusal.
func (m *Manager) aloneInLine(s *sequence) bool {
	if m.nrunning == 1 {
		return true
	}
	if s.keep.line == 0 {
		return false
	}
	others := m.nrunning - 1
	for i := range m.seqs {
		x := &m.seqs[i]
		if x == s || x.state != seqRunning {
			continue
		}
		if x.keep.line != s.keep.line {
			return false
		}
		if others--; others == 0 {
			break
		}
	}
	return true
}

// pinsAt reports whether window block b at entry k of running sequence s
// stays referenced (pinned) when the window leaves it: it is among the
// blocks the hit at s's branch point needs, and still cached (Uncompute
// may have dropped its content, which no hit can then use). The sequence shares the prefix that
// ends there, and while it runs it holds the prefix's full-attention
// blocks; the window before the prefix's end is what makes them a hit for
// the next sequence sharing it, so it is held as long. Blocks of a shared
// prefix are usually shared too, so this costs need blocks per distinct
// branch point among running sequences, and at most need per sequence.
func (m *Manager) pinsAt(s *sequence, g, k int, b allocator.BlockID) bool {
	if !m.ret.on {
		return false
	}
	if g != m.oneLocal || m.window == 0 {
		if _, ok := m.kinds[g].(windowKind); !ok {
			return false // a chunk's blocks before the point go to the high shelf
		}
	}
	br := int(s.keep.branch)
	return k < br && k >= m.hitFrom(g, br) && m.bp.hasContent(b)
}

// releaseSlid releases block b at entry k of local group g of s, which the
// window or chunk no longer reaches, or pins it (pinsAt).
func (m *Manager) releaseSlid(s *sequence, g, k int, b allocator.BlockID) {
	switch {
	case !m.ret.on:
		m.bp.release(b)
	case m.pinsAt(s, g, k, b):
		s.keep.pins = append(s.keep.pins, b)
		m.ret.pinned++
	default:
		m.bp.releaseTo(b, m.windowShelf(s, g, k, 0, false))
	}
}

// checkRetentionPins counts the retention pins of running sequence s into
// refs.
func (m *Manager) checkRetentionPins(i int, s *sequence, refs []int32) error {
	for _, b := range s.keep.pins {
		if !m.bp.pool.Valid(b) || !m.bp.hasContent(b) || m.bp.groupOf(b) == 0 {
			return fmt.Errorf("paged: sequence slot %d pins block %d, which is not a cached window block", i, b)
		}
		refs[b]++
	}
	return nil
}

// releaseRetained is releaseGroups with shelves: every table tail first,
// group 0 first; full-attention blocks go onto the high shelf when s is
// preempted (its resume will claim them), else to the policy; window
// blocks onto windowShelf's.
func (m *Manager) releaseRetained(s *sequence, preempt bool) {
	full := shelfPolicy
	if preempt {
		full = shelfHigh
	}
	end := min(len(s.hashes), len(s.blocks))
	n := len(s.blocks)
	for g := range s.ext {
		n = max(n, len(s.ext[g].blocks))
	}
	// Tables may differ in length (a group that holds no blocks of its
	// own, or a fixed number), so each is released where it has an entry.
	for k := n - 1; k >= 0; k-- {
		if k < len(s.blocks) {
			m.bp.releaseTo(s.blocks[k], full)
		}
		for g := range s.ext {
			t := s.ext[g].blocks
			switch {
			case k >= len(t):
			case m.kinds[g+1].local():
				m.bp.releaseTo(t[k], m.windowShelf(s, g+1, k, end, preempt))
			default:
				m.bp.releaseTo(t[k], full)
			}
		}
	}
	s.blocks = s.blocks[:0]
	for g := range s.ext {
		t := &s.ext[g]
		t.blocks, t.released, t.committed = t.blocks[:0], 0, 0
	}
	m.releaseKept(s)
}

// releaseKept releases what s holds beside its tables, when it stops
// running (preempted, finished or swapped out): its pins go to the high
// shelf, a checkpoint not handed out yet is dropped.
func (m *Manager) releaseKept(s *sequence) {
	for i := len(s.keep.pins) - 1; i >= 0; i-- {
		m.bp.releaseTo(s.keep.pins[i], shelfHigh)
	}
	m.ret.pinned -= len(s.keep.pins)
	s.keep.pins, s.keep.freshStep = s.keep.pins[:0], 0
	m.dropPending(s)
}

// Retention pins are a soft cost: they are cache retention, never data a
// sequence reads (a hit's checkpoint pages are read by the Copy
// directives of the admission's step only, and a checkpoint handed out is
// written by the step that computes it), so they never make a request
// fail that a pool without them would serve. A request fails for space
// when the manager says never (ErrNever), or says later (ErrNoSpace) with
// nothing else running that a scheduler could preempt. So the never
// answers (chunkNever) count no pin, and a sequence alone in the pool
// (the only one running, hence the only one holding pins) that Append,
// AppendSpeculative or Fork finds short of room counts the blocks
// releasing its pins would free (pinRoom) and releases them (releasePins,
// to the high shelf: still cached, evicted last); for Fork, alone but for
// its own forks (aloneInLine). Nothing else does:
// with other sequences running a refusal is a wait (a scheduler preempts
// one, which releases its pins, or waits for one to finish), and their
// pins hold the prefixes they share, the hits of the requests behind
// them. (Releasing every sequence's pins whenever an admission or a
// growth would otherwise wait cost W1-H 40 to 99% of the default mode's
// hits; releasing a growing sequence's own with others running moved its
// hits by -1.5% to +3% through the scheduler's preemptions.)

// releasePins releases the retention pins of running s to the high shelf,
// but those pinHeld keeps. O(pins x copies).
func (m *Manager) releasePins(s *sequence) {
	held := 0
	for j := len(s.keep.pins) - 1; j >= 0; j-- {
		b := s.keep.pins[j]
		if m.pinHeld(s, b) {
			held++
			continue
		}
		m.bp.releaseTo(b, shelfHigh)
		m.ret.released++
	}
	pins := s.keep.pins[:0]
	if held > 0 {
		for _, b := range s.keep.pins {
			if m.pinHeld(s, b) {
				pins = append(pins, b)
			}
		}
	}
	m.ret.pinned -= len(s.keep.pins) - len(pins)
	s.keep.pins = pins
}

// pinRoom returns the blocks releasePins(s) would free: s's pins that no
// one else references, no live copy of the step reads (those would park,
// blockPool.frees) and pinHeld does not keep. Nothing changes.
// O(pins x copies).
func (m *Manager) pinRoom(s *sequence) int {
	n := 0
	for _, b := range s.keep.pins {
		if m.bp.frees(b) && !m.pinHeld(s, b) {
			n++
		}
	}
	return n
}

// pinHeld reports whether pin b of s is data still to be read or written
// in the current step: the source of a Copy directive not yet taken, or
// a page of the checkpoint handed out in this step (the kernels that
// write it run after the step's last decision).
func (m *Manager) pinHeld(s *sequence, b allocator.BlockID) bool {
	if s.keep.freshStep == m.step {
		if g, L := m.bp.groupOf(b), int(s.keep.pendingAt); m.isState(g) && L > 0 && L <= len(s.hashes) && m.isPageOf(b, &s.hashes[L-1], g) {
			return true
		}
	}
	return m.copySource(b)
}

// copySource reports whether b is the source of a live Copy directive of
// the step being built (blockPool.read): not yet taken (TakeCopies), its
// destination held or cached (blockPool.live). A copy a caller left
// untaken past EndStep ran with its step (queueCopy): it holds nothing,
// or a simulation that never takes its copies would keep such pins for
// good, and a sequence alone in the pool could never grow into their
// room. Nor does a dead copy of the step, its destination freed
// uncached: nothing reads what it fills in, a destination handed out
// again drops it (so it never comes back), and release does not park
// its source (blockPool.frees); holding it refused a sequence alone in
// the pool the room of that pin until the step ended
// (TestAudit38DeadCopySourceIsNoRoom).
func (m *Manager) copySource(b allocator.BlockID) bool {
	return len(m.bp.named) > 0 && m.bp.read(b)
}

// noteAdmit finishes the admission of s (handle id) for retention: its
// state checkpoints, then, at its first admission, its branch point: the
// full-attention hit of the lookup just made, the end of the cached prefix
// s shares with earlier sequences.
func (m *Manager) noteAdmit(s *sequence, id SeqID) {
	full, miss, h := m.branchPoint(s)
	m.admitState(s, id, full, miss, h)
	if s.keep.branch < 0 {
		s.keep.branch = int32(full)
	}
}

// unprotect moves to the policy the high-shelf blocks that hold s's chain
// past its branch point: s was preempted and is being dropped without
// resuming, so s will not claim them. Nor are blocks another preempted
// sequence's chain shares moved (sharedWaiting): that sequence's
// preemption put them on the high shelf for its own resume, a hit through
// s's chain. O(blocks of s x duplicates + sequences x shared prefix).
func (m *Manager) unprotect(s *sequence) {
	if !m.ret.on || s.state != seqWaiting || s.keep.branch < 0 {
		return
	}
	from := max(int(s.keep.branch), m.sharedWaiting(s))
	for k := len(s.hashes) - 1; k >= from; k-- {
		for g := range len(m.cfg.Groups) {
			head, ok := m.bp.index.getIn(&s.hashes[k], groupSalt(g))
			if !ok {
				continue
			}
			for id := head; ; {
				if m.bp.shelves.shelfOf(id) == shelfHigh {
					m.bp.shelves.unlink(id)
					m.bp.policy.Insert(id)
				}
				if id = m.bp.index.dupNext(id); id == head {
					break
				}
			}
		}
	}
}

// sharedWaiting returns the longest prefix of s's chain, in blocks, that
// another preempted sequence (waiting, admitted before) shares: the
// blocks its resume hits. Chain hashes name their whole prefix, so the
// shared blocks are a prefix of both. O(sequences x shared prefix).
func (m *Manager) sharedWaiting(s *sequence) int {
	n := 0
	for i := range m.seqs {
		x := &m.seqs[i]
		if x == s || x.state != seqWaiting || x.keep.branch < 0 {
			continue
		}
		l := min(len(s.hashes), len(x.hashes))
		n = max(n, samePrefix(s.hashes[:l], x.hashes[:l]))
	}
	return n
}

// releaseSeq releases every table of s, which is preempted or finishes.
func (m *Manager) releaseSeq(s *sequence, preempt bool) {
	m.dropSpares(s)
	if m.ret.on {
		m.releaseRetained(s, preempt)
		return
	}
	m.releaseGroups(s)
}
