package paged

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// KV cache groups. A hybrid model's layers form groups of one attention
// kind each: Gemma 3 has five sliding-window layers per full-attention
// layer, gpt-oss alternates the two. Layers of one group share a block
// table, since they need the same tokens; every group of a sequence draws
// blocks of the same size from the manager's one pool (a block of a group
// is one page holding the block's tokens for all the group's layers, so
// pages are unified as in vLLM's hybrid allocator; kvmem.Spec sizes them).
//
// Group 0 is a full-attention group and owns the sequence's main table
// (Table, Slot, BuildBatch's Tables); the others keep a table each
// (TableGroup, Batch.GroupTables). The chain of block hashes is one per
// sequence; the prefix index keys a block by (hash, group), so the same
// content cached for two groups is two entries, as vLLM keys
// BlockHashWithGroupId.
//
// A prefix hit of L tokens needs the full-attention groups' blocks for
// [0, L) and the window groups' blocks for the last window before L; the
// blocks before it are the null block. The lookup follows vLLM v1's
// hybrid coordinator (kv_cache_coordinator.py at f20c3b0): the longest
// full-attention hit first, then, within it, the window groups' hit found
// right to left (the first run of ceil((W-1)/BlockSize) cached blocks
// from the right; failing that, the run from block 0), and the full
// attention hit cut to that length.
//
// A chunked group's hit needs the blocks of the hit point's chunk; a State
// group's hit needs a checkpoint of the state at exactly the hit point,
// which only the default mode keeps (checkpoint.go: with UnifiedFreeQueue,
// as in vLLM v1, a manager with a State group has no prefix hits); a
// Shared group holds nothing and reads its target's table. Which cached
// blocks the default mode keeps longest is retention.go's.
//
// Groups of several kinds and sizes (Hymba's state, window and full
// layers; two windows; a chunk beside a window) form classes, one per kind
// and size, all State groups one class (cutHit). The hit is then the
// fixed point of the classes' cuts: from the full-attention hit, each
// class in turn cuts the length to its own longest hit within it, until
// none cuts further, which is the longest prefix that is a hit in every
// group. vLLM v1 at f20c3b0 takes one kind besides full attention, so the
// vLLM-compatible mode (UnifiedFreeQueue, with prefix caching) refuses
// more with ErrInvalid, and its decisions on the layouts vLLM takes are
// unchanged (one class: one cut, as vLLM's coordinator).
//
// Every operation works with several groups (Fork, Truncate, speculative
// tokens and swapping as groups_ops.go describes). Offloading keeps each
// evicted block's group: the host index is keyed by (hash, group) as the
// device index is, and the lookup takes a block of any group found on the
// host as present, onboarding it at admission (offload.go).

// GroupKind is the attention kind of a KV cache group.
type GroupKind uint8

const (
	// FullAttention layers read every earlier token: a sequence keeps a
	// block for each of its blocks of tokens.
	FullAttention GroupKind = iota
	// SlidingWindow layers read the last Window tokens only: blocks the
	// window no longer reaches are released and their entries name the
	// null block.
	SlidingWindow
	// ChunkedLocal layers (Llama 4's local layers) read the tokens of the
	// current Chunk only: position p reads [p - p%Chunk, p]. Blocks wholly
	// before the current chunk are released.
	ChunkedLocal
	// State groups keep a fixed-size per-sequence state (Mamba, Gated
	// DeltaNet, KDA layers) in Pages blocks, allocated at admission,
	// however long the sequence grows (and Pages more per pending draft,
	// the state after it: see AppendSpeculative). As in vLLM v1 (f20c3b0), the
	// vLLM-compatible mode caches no state, so it has no prefix hits; the
	// default mode keeps checkpoints (see Checkpoint).
	State
	// Shared layers reuse the KV of group Target (cross-layer KV sharing,
	// as Gemma 3n): they hold no blocks, and their table is Target's.
	Shared
)

// String names the kind.
func (k GroupKind) String() string {
	switch k {
	case FullAttention:
		return "full"
	case SlidingWindow:
		return "window"
	case ChunkedLocal:
		return "chunked"
	case State:
		return "state"
	case Shared:
		return "shared"
	}
	return fmt.Sprintf("GroupKind(%d)", k)
}

// Group describes one KV cache group of Config.Groups.
type Group struct {
	// Kind is the group's attention kind.
	Kind GroupKind
	// Window is the sliding window in tokens (SlidingWindow only): the
	// query at position p reads positions [p-Window+1, p].
	Window int
	// Chunk is the attention chunk in tokens (ChunkedLocal only).
	Chunk int
	// Pages is the number of blocks a sequence's state takes (State only;
	// kvmem.Spec.StateBlocks computes it from the model's state size), at
	// most the pool's usable blocks, NumBlocks-1 (New refuses more with
	// ErrInvalid). Every State group's together, which a sequence takes
	// at admission, are at most MaxBlocks (ErrInvalid); past the usable
	// blocks, every admission is ErrNever.
	Pages int
	// Target is the group whose KV a Shared group reads: a full,
	// sliding-window or chunked group.
	Target int
}

// maxGroups bounds Config.Groups: a block's group is kept in one byte.
const maxGroups = 255

// groupTable is a sequence's block table in one group other than group 0.
type groupTable struct {
	blocks []allocator.BlockID
	// released: blocks[:released] are the null block (out of the window,
	// or before a window hit).
	released int
	// committed: blocks[:committed] hold committed content (or are null).
	committed int
	// host is the group's host table while the sequence is swapped out.
	host []allocator.BlockID
	// spare holds a State group's spare draft states (Pages pages each)
	// of a running sequence: pages kept from a verdict for its next
	// drafts (groups_ops.go, "State drafts").
	spare []allocator.BlockID
}

// checkGroups validates Config.Groups.
func checkGroups(cfg *Config) error {
	if len(cfg.Groups) == 0 {
		return nil
	}
	if len(cfg.Groups) > maxGroups {
		return fmt.Errorf("%w: Config.Groups has %d groups, at most %d", ErrInvalid, len(cfg.Groups), maxGroups)
	}
	if cfg.Groups[0].Kind != FullAttention {
		return fmt.Errorf("%w: Config.Groups[0] is %v; group 0 must be full attention", ErrInvalid, cfg.Groups[0].Kind)
	}
	// The vLLM-compatible mode with prefix caching takes one kind besides
	// full attention (and shared groups, which hold nothing) of one size,
	// as vLLM v1's hybrid coordinator does (kv_cache_coordinator.py at
	// f20c3b0); without prefix caching vLLM takes any groups, and so does
	// the default mode, whose lookup is the fixed point of every kind's.
	oneOther := cfg.UnifiedFreeQueue && !cfg.DisablePrefixCaching
	var other *Group
	// pages sums the State groups' pages, checked against MaxBlocks as
	// it grows: 255 groups of 2^24 pages would wrap an int where it is
	// 32 bits (the manager's spages, a fork's or a draft's pages).
	pages := 0
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		// Each kind's parameter, in a fixed order so the error is the same
		// every time.
		params := [...]struct {
			kind  GroupKind
			value int
		}{{SlidingWindow, g.Window}, {ChunkedLocal, g.Chunk}, {State, g.Pages}}
		param := 0
		for _, p := range params {
			switch {
			case p.kind == g.Kind:
				param = p.value
			case p.value != 0:
				return fmt.Errorf("%w: Config.Groups[%d] is %v but sets the parameter of %v", ErrInvalid, i, g.Kind, p.kind)
			}
		}
		if g.Kind != Shared && g.Target != 0 {
			return fmt.Errorf("%w: Config.Groups[%d] is %v but sets Target", ErrInvalid, i, g.Kind)
		}
		switch g.Kind {
		case FullAttention:
		case SlidingWindow, ChunkedLocal, State:
			if param < 1 {
				return fmt.Errorf("%w: Config.Groups[%d] (%v) needs a positive Window, Chunk or Pages", ErrInvalid, i, g.Kind)
			}
			if g.Kind == State && param > cfg.NumBlocks-1 {
				// No sequence could ever hold such a state. (A pool
				// that fits the states but not a sequence's tokens
				// besides them is refused at admission, ErrNever.)
				return fmt.Errorf("%w: Config.Groups[%d] (%v) takes %d pages per sequence, more than the pool's %d usable blocks", ErrInvalid, i, g.Kind, param, cfg.NumBlocks-1)
			}
			if g.Kind == State {
				// Every sequence takes all the states at admission: more
				// than any pool holds is never. (Past this pool's usable
				// blocks, admission refuses every sequence, ErrNever.)
				if pages += param; pages > MaxBlocks {
					return fmt.Errorf("%w: Config.Groups[%d] (%v) brings the State groups' pages to %d per sequence, more than any pool holds (MaxBlocks=%d)", ErrInvalid, i, g.Kind, pages, MaxBlocks)
				}
			}
			if oneOther && other != nil && *other != *g {
				return fmt.Errorf("%w: Config.Groups[%d] (%v %d) differs from another group (%v): with UnifiedFreeQueue and prefix caching (vLLM v1's hybrid coordinator) one kind besides full attention, of one size, is supported; the default mode takes any", ErrInvalid, i, g.Kind, param, other.Kind)
			}
			other = g
		case Shared:
			if g.Target < 0 || g.Target >= len(cfg.Groups) || g.Target == i {
				return fmt.Errorf("%w: Config.Groups[%d].Target %d must name another group", ErrInvalid, i, g.Target)
			}
			if k := cfg.Groups[g.Target].Kind; k == Shared || k == State {
				return fmt.Errorf("%w: Config.Groups[%d] shares group %d, which is %v; only attention KV is shared", ErrInvalid, i, g.Target, k)
			}
		default:
			return fmt.Errorf("%w: Config.Groups[%d].Kind %v is not supported", ErrInvalid, i, g.Kind)
		}
	}
	return nil
}

// hybrid reports whether the manager keeps more than one group.
func (m *Manager) hybrid() bool { return len(m.cfg.Groups) > 1 }

// hitClass is a set of groups of one kind and size besides full attention
// (every window group of one window, every chunked group of one chunk,
// every State group): its kind's hit rule, applied to all of them at once.
type hitClass struct {
	kind   groupKind
	groups []int
}

// initGroups sets up the per-block group bytes, the lookup's classes and
// scratch.
func (m *Manager) initGroups() {
	if !m.hybrid() {
		return
	}
	m.bp.grouped = true
	m.ghits = make([][]allocator.BlockID, len(m.cfg.Groups)-1)
	m.kinds = make([]groupKind, len(m.cfg.Groups))
	state := -1 // the class of the State groups
	for i, g := range m.cfg.Groups {
		k := newGroupKind(g, m.bs)
		m.kinds[i] = k
		if k.local() {
			m.anyLocal = true
			if m.oneLocal == 0 {
				m.oneLocal = i
			} else {
				m.oneLocal = -1 // several
			}
		}
		switch g.Kind {
		case FullAttention:
			m.manyFull = m.manyFull || i > 0
			continue
		case Shared:
			continue
		case State:
			// One class: a checkpoint is taken and hit in every State
			// group at once (checkpoint.go), whatever their sizes.
			m.anyState = true
			m.spages += g.Pages
			if state < 0 {
				state = len(m.classes)
				m.classes = append(m.classes, hitClass{kind: k})
			}
			m.classes[state].groups = append(m.classes[state].groups, i)
			continue
		}
		c := slices.IndexFunc(m.classes, func(c hitClass) bool { return m.cfg.Groups[c.groups[0]] == g })
		if c < 0 {
			c = len(m.classes)
			m.classes = append(m.classes, hitClass{kind: k})
		}
		m.classes[c].groups = append(m.classes[c].groups, i)
	}
	if m.oneLocal > 0 {
		if w, ok := m.kinds[m.oneLocal].(windowKind); ok {
			// One local group, a window group: the common layouts
			// (gpt-oss, Gemma 3, Hymba with its state groups) take its
			// fast paths.
			m.window = w.w
			m.sib = make([]allocator.BlockID, m.cfg.NumBlocks)
			// pair: the other groups never gain a block as a sequence
			// grows (State, Shared), so a token that starts a block
			// takes startPair.
			m.pair = true
			for i, g := range m.cfg.Groups[1:] {
				m.pair = m.pair && (i+1 == m.oneLocal || g.Kind == State || g.Kind == Shared)
			}
		}
	}
}

// groupNeed is the number of blocks group g holds for a running sequence
// of n tokens (released entries included).
func (m *Manager) groupNeed(g, n int) int { return m.kinds[g].need(n) }

// tableLen is the number of entries group g's table of running (or
// swapped-out: its host table) s has: groupNeed, and a State group's
// pages for the state of each pending draft.
func (m *Manager) tableLen(s *sequence, g int) int {
	return m.groupNeed(g, len(s.tokens)) + m.kinds[g].pages()*s.spec
}

// deadBlocks is how many leading blocks of group g of s no query reads once
// the next position to compute is c: vLLM's remove_skipped_blocks rule
// for its kind.
func (m *Manager) deadBlocks(s *sequence, g, c int) int {
	return m.kinds[g].dead(c, s.ext[g-1].committed)
}

// liveStart is the first block of group g that the query at position n
// reads (Check's window invariant).
func (m *Manager) liveStart(g, n int) int { return m.kinds[g].live(n) }

// resetGroups empties a sequence's tables of groups 1 and up.
func (m *Manager) resetGroups(s *sequence) {
	if !m.hybrid() {
		return
	}
	if len(s.ext) == 0 {
		s.ext = m.extTables(len(m.cfg.Groups) - 1)
	}
	for g := range s.ext {
		t := &s.ext[g]
		t.blocks, t.released, t.committed = t.blocks[:0], 0, 0
	}
}

// table returns group g's entries of s.
func (m *Manager) table(s *sequence, g int) []allocator.BlockID {
	if g < len(m.kinds) {
		g = m.kinds[g].target(g)
	}
	if g == 0 {
		return s.blocks
	}
	return s.ext[g-1].blocks
}

// lookupGroups finds the hybrid prefix hit of s over at most max blocks:
// group 0's blocks into m.hits, group g's into m.ghits[g-1], all of one
// length, which it returns.
func (m *Manager) lookupGroups(s *sequence, max int) int {
	m.hits, m.fullEv = m.hits[:0], -1
	for g := range m.ghits {
		m.ghits[g] = m.ghits[g][:0]
	}
	if !m.hashing {
		return 0
	}
	max = min(max, len(s.hashes))
	groups := m.cfg.Groups
	// Full attention: the longest run of leading blocks cached in every
	// full-attention group.
	full := 0
	if !m.manyFull {
		// Group 0 alone: its lookup, which walks runs of consecutive
		// blocks in one pass (blockPool.lookup).
		m.hits, m.fullEv, m.fullHost = m.bp.lookup(m.hits, s.hashes, max)
		full = len(m.hits)
	}
	prev := allocator.NoBlock
full:
	for ; m.manyFull && full < max; full++ {
		h := &s.hashes[full]
		id, ok := m.bp.successor(prev, h)
		if !ok {
			if id, ok = m.bp.index.get(h); !ok {
				if id, ok = m.bp.hostHitIn(h, 0); !ok {
					break
				}
			}
		}
		for g := 1; g < len(groups); g++ {
			if groups[g].Kind == FullAttention {
				if _, ok := m.bp.findIn(h, g); !ok {
					break full
				}
			}
		}
		prev = id
		m.hits = append(m.hits, id)
	}
	m.ret.lastFull, m.ret.lastMiss = full, full < max
	limit := full
	if m.ret.capOn {
		limit = min(full, m.ret.hitCap) // planFallback's shorter hit
	}
	hit := m.cutHit(s, limit)
	m.hits = m.hits[:hit]
	for g := 1; g < len(groups); g++ {
		if groups[g].Kind != FullAttention {
			continue
		}
		for k := range hit {
			id, _ := m.bp.findIn(&s.hashes[k], g)
			m.ghits[g-1] = append(m.ghits[g-1], id)
		}
	}
	return hit
}

// cutHit cuts the full-attention hit of s, full blocks, to the longest
// prefix that is a hit in every class of groups besides full attention,
// filling their lookup rows, and returns it. Each class's rule
// (groupKind.hit) answers the longest hit of its groups at most a limit;
// starting from the full-attention hit, the classes cut the limit in turn
// until none cuts it further: a fixed point, reached in a few rounds,
// which is the longest prefix that is a hit for every class, since a hit
// of every class at most the limit stays at most each answer. A class
// answers anew at each limit it is given, so its rows are those of the
// last limit, the answer.
func (m *Manager) cutHit(s *sequence, full int) int {
	L := full
	if len(m.classes) == 1 {
		// One kind besides full attention (vLLM's hybrid coordinator):
		// its hit within the full-attention one.
		c := &m.classes[0]
		return c.kind.hit(m, s, L, c.groups)
	}
	// stable counts the classes in a row that answered L itself.
	for i, stable := 0, 0; stable < len(m.classes); i = (i + 1) % len(m.classes) {
		c := &m.classes[i]
		if h := c.kind.hit(m, s, L, c.groups); h < L {
			L, stable = h, 1
		} else {
			stable++
		}
	}
	return L
}

// cachedIn reports whether h is cached, on the device or the host, in every
// group of groups.
func (m *Manager) cachedIn(h *Hash, groups []int) bool {
	for _, g := range groups {
		if _, ok := m.bp.findIn(h, g); !ok {
			return false
		}
	}
	return true
}

// planGroups is planAdmit for a hybrid manager: every group needs a block
// per block of tokens at admission (a window group computes the whole
// prompt's KV too, and releases what its window leaves behind from the
// next step on).
func (m *Manager) planGroups(s *sequence) (plan, Admission) {
	n := len(s.tokens)
	p := plan{need: m.ceilBlocks(n)}
	total := 0
	for g := range m.cfg.Groups {
		total += m.groupNeed(g, n)
	}
	maxHit := m.fullBlocks(n - 1)
	if s.opts.AllowFullHit {
		maxHit = m.fullBlocks(n)
	}
	p.hits = m.lookupGroups(s, maxHit)
	m.ret.missed = false
	// A host hit takes a new device block to onboard it into. p.onboard
	// counts group 0's only, the host part of PrefixHitBlocks.
	host := 0
	nulls := 0 // entries before a local group's hit: no block held
	count := func(row []allocator.BlockID, sign int) {
		for _, b := range row {
			switch {
			case b == nullBlock:
				nulls += sign
			case b < 0:
				host += sign
			case m.bp.pool.IsCached(b):
				p.evictableHits += sign
			}
		}
	}
	if full := m.ret.lastFull; m.fullEv < 0 || 2*len(m.hits) <= full {
		count(m.hits, 1)
	} else {
		// Group 0's lookup counted its whole hit (m.hits before the cut):
		// the part the other groups cut off, the shorter, is subtracted.
		host, p.evictableHits = m.fullHost, m.fullEv
		count(m.hits[len(m.hits):full], -1)
	}
	p.onboard = host
	held := len(m.hits)
	for g := range m.ghits {
		count(m.ghits[g], 1)
		held += len(m.ghits[g])
	}
	ckHost := 0 // checkpoint pages on the host tier
	for _, b := range m.ret.hitPages {
		if b < 0 {
			ckHost++
		}
	}
	host += ckHost
	// claims: the checkpoint's pages the admission takes out of the
	// evictable blocks; with those it onboards (a new device block each)
	// they are what the hit adds to the blocks held.
	claims := m.stateClaims()
	p.alloc = total - held + p.evictableHits + claims + host
	p.held = total - nulls
	claims += ckHost
	wm := m.watermarkBlocks()
	room := m.bp.pool.Usable() - wm
	switch {
	case n > m.cfg.MaxModelLen || p.held > room && m.ret.hit == 0:
		return p, AdmitNever
	case m.ret.hit > 0 && !m.ret.keepHit && (p.held+claims > room || m.nrunning == 0 && p.alloc > m.available()-wm) && total <= m.available()-wm:
		// The checkpoint hit costs more than computing from scratch (its
		// pages are claimed besides the sequence's own, and pinned while
		// it runs) and does not fit where a miss fits now: never, or not
		// now with no sequence running to give blocks back (prefix pins
		// hold them). A miss, rather than a refusal that would not clear.
		// A hit that fits later waits, as any admission: dropping it
		// would cost hits (docs/hybrid.md). vLLM has no such case: an
		// attention hit never costs more than a miss.
		return m.missGroups(p.need, total), AdmitOK
	case p.held+claims > room:
		if m.ret.keepHit {
			return p, AdmitNever // the hit's plan, for chunkHit
		}
		// Even alone with the checkpoint, never; computed from scratch,
		// later (the case above found no room now), or never.
		q := m.missGroups(p.need, total)
		if total > room {
			return q, AdmitNever
		}
		return q, AdmitLater
	case p.alloc > m.available()-wm:
		return p, AdmitLater
	}
	return p, AdmitOK
}

// missGroups drops the last lookup's hits, in every group and state
// checkpoint, and returns the plan of admitting the sequence it made
// them for, of need group-0 blocks and total in every group, from
// scratch. The lookup's full-attention hit stays the sequence's branch
// point (retention.go, checkpoint.go).
func (m *Manager) missGroups(need, total int) plan {
	m.hits = m.hits[:0]
	for g := range m.ghits {
		m.ghits[g] = m.ghits[g][:0]
	}
	m.ret.hit, m.ret.hitPages, m.ret.missed = 0, m.ret.hitPages[:0], true
	return plan{need: need, alloc: total, held: total}
}

// admitGroups commits a successful plan: device hits are claimed group by
// group, host hits onboarded, then each group's new blocks are allocated,
// group 0 first, and each group's full blocks are committed.
func (m *Manager) admitGroups(s *sequence, p plan) {
	m.claimHits(s)
	m.onboardGroups(s)
	m.pinState(s)
	s.blocks = append(s.blocks[:0], m.hits...)
	// Every table sized once for the sequence's reserve, as Add sizes
	// group 0's, rather than grown by appends at admission and decode.
	life := max(len(s.tokens), m.reserve(&s.opts))
	for g := range s.ext {
		t := &s.ext[g]
		t.blocks = append(m.growTable(t.blocks[:0], m.groupNeed(g+1, life)), m.ghits[g]...)
		t.released = 0
		for t.released < len(t.blocks) && t.blocks[t.released] == nullBlock {
			t.released++
		}
		t.committed = len(t.blocks)
	}
	m.allocBlocks(&s.blocks, p.need)
	for g := range s.ext {
		m.allocBlocks(&s.ext[g].blocks, m.groupNeed(g+1, len(s.tokens)))
	}
	m.notePeak()
	s.committed = p.hits
}

// claimHits claims the device hits of the last hybrid lookup for s, in
// every group's row and the checkpoint pages; host hits are left to
// onboardGroups.
func (m *Manager) claimHits(s *sequence) {
	for _, b := range m.hits {
		if b > nullBlock {
			m.claim(b)
		}
	}
	for g := range m.ghits {
		for _, b := range m.ghits[g] {
			if b > nullBlock {
				m.claim(b)
			}
		}
	}
	m.claimState(s)
}

// slideGroups releases, in every window group, the blocks the window of
// the next position c no longer reaches: from the last dead block down,
// stopping at an entry already null, as vLLM's sliding-window manager
// does (remove_skipped_blocks), so the blocks enter the free queue in that
// order.
func (m *Manager) slideGroups(s *sequence, c int) {
	if m.window > 0 && m.oneLocal > 0 {
		// One window group, the common layout: its kind called directly,
		// not through the interface.
		m.slideTable(s, m.oneLocal, &s.ext[m.oneLocal-1], m.windowKind().dead(c, 0))
		return
	}
	if !m.anyLocal {
		return
	}
	for g := range s.ext {
		if m.kinds[g+1].local() {
			m.slideTable(s, g+1, &s.ext[g], m.deadBlocks(s, g+1, c))
		}
	}
}

// slideTable releases the entries of t, group g's table, before to
// (slideGroups).
func (m *Manager) slideTable(s *sequence, g int, t *groupTable, to int) {
	if to <= t.released {
		return
	}
	blocks := t.blocks[t.released:to]
	if !m.ret.on {
		// No shelves: the blocks after the last null entry, released
		// as one run (tail first, as below), then nulled.
		k := len(blocks)
		for k > 0 && blocks[k-1] != nullBlock {
			k--
		}
		m.bp.releaseTail(blocks, k)
		clear(blocks[k:]) // nullBlock is 0
	} else {
		for k := len(blocks) - 1; k >= 0; k-- {
			b := blocks[k]
			if b == nullBlock {
				break
			}
			m.releaseSlid(s, g, t.released+k, b)
			blocks[k] = nullBlock
		}
	}
	t.released = to
	t.committed = max(t.committed, min(to, len(s.hashes)))
}

// mustSlide reports whether appending at position c releases blocks of a
// window group.
func (m *Manager) mustSlide(s *sequence, c int) bool {
	if m.window > 0 && m.oneLocal > 0 {
		// One window group, the common layout: its kind called directly.
		return m.windowKind().slides(c, s.ext[m.oneLocal-1].released, 0)
	}
	if !m.anyLocal {
		return false
	}
	for g := range s.ext {
		t := &s.ext[g]
		// The window kind's rule called directly, not through the
		// interface: this runs for every decode token.
		if w, ok := m.kinds[g+1].(windowKind); ok {
			if w.slides(c, t.released, t.committed) {
				return true
			}
		} else if m.kinds[g+1].slides(c, t.released, t.committed) {
			return true
		}
	}
	return false
}

// slidableGroups counts the blocks slideGroups(s, c) frees, and with
// pinned those it pins that releasePins(s) would free.
func (m *Manager) slidableGroups(s *sequence, c int, pinned bool) int {
	if !m.anyLocal {
		return 0
	}
	n := 0
	for g := range s.ext {
		if !m.kinds[g+1].local() {
			continue
		}
		to := m.deadBlocks(s, g+1, c)
		t := &s.ext[g]
		for k := t.released; k < to; k++ {
			if m.slidFrees(s, g, k, pinned) {
				n++
			}
		}
	}
	if n > 0 && len(m.bp.parked) > 0 {
		// A parked copy source whose copies write only blocks the slide
		// frees goes with them.
		n += m.bp.unparks(func(d allocator.BlockID) bool {
			for g := range s.ext {
				if !m.kinds[g+1].local() {
					continue
				}
				t := &s.ext[g]
				to := m.deadBlocks(s, g+1, c)
				if k := slices.Index(t.blocks[t.released:max(to, t.released)], d); k >= 0 {
					return m.slidFrees(s, g, t.released+k, pinned)
				}
			}
			return false
		})
	}
	return n
}

// slidFrees reports whether sliding past entry k of local group g+1's
// table of s frees its block: the sole reference, read by no copy of the
// step, and not kept as a retention pin, or (pinned: s's pins are
// released for the room, retention.go) kept as one, which releasePins
// gives up (no live copy reads it, so pinHeld does not hold it: a
// window block is no checkpoint page).
func (m *Manager) slidFrees(s *sequence, g, k int, pinned bool) bool {
	b := s.ext[g].blocks[k]
	return b != nullBlock && m.bp.frees(b) && (!m.pinsAt(s, g+1, k, b) || pinned)
}

// appendGroups is Append for a running sequence of a hybrid manager.
// With UnifiedFreeQueue (vLLM's decisions) the window groups slide before
// the space check, as vLLM's allocate_slots does, so a call refused with
// ErrNoSpace has still released blocks no window reaches any more (they
// were dead either way); otherwise a refused call changes nothing.
func (m *Manager) appendGroups(s *sequence, id SeqID, tokens []int32, spec bool) error {
	m.setOwn(s, false) // appendOne sets it again where it holds
	if need, ok := m.growGroups(s, tokens, spec); !ok {
		return m.noSpace(opAppend, id, need, m.available(), 0)
	}
	return nil
}

// growGroups is appendGroups' work: it appends tokens to running s,
// sliding, allocating and committing in every group, and reports true, or
// reports false with the blocks it needs when there is no space for them.
func (m *Manager) growGroups(s *sequence, tokens []int32, spec bool) (int, bool) {
	t0 := len(s.tokens)
	t1 := t0 + len(tokens)
	c := slideFrom(s, spec) // drafts do not slide (groups_ops.go)
	want := m.ceilBlocks(t1)
	need := want - len(s.blocks) + m.tailCopies(s, t0)
	for g := range s.ext {
		need += max(0, m.groupNeed(g+1, t1)-len(s.ext[g].blocks))
	}
	if spec {
		need += m.spages * len(tokens) // a state per draft (groups_ops.go)
	}
	if m.cfg.UnifiedFreeQueue {
		m.slideGroups(s, c)
		if need > m.available() {
			return need, false
		}
	} else {
		unpin := false
		if need > m.available()+m.slidableGroups(s, c, false) {
			// Alone in the pool, the sequence's own retention pins
			// are released when it needs the room, the window blocks
			// this slide pins with them (retention.go).
			if !m.ret.on || m.nrunning != 1 || need > m.available()+m.slidableGroups(s, c, true)+m.pinRoom(s) {
				return need, false
			}
			unpin = true
		}
		m.slideGroups(s, c)
		if unpin {
			m.releasePins(s)
		}
	}
	if spec && s.spares > 0 {
		// Spare states first (before an allocation may reclaim them);
		// the first drafts of a step give back those they do not need.
		m.takeSpares(s, len(tokens))
		if s.spec == 0 {
			m.dropSpares(s)
		}
	}
	m.ownTails(s, t0)
	for len(s.blocks) < want {
		s.blocks = append(s.blocks, m.allocBlock())
	}
	for g := range s.ext {
		t := &s.ext[g]
		if p := m.kinds[g+1].pages(); p > 0 && spec {
			// The drafts' states not taken from spares, in one run
			// (notePeak follows).
			m.allocBlocks(&t.blocks, p*(1+s.spec+len(tokens)))
			continue
		}
		for need := m.groupNeed(g+1, t1); len(t.blocks) < need; {
			t.blocks = append(t.blocks, m.allocBlock())
		}
	}
	m.notePeak()
	// Every partly filled last block is now the sequence's own and
	// uncommitted (ownTails; hits are whole blocks).
	s.tokens = append(s.tokens, tokens...)
	if spec {
		s.spec += len(tokens)
		m.draftPages += m.spages * len(tokens)
	}
	m.hashFull(s)
	m.commitFull(s)
	m.commitGroups(s)
	s.gslow = s.spec > 0
	return 0, true
}

// appendOne is Append of the one token tokens[0] at position t0 (offset
// off in its block) to running s, which Append has checked, for a hybrid
// manager whose every group's last block is the sequence's own and
// uncommitted (gslow unset, hence no drafts). A token that starts a block
// takes growGroups' steps; any other needs no new block (every table
// holds a block per started block of tokens, and no tail is shared), so
// it takes growGroups' steps that remain: the windows slide, then the
// token fills its slot, committing the blocks it fills. It reports false,
// with nothing changed that the general path would not change the same
// way, where that path must decide: gslow set, or no space for the new
// blocks. Afterwards it marks s own (see seqFields.ownEnd) when the next
// tokens of its last block need nothing but their slots, so Append takes
// them inline.
func (m *Manager) appendOne(s *sequence, t0, off int, tokens []int32) bool {
	if s.gslow {
		return false
	}
	if off == 0 {
		if m.pair {
			if !m.startPair(s, t0, tokens[0]) {
				return false
			}
			// ownsNext for a pair whose new block's first token was
			// just written: the block's last position, t0+bs-1, must
			// not move the window past a block.
			m.setOwn(s, m.bs > 1 && m.windowKind().readsFrom(s.ext[m.oneLocal-1].released+1) >= t0+m.bs-1)
			return true
		} else if _, ok := m.growGroups(s, tokens, false); !ok {
			return false
		}
	} else {
		// growGroups would find it needs no block, hence space either
		// way, and slide before writing the token.
		if m.pair {
			// A full + window pair: the window's rule called directly.
			t, k := &s.ext[m.oneLocal-1], m.windowKind()
			if k.slides(t0, t.released, 0) {
				m.slideTable(s, m.oneLocal, t, k.dead(t0, 0))
			}
		} else if m.mustSlide(s, t0) {
			m.slideGroups(s, t0)
		}
		s.tokens = append(s.tokens, tokens[0])
		if off == m.bs-1 {
			m.hashFull(s)
			if m.pair {
				m.commitPair(s)
			} else {
				m.commitFull(s)
				m.commitGroups(s)
			}
			// s ends a block: never own (ownsNext would say so).
			m.setOwn(s, false)
			return true
		}
	}
	m.setOwn(s, m.ownsNext(s))
	return true
}

// startPair is growGroups for the token tok at position t0, which starts
// a block, of running s on a manager of a full-attention group 0 and one
// window group (m.pair: any other groups are State or Shared groups, which
// never gain a block), where gslow is unset: each of the two tables gains
// a block, in the general path's order (slide, space check, group 0's
// block, then the window group's), and the token fills its block only
// when a block holds one.
// It reports false, having changed nothing the general path would not
// change the same way, when the free blocks do not suffice: with
// UnifiedFreeQueue having slid, as that path does before its space
// check; otherwise having done nothing, leaving the count of what sliding
// would free to that path.
func (m *Manager) startPair(s *sequence, t0 int, tok int32) bool {
	g := m.oneLocal
	t := &s.ext[g-1]
	want := m.ceilBlocks(t0 + 1) // a window group needs as many (attention.need)
	need := want - len(s.blocks) + want - len(t.blocks)
	k := m.windowKind()
	slides := k.slides(t0, t.released, 0)
	if m.cfg.UnifiedFreeQueue {
		if slides {
			m.slideTable(s, g, t, k.dead(t0, 0))
		}
		if need > m.available() {
			return false
		}
	} else {
		if need > m.available() {
			return false // the general path counts what sliding frees
		}
		if slides {
			m.slideTable(s, g, t, k.dead(t0, 0))
		}
	}
	if len(s.blocks) == want-1 && len(t.blocks) == want-1 && m.sparePages == 0 {
		// One block each, the decode step's case: allocBlock's work
		// without its spare states (none) and its peak notes (one below
		// says the same), in the same order: the copies into f go
		// before w is taken, as their parked source, released with
		// them, may be the block w is.
		f, ev0 := m.bp.alloc(m.now)
		if len(m.bp.named) > 0 || len(m.copies) > 0 {
			m.dropCopiesInto(f)
		}
		w, ev1 := m.bp.alloc(m.now)
		m.stats.evictions += uint64(b2u(ev0) + b2u(ev1))
		if len(m.bp.named) > 0 || len(m.copies) > 0 {
			m.dropCopiesInto(w)
		}
		s.blocks = append(s.blocks, f)
		t.blocks = append(t.blocks, w)
	} else {
		for len(s.blocks) < want {
			s.blocks = append(s.blocks, m.allocBlock())
		}
		for len(t.blocks) < want {
			t.blocks = append(t.blocks, m.allocBlock())
		}
	}
	m.notePeak()
	s.tokens = append(s.tokens, tok)
	if m.bs == 1 {
		m.hashFull(s)
		m.commitPair(s)
	}
	return true
}

// commitPair is commitFull and commitGroups for a manager of a full
// attention group 0 and one window group (m.pair: the other groups, State
// or Shared, never commit), whose commits nothing else hears of (no
// events, no host tier, no hinting policy, no hash memo): each table's
// new run straight to the pool's loop (blockPool.commitRun), group 0's
// first, as the general path commits them; otherwise that path.
func (m *Manager) commitPair(s *sequence) {
	if m.bp.events.on() || m.bp.parent != nil || m.tier != nil || m.bp.hinter != nil || m.bp.memo != nil {
		m.commitFull(s)
		m.commitGroups(s)
		return
	}
	n := len(s.hashes)
	stored := 0
	if limit := min(n, len(s.blocks)); s.committed < limit {
		stored += m.bp.commitRun(s.blocks, s.hashes, s.committed, limit, 0)
		s.committed = limit
	}
	g := m.oneLocal
	t := &s.ext[g-1]
	if limit := min(n, len(t.blocks)); t.committed < limit {
		stored += m.bp.commitRun(t.blocks, s.hashes, t.committed, limit, g)
		t.committed = limit
	}
	m.stats.stored += uint64(stored)
}

// ownsNext reports whether Append may write the next tokens of the partly
// filled last block of s in place up to its last slot (Append's inline
// path stops before the token that fills a block): gslow unset, and no
// window or chunk moves past a block on the way.
func (m *Manager) ownsNext(s *sequence) bool {
	n := len(s.tokens)
	q, off := m.split(n)
	if s.gslow || off == 0 {
		return false
	}
	if !m.anyLocal {
		return true
	}
	// In every local group, the first position whose query reads none of
	// the block after the released ones (where the group could release
	// it: a chunk may keep it longer) must lie at or after the last
	// block's last position.
	last := (q+1)*m.bs - 1
	if m.window > 0 {
		// One local group, a window group: its kind called directly.
		return m.windowKind().readsFrom(s.ext[m.oneLocal-1].released+1) >= last
	}
	for g := range s.ext {
		if k := m.kinds[g+1]; k.local() && k.readsFrom(s.ext[g].released+1) < last {
			return false
		}
	}
	return true
}

// windowKind is the kind of the one window group (m.window > 0): a value,
// so that its methods are called, and inlined, without the interface.
func (m *Manager) windowKind() windowKind {
	return windowKind{attention{m.bs, m.shift}, m.window}
}

// commitGroups commits the full, hashed blocks of groups 1 and up past
// each group's committed mark, group by group.
func (m *Manager) commitGroups(s *sequence) {
	for g := range s.ext {
		t := &s.ext[g]
		limit := min(len(s.hashes), len(t.blocks))
		// The kind is asked only when there is something to commit: a
		// state is not content of a block of tokens.
		if t.committed >= limit || !m.kinds[g+1].commits() {
			continue
		}
		m.commitRun(s, t.blocks, t.committed, limit, g+1)
		t.committed = limit
	}
}

// releaseGroups releases every table of s, group 0 first, each tail first
// down to its released entries (the null block: a long sequence's window
// table is mostly those).
func (m *Manager) releaseGroups(s *sequence) {
	m.bp.releaseTail(s.blocks, 0)
	s.blocks = s.blocks[:0]
	for g := range s.ext {
		t := &s.ext[g]
		m.bp.releaseTail(t.blocks, t.released)
		t.blocks, t.released, t.committed = t.blocks[:0], 0, 0
	}
}

// TableGroup returns the block table of a sequence in KV cache group g
// (Config.Groups); group 0's is Table's. Entries a sliding window no longer
// reaches, or that a window hit did not need, name the null block. A
// State group's table is its state's Pages pages, then, with drafts
// pending (AppendSpeculative), Pages more per draft: the state after the
// first draft, then after the second, and so on. The
// slice is a view, valid until the next call that changes the manager;
// do not modify it. Its capacity is its length, so appending to it copies
// it.
func (m *Manager) TableGroup(id SeqID, g int) ([]allocator.BlockID, error) {
	s, err := m.seq(id)
	if err != nil {
		return nil, err
	}
	if g < 0 || g >= max(1, len(m.cfg.Groups)) {
		return nil, errorf(ErrInvalid, "TableGroup %v: group %d of %d", id, g, max(1, len(m.cfg.Groups)))
	}
	t := m.table(s, g)
	return t[:len(t):len(t)], nil
}

// checkGroupsOf verifies the tables of groups 1 and up of running sequence
// slot i, counting their references into refs.
func (m *Manager) checkGroupsOf(i int, s *sequence, refs []int32) error {
	for g := range s.ext {
		t := &s.ext[g]
		if want := m.tableLen(s, g+1); len(t.blocks) != want {
			return fmt.Errorf("paged: sequence slot %d group %d (%v) has %d blocks for %d tokens, want %d", i, g+1, m.cfg.Groups[g+1].Kind, len(t.blocks), len(s.tokens), want)
		}
		if err := m.kinds[g+1].check(i, g+1, t, len(s.tokens)-s.spec); err != nil {
			return err
		}
		for k, b := range t.blocks {
			if (k < t.released) != (b == nullBlock) {
				return fmt.Errorf("paged: sequence slot %d group %d entry %d names block %d, released %d", i, g+1, k, b, t.released)
			}
			if b == nullBlock {
				continue
			}
			if !m.bp.pool.Valid(b) {
				return fmt.Errorf("paged: sequence slot %d group %d entry %d names block %d", i, g+1, k, b)
			}
			refs[b]++
			if k < t.committed && k < len(s.hashes) && (!m.bp.hasContent(b) || m.bp.hash[b] != s.hashes[k] || m.bp.groupOf(b) != g+1) {
				return fmt.Errorf("paged: sequence slot %d group %d entry %d: block %d does not hold the committed hash", i, g+1, k, b)
			}
		}
	}
	return nil
}
