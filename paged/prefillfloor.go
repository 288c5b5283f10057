package paged

// PrefillFloor returns the fewest blocks a new sequence of n tokens with
// options opts (nil for none) can hold, every KV cache group's together,
// in the step that computes its last token, whatever the cache holds
// then: every block of a full-attention group, a State group's pages,
// none for a Shared group, and of a sliding window (a window group's, or
// SeqOptions.Window's without groups) or a chunked-local group only the
// blocks from the first one that step reads. Admitted whole (Admit), a
// sequence releases only the blocks before what its prefix hit needs, a
// hit of at most n-1 tokens with prefix caching on, none without;
// computed in chunks (chunked: AdmitChunk, then Append; a decode step is
// a chunk of one token), it may also compute the last token alone in a
// step after its admission (after a hit that leaves the admission a token
// to compute), which releases the blocks before that token's window or
// chunk (keeping, with prefix caching, a chunked-local group's last
// cached block, as vLLM does): the fewer of the two. The state checkpoint pages and retention pins of the default
// mode (docs/hybrid.md) are not counted: they only add to it, and a
// sequence alone in the pool gives up its pins for room.
//
// A sequence that would hold more than the pool's usable blocks can never
// be computed (more than those less the watermark, never admitted); one
// whose samples fork in that step (parallel sampling, beam search) holds
// the children's state pages besides (Fork takes them at once; its other
// blocks are shared), so adding those, it is a bound below which a
// scheduler may refuse such a request for good (sched's Submit). Options
// Add refuses are ErrInvalid, and so is n outside [1, MaxModelLen]; a
// windowed sequence longer than it may grow in this pool (see
// SeqOptions.Window) is ErrNever. O(groups).
func (m *Manager) PrefillFloor(n int, opts *SeqOptions, chunked bool) (int, error) {
	if n < 1 || n > m.cfg.MaxModelLen {
		return 0, errorf(ErrInvalid, "PrefillFloor of %d tokens: want [1, MaxModelLen=%d]", n, m.cfg.MaxModelLen)
	}
	if err := m.checkOptions(opts, n); err != nil {
		return 0, err
	}
	kinds := m.kinds
	var one [1]groupKind
	if !m.hybrid() {
		if opts == nil || opts.Window == 0 {
			return m.ceilBlocks(n), nil
		}
		if lim := m.seqLimit(opts.Window); n > lim {
			return 0, errorf(ErrNever, "PrefillFloor of %d tokens: a sequence of window %d holds at most %d in this pool", n, opts.Window, lim)
		}
		one[0] = windowKind{newAttention(m.bs), opts.Window}
		kinds = one[:]
	}
	// Whole: the longest hit, which leaves the last token to compute.
	hit := 0
	if m.hashing {
		hit = (n - 1) / m.bs
	}
	floor := m.floorAt(kinds, n, hit, false)
	if chunked && n > 1 {
		// In chunks: the longest hit that leaves the admission a token
		// before the last, which a step of its own then computes; the
		// blocks before are committed.
		if m.hashing {
			hit = (n - 2) / m.bs
		}
		floor = min(floor, m.floorAt(kinds, n, hit, true))
	}
	return floor, nil
}

// floorAt is the blocks a sequence of n tokens holds, in every group of
// kinds (the manager's, or a windowed sequence's one), in the step that
// computes its last token after a prefix hit of hit blocks: a local group
// releases the blocks before the hit's first needed one, and with slide
// (that step computes the last token alone, every block before it
// committed with prefix caching) those the token's query no longer reads.
func (m *Manager) floorAt(kinds []groupKind, n, hit int, slide bool) int {
	committed := 0
	if m.hashing {
		committed = (n - 1) / m.bs
	}
	held := 0
	for g, kind := range kinds {
		need := kind.need(n)
		if kind.local() {
			dead := 0
			if hit > 0 && m.hybrid() {
				dead = m.hitFrom(g, hit)
			} else if hit > 0 {
				dead = windowFrom(kind.(windowKind), hit)
			}
			if slide {
				dead = max(dead, kind.dead(n-1, committed))
			}
			need -= dead
		}
		held += need
	}
	return held
}
