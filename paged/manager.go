package paged

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// Manager is the block manager of one device pool: sequences, their block
// tables, copy-on-write sharing, the prefix cache and admission. It is not
// safe for concurrent use; see the package documentation.
type Manager struct {
	cfg Config
	bs  int
	// fullLen bounds a sequence without a window: MaxModelLen, at most
	// what the pool holds. maxStride bounds Batch.Stride.
	fullLen   int
	maxStride int
	// shift and mask replace division by bs when it is a power of two
	// (shift < 0 otherwise).
	shift int
	mask  int
	// bp is the pool, the eviction policy, the prefix index and the
	// event buffer (blockpool.go).
	bp blockPool

	chain   chain
	hashing bool
	// sharers are the live sequences whose prompt hashes a new prompt
	// with the same first block may take (share.go); nil: none may.
	sharers []shareEntry

	seqs     []sequence
	freeSeqs []uint32
	// res is what is left of Config.Reserve's buffers (reserve.go).
	res reserved
	// spare sums the token buffers above keepTokens that free slots keep.
	spare    int
	nlive    int
	nrunning int

	copies []Copy
	hits   []allocator.BlockID
	// voids and voidRefs are voidShared's candidates and their counted
	// table references, kept for reuse.
	voids    []allocator.BlockID
	voidRefs []int32

	stamp uint32
	// step numbers the engine steps: it advances when a step's
	// directives are taken (TakeSwaps, TakeCopies; BuildBatch and
	// DecodeStep take both) or EndStep says the step ran, from 1,
	// never 0.
	step uint32
	// drops lists the slots of sequences Uncompute marked (dropNow) in
	// the step being built, cleared when it ends (EndStep).
	drops []uint32
	now   int64
	stats counters

	tier *hostTier // nil without Config.HostBlocks
	pins pinSet    // pin.go

	// KV cache groups (groups.go), set only with more than one group:
	// ghits is the lookup's hits of groups 1 and up, window the window of
	// the only local group when it is a window group (the per-block group
	// is the index entry's, blockLinks.group).
	// kinds is each group's kind (group_kinds.go); classes are the groups
	// besides full attention whose hits cut the full-attention one, one
	// class per kind and size (groups.go).
	kinds   []groupKind
	classes []hitClass
	// anyLocal: a group is a window or chunked group; anyState: a group
	// is a State group.
	anyLocal, anyState bool
	// spages is the pages of every State group's state together: what one
	// pending draft holds (groups_ops.go, "State drafts"); draftPages
	// counts the device blocks running sequences hold for their drafts,
	// sparePages those they keep as spare draft states (reclaimable).
	spages, draftPages, sparePages int
	// oneLocal is the only window or chunked group (-1: several, 0:
	// none), and wids the window lookup's scratch for it.
	oneLocal int
	// manyFull: a group besides group 0 is full attention, so the
	// full-attention hit is looked up in each; pair: group 0 and one
	// window group are the only groups that grow (startPair).
	manyFull, pair bool
	wids           []allocator.BlockID
	sib            []allocator.BlockID // the window lookup's guesses (group_kinds.go)
	// fullEv and fullHost are the evictable and host hits among the
	// full-attention hit the last hybrid lookup found in group 0 before
	// the other groups cut it (fullEv -1: not counted), for planGroups.
	fullEv, fullHost int
	ghits            [][]allocator.BlockID
	window           int
	// ret shelves cached blocks of a hybrid manager (retention.go).
	ret retainer
	// lines is the last fork line numbered (seqRetention.line).
	lines uint32
	// refusals is the rest of the slab the ErrNoSpace errors of Admit,
	// Append and Fork are taken from (noSpace).
	refusals []spaceError
}

// Copy is a copy-on-write directive: before the step's kernels run, the
// server copies the KV of block Src into block Dst.
//
// A Copy's source is not handed out again before the step ends (EndStep,
// which TakeSwaps, TakeCopies, BuildBatch and DecodeStep call): when its
// last holder lets it go during the step while the copy is live (its
// destination is held, or free but still cached, so that a prefix hit of
// the step may claim it), it is parked until then. A parked block is
// allocated (Stats count it as used, and in ParkedBlocks) and counts as
// available nowhere: the space checks that count what a release frees (a
// window's slide) count it as freeing nothing, and a verdict or Truncate that would make a
// spare draft state (counted available) of a page a copy reads gives the
// sequence's spares back instead. So no later directive of the step (a
// swap-in, an onboard, another copy) writes a Copy's source. And no
// Copy's Dst is another Copy's Src or Dst of the same list (a copy from a
// block a pending copy fills reads that copy's source; a pending copy
// into, or from, a block handed out again is moot and dropped): the
// step's copies may run in any order, or as one batched kernel. Take the
// copies in the step that decided them: a copy left pending past EndStep
// keeps its place in the list, but no longer its source.
type Copy struct {
	// Src is the block copied from and Dst the block copied to.
	Src, Dst allocator.BlockID
}

// New returns a manager for cfg, or an error naming the bad field.
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	bp, err := newBlockPool(&cfg)
	if err != nil {
		return nil, fmt.Errorf("paged: %w", err)
	}
	m := &Manager{
		cfg:     cfg,
		bs:      cfg.BlockSize,
		shift:   -1,
		bp:      bp,
		chain:   chain{hasher: cfg.Hasher, root: rootHash(cfg.HashSeed), bs: cfg.BlockSize},
		hashing: !cfg.DisablePrefixCaching,
		step:    1,
		fullLen: min(cfg.MaxModelLen, cfg.poolTokens()),
		sharers: newSharers(&cfg),
	}
	m.maxStride = 16
	for m.maxStride < (cfg.MaxModelLen+cfg.BlockSize-1)/cfg.BlockSize {
		m.maxStride *= 2
	}
	if m.bp.policy == nil {
		return nil, fmt.Errorf("%w: Config.Policy returned a nil policy", ErrInvalid)
	}
	if bits.OnesCount(uint(m.bs)) == 1 {
		m.shift, m.mask = bits.TrailingZeros(uint(m.bs)), m.bs-1
	}
	m.initGroups()
	if err := m.checkReserve(); err != nil {
		return nil, err
	}
	m.initRetention()
	m.initReserve()
	m.bp.quiet = make([]bool, max(1, len(cfg.Groups)))
	for g := range m.bp.quiet {
		m.bp.quiet[g] = m.hybrid() && m.ckptGroup(g)
	}
	if cfg.HostBlocks > 0 {
		if m.tier, err = newHostTier(cfg, cfg.NumBlocks); err != nil {
			return nil, err
		}
		m.tier.copies, m.tier.quiet = &m.copies, m.bp.quiet
		m.bp.host = m.tier
	}
	m.initCheckpointEvents()
	if cfg.UnifiedFreeQueue {
		// Every unreferenced block lives in the policy, in ID order at start.
		for range m.bp.pool.Usable() {
			id, _ := m.bp.pool.Alloc()
			m.bp.pool.ReleaseToCache(id)
			m.bp.policy.Insert(id)
		}
	}
	return m, nil
}

// split returns pos/bs and pos%bs.
func (m *Manager) split(pos int) (int, int) {
	if m.shift >= 0 {
		return pos >> m.shift, pos & m.mask
	}
	return pos / m.bs, pos % m.bs
}

// fullBlocks is the number of blocks n tokens fill wholly (n >= 0).
func (m *Manager) fullBlocks(n int) int { return attention{m.bs, m.shift}.div(n) }

// ceilBlocks is the number of blocks n tokens fill, wholly or partly.
func (m *Manager) ceilBlocks(n int) int { return attention{m.bs, m.shift}.need(n) }

// BlockSize returns the number of token slots per block.
func (m *Manager) BlockSize() int { return m.bs }

// Config returns the manager's configuration with defaults filled in.
// Its Groups and HashSeed are copies the caller may change. Its Hasher is
// the manager's own (a Hasher belongs to one manager): set it to nil, or
// to a new hasher, before passing the Config to New for another manager.
func (m *Manager) Config() Config {
	c := m.cfg
	c.Groups, c.HashSeed = slices.Clone(c.Groups), slices.Clone(c.HashSeed)
	return c
}

// Advance sets the logical time that pins (Pin's until) and the priority
// policy's promises expire by: pins whose expiry is at or before now are
// released (PinExpired events), and the eviction policies that keep time
// (the device's and the host tier's) lapse what expired. Time never goes
// backwards; a smaller value is ignored.
func (m *Manager) Advance(now int64) {
	if now <= m.now {
		return
	}
	m.now = now
	m.expirePins(now)
	if m.bp.ticker != nil {
		m.bp.ticker.Advance(now)
	}
	if m.tier != nil && m.tier.ticker != nil {
		m.tier.ticker.Advance(now)
	}
}

// available returns the blocks an allocation may take: free ones plus
// evictable ones, the policy's and the retention shelves'.
func (m *Manager) available() int {
	return m.bp.available() + m.bp.shelves.shelved() + m.sparePages
}

// watermarkBlocks is the headroom admission must leave.
func (m *Manager) watermarkBlocks() int {
	return int(math.Ceil(m.cfg.Watermark * float64(m.bp.pool.Usable())))
}

// allocBlock takes one block for new content (blockPool.alloc), counting
// evictions and the peak; when no block is free or evictable, it first
// reclaims the spare draft states (groups_ops.go). REQUIRES: available()>0.
func (m *Manager) allocBlock() allocator.BlockID {
	if m.sparePages > 0 && m.bp.available()+m.bp.shelves.shelved() == 0 {
		m.reclaimSpares()
	}
	id, evicted := m.bp.alloc(m.now)
	if evicted {
		m.stats.evictions++
	}
	if len(m.bp.named) > 0 || len(m.copies) > 0 {
		m.dropCopiesInto(id)
	}
	m.notePeak()
	return id
}

// dropCopiesInto drops the pending copies into block id, just handed out
// again: their destination's holders are gone, so they are moot, and run
// beside the copies of id's new holder they would race them for it. It
// drops the copies from id too: id was not parked, so they are not live
// (blockPool.live), and kept, a copy the new holder queues into id would
// write the source of one of the list. Copies a caller left untaken past
// the end of their step (EndStep) are pruned the same way, so the list it
// takes keeps Copy's promise among its entries. O(copies).
func (m *Manager) dropCopiesInto(id allocator.BlockID) {
	keep := func(c Copy) bool {
		return c.Dst != id && (c.Src != id || m.bp.live(c))
	}
	m.copies = filterCopies(m.copies, keep)
	n := len(m.bp.named)
	m.bp.named = filterCopies(m.bp.named, keep)
	if len(m.bp.named) < n && len(m.bp.parked) > 0 && !m.bp.pruning {
		m.bp.pruning = true
		m.bp.prune()
		m.bp.pruning = false
	}
}

// filterCopies keeps the copies keep accepts, in order, in place.
func filterCopies(cs []Copy, keep func(Copy) bool) []Copy {
	out := cs[:0]
	for _, c := range cs {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// allocBlocks appends new blocks to *blocks (allocBlock) until it holds
// n, growing it once; the caller notes the peak. REQUIRES: enough free or
// evictable blocks.
func (m *Manager) allocBlocks(blocks *[]allocator.BlockID, n int) {
	b := *blocks
	if k := len(b); k < n {
		b = slices.Grow(b, n-k)[:n]
		if m.sparePages > 0 && m.bp.available()+m.bp.shelves.shelved() < n-k {
			m.reclaimSpares()
		}
		if len(m.bp.named) > 0 || len(m.copies) > 0 {
			// Each block's copies go before the next is taken, as
			// allocBlock's do: a parked source they release may be
			// the next block.
			for i := k; i < n; i++ {
				id, evicted := m.bp.alloc(m.now)
				m.stats.evictions += uint64(b2u(evicted))
				m.dropCopiesInto(id)
				b[i] = id
			}
		} else {
			m.stats.evictions += uint64(m.bp.allocRun(b[k:n], m.now))
		}
		*blocks = b
	}
}

func (m *Manager) notePeak() {
	if h := m.bp.pool.Held(); h > m.stats.peakUsed {
		m.stats.peakUsed = h
	}
}
