package paged

type counters struct {
	queries, queryTokens, hitTokens, queryBlocks, hitBlocks uint64
	evictions, stored, copies, forks, preemptions, unadmits uint64
	hashed, recalled, retained, ckptDropped, hitFallbacks   uint64
	peakUsed                                                int
}

// Stats is a snapshot of a manager's occupancy and lifetime counters.
type Stats struct {
	// BlockSize is the number of token slots per block.
	BlockSize int
	// TotalBlocks counts every block, the null block included;
	// UsableBlocks = TotalBlocks - 1.
	TotalBlocks, UsableBlocks int
	// FreeBlocks are on the free list; CachedBlocks are unreferenced but
	// hold cached content (evictable); UsedBlocks are referenced.
	// FreeBlocks + CachedBlocks + UsedBlocks == UsableBlocks. With
	// Config.UnifiedFreeQueue every unreferenced block counts as cached.
	FreeBlocks, CachedBlocks, UsedBlocks int
	// PeakUsedBlocks is the most blocks referenced at once so far.
	PeakUsedBlocks int
	// StateDraftPages counts the blocks (part of UsedBlocks) that running
	// sequences' State groups hold for the states of pending drafts
	// (AppendSpeculative): Pages per State group per draft.
	StateDraftPages int
	// StateSparePages counts the blocks (part of UsedBlocks) that running
	// sequences' State groups keep as spare draft states between steps, so
	// that the next drafts take no pages from the pool. They count as
	// available: an allocation that finds no block free or evictable
	// reclaims them.
	StateSparePages int
	// ParkedBlocks counts the blocks (part of UsedBlocks) whose last
	// holder let them go during the step being built while a Copy
	// directive of the step still reads them (see Copy): free, or
	// cached, once the step ends (EndStep), but not before.
	ParkedBlocks int
	// RetentionPins counts the references running sequences hold as
	// retention pins in the default hybrid mode (docs/hybrid.md): window
	// blocks before their branch points and the state checkpoints they
	// hit or took there, kept for later sequences' hits. Part of
	// UsedBlocks, but a soft cost: a sequence alone in the pool that
	// Append, AppendSpeculative or Fork finds short of room releases its
	// own (to the high shelf, still cached), and RetentionPinsReleased
	// counts the pins so released.
	RetentionPins         int
	RetentionPinsReleased uint64
	// Sequences are live handles; Running of them hold device blocks,
	// Waiting don't: not yet admitted, preempted, or swapped out (whose
	// blocks are on the host; they count against Config.MaxWaiting too).
	Sequences, Running, Waiting int
	// PrefixQueries counts admissions attempted: every Admit, AdmitChunk
	// and Create call that looked up its prefix, refused ones included
	// (ErrNoSpace, ErrNever: vLLM counts every lookup too), but an
	// admission Unadmit took back, which counts as not made (the
	// scheduler took back its own decision: the readmission is the one
	// lookup that stands).
	PrefixQueries uint64
	// PrefixQueryTokens sums the sequence lengths those lookups queried
	// (the whole sequence for AdmitChunk) and PrefixHitTokens the cached
	// prefixes they found, in tokens (none where the admission drops a
	// state checkpoint hit that does not fit for a miss, see Admit).
	PrefixQueryTokens, PrefixHitTokens uint64
	// PrefixQueryBlocks and PrefixHitBlocks are the same sums in blocks
	// (the blocks each sequence needs, and the hits among them, the
	// host tier's included: Tiers.HostHitBlocks).
	PrefixQueryBlocks, PrefixHitBlocks uint64
	// Evictions counts cached blocks given up to make room; BlocksStored
	// counts blocks committed to the prefix index; BlocksHashed counts
	// block hashes the manager computed (each a Hasher.Sum call), the
	// floor of what prefix caching costs.
	Evictions, BlocksStored, BlocksHashed uint64
	// HashesRecalled counts block hashes taken instead of computed: from
	// the hash memo (Config.HashMemo) or, without it, from a live
	// sequence added earlier whose prompt begins with the same blocks
	// (the SHA-256 hasher only; every token compared). BlocksHashed +
	// HashesRecalled is every block hash the manager produced.
	HashesRecalled uint64
	// Copies counts copy-on-write directives; Forks and Preemptions count
	// Fork and Preempt calls that succeeded (swap preemptions are
	// Tiers.SwapOutCalls); Unadmits counts admissions Unadmit took back,
	// which count in neither Preemptions nor the prefix statistics.
	Copies, Forks, Preemptions, Unadmits uint64
	// EventsDropped counts KV events lost to a full buffer.
	EventsDropped uint64
	// CheckpointHitsDropped counts admissions (Admit, AdmitChunk, Create)
	// whose lookup found a state checkpoint hit that did not fit where
	// the sequence computed from scratch did, and that computed it from
	// scratch instead (see Admit; for AdmitChunk, the whole prompt's hit
	// or the hit of the cut it admits). Their PrefixHitTokens count no
	// hit; refused admissions count none; Unadmit takes back the one its
	// admission counted.
	CheckpointHitsDropped uint64
	// HitFallbacks counts admissions (Admit, AdmitChunk, Create) of the
	// default mode whose longest cached prefix would have made them never
	// fit, or not fit now with no sequence running, where a miss fits,
	// and that took the longest shorter hit that fits instead, or a miss
	// (see AdmitChunk). Their PrefixHitTokens count the hit taken;
	// refused admissions count none; Unadmit takes back the one its
	// admission counted.
	HitFallbacks uint64
	// RetainedHits counts the cached blocks that admissions with a
	// retention (SeqOptions.Retention) reused and passed their promise
	// for to a policy that keeps promises (the priority policy), whether
	// or not the promise changed the block's level.
	RetainedHits uint64
	// Tiers holds the host tier's figures (zero without one).
	Tiers TierStats
}

// HitRate returns prefix hit tokens / query tokens, 0 before any query.
func (s Stats) HitRate() float64 {
	if s.PrefixQueryTokens == 0 {
		return 0
	}
	return float64(s.PrefixHitTokens) / float64(s.PrefixQueryTokens)
}

// Usage returns the share of usable blocks referenced by sequences, as
// vLLM's kv_cache_usage.
func (s Stats) Usage() float64 {
	if s.UsableBlocks == 0 {
		return 0
	}
	return float64(s.UsedBlocks) / float64(s.UsableBlocks)
}

// Stats returns a snapshot of the counters. It allocates nothing.
func (m *Manager) Stats() Stats {
	c := &m.stats
	st := Stats{
		BlockSize:         m.bs,
		TotalBlocks:       m.bp.pool.Total(),
		UsableBlocks:      m.bp.pool.Usable(),
		FreeBlocks:        m.bp.pool.Free(),
		CachedBlocks:      m.bp.pool.Cached(),
		UsedBlocks:        m.bp.pool.Held(),
		PeakUsedBlocks:    m.stats.peakUsed,
		StateDraftPages:   m.draftPages,
		StateSparePages:   m.sparePages,
		ParkedBlocks:      len(m.bp.parked),
		Sequences:         m.nlive,
		Running:           m.nrunning,
		Waiting:           m.nlive - m.nrunning,
		PrefixQueries:     c.queries,
		PrefixQueryTokens: c.queryTokens,
		PrefixHitTokens:   c.hitTokens,
		PrefixQueryBlocks: c.queryBlocks,
		PrefixHitBlocks:   c.hitBlocks,
		Evictions:         c.evictions,
		BlocksStored:      c.stored,
		BlocksHashed:      c.hashed,
		HashesRecalled:    c.recalled,
		Copies:            c.copies,
		Forks:             c.forks,
		Preemptions:       c.preemptions,
		Unadmits:          c.unadmits,
		EventsDropped:     m.bp.events.dropped,
		RetainedHits:      c.retained,

		CheckpointHitsDropped: c.ckptDropped,
		HitFallbacks:          c.hitFallbacks,
	}
	st.RetentionPins, st.RetentionPinsReleased = m.ret.pinned, m.ret.released
	m.tierStats(&st.Tiers)
	return st
}
