package paged

import (
	"cmp"

	"github.com/pagedkv/pagedkv/allocator"
)

// Scheduled names a running sequence in a step and how many of its last
// tokens are new this step (their KV is computed and written this step).
type Scheduled struct {
	// ID is the running sequence.
	ID SeqID
	// NewTokens is the number of its last tokens new this step, at least 1.
	NewTokens int
}

// Batch is the kernel-ready metadata of one engine step. Keep one Batch and
// pass it to BuildBatch every step: its buffers are reused, and its block
// tables are persistent, so a row whose sequence sits at the same position
// as in the previous step is only extended by the blocks it gained. A
// scheduler that keeps its running list in a stable order (as vLLM's
// persistent batch does) pays O(changed entries + sequences) per step.
// So Tables and GroupTables are the Batch's between calls: read them, do
// not modify them (a changed entry would stay in later steps' rows). Each
// call rewrites the other rows and the directives whole; the caller may
// modify those.
type Batch struct {
	// Stride is the width of a table row in blocks. Set it before the
	// first BuildBatch to fix it (kernels compiled for one width; a longer
	// sequence is then an error); left zero, it is chosen automatically as
	// a power of two of at least 16 that fits the longest scheduled
	// sequence, and grows when needed. Changing it between calls fixes the
	// new width (or, set back to zero, makes it automatic again) and
	// rewrites every row. At most MaxModelLen/BlockSize rounded up to a
	// power of two (16 if that is smaller).
	Stride int
	// Seqs are the scheduled sequences, one table row each.
	Seqs []SeqID
	// Tables holds len(Seqs) rows of Stride block IDs, row-major, padded
	// with the null block 0.
	Tables []int32
	// SeqLens are the sequences' lengths in tokens after this step.
	SeqLens []int32
	// QueryLens are the new tokens per sequence; QueryStart[i] is where
	// sequence i's new tokens begin in Slots (len(Seqs)+1 entries).
	QueryLens, QueryStart []int32
	// Slots are the KV slots of the new tokens, sequence after sequence:
	// block*BlockSize + offset.
	Slots []int64
	// SplitUnits, when positive, makes BuildBatch also plan a
	// Flash-Decoding split of the batch over that many compute units, with
	// chunks of at least SplitMinChunk blocks (default 1), into Split.
	SplitUnits, SplitMinChunk int
	// Split is the split-KV plan of this step when SplitUnits > 0. Each
	// sequence's items start at its FirstBlocks entry.
	Split SplitPlan
	// FirstBlocks, when SplitUnits > 0, holds for each scheduled sequence
	// the first block of its table that the step's queries read: 0, or
	// with a sliding window (SeqOptions.Window) the block the window of
	// its first new token reaches; the entries before it are released
	// (null) or about to be. Split plans blocks FirstBlocks[i] to
	// BlocksPerSeq[i]-1 of sequence i (SplitPlan.BuildFrom).
	FirstBlocks []int32
	// BlocksPerSeq is each scheduled sequence's table length in blocks.
	BlocksPerSeq []int32
	// Copies are the copy-on-write directives to run before the kernels.
	Copies []Copy
	// Swaps are the tier transfers (swap, offload, onboard) to run in
	// order before Copies and the kernels; see Swap.
	Swaps []Swap
	// GroupTables and GroupSlots are, for KV cache groups 1 and up
	// (Config.Groups; entry g-1 for group g), the block tables (rows in
	// the order of Seqs, Stride wide, null-padded; entries a window
	// released are null; a Shared group's rows repeat its target's) and
	// the slots of the new tokens, laid out as Tables and Slots are for
	// group 0. A State group's rows are its Pages state blocks (Pages
	// wide; its drafts' states are in StateDrafts) and it has no slots: a
	// state is read and updated whole. Empty for a single-group manager.
	GroupTables [][]int32
	GroupSlots  [][]int64
	// DraftStart, StateDrafts and StateRead name, with State groups
	// (empty otherwise), where the states of drafts (AppendSpeculative)
	// go: each pending draft of a sequence has a state of its own in every
	// State group, Pages pages, and the kernel that computes the draft
	// writes there the state after it, so that whichever draft is the
	// last accepted, its state is kept (AcceptSpeculative). DraftStart
	// has len(Seqs)+1 entries: sequence i has D = DraftStart[i+1] -
	// DraftStart[i] drafts pending, its last D tokens. StateDrafts, entry
	// g-1 for State group g (empty for the other groups), holds
	// DraftStart[len(Seqs)] states of Pages block IDs each, sequence after
	// sequence: state DraftStart[i]+j-1, IDs [(DraftStart[i]+j-1)*Pages,
	// (DraftStart[i]+j)*Pages), is the one after sequence i's j-th draft.
	// StateRead[i] is the state sequence i's first new token of the step
	// reads: 0 is its state, its GroupTables row, which the step's tokens
	// before the drafts update in place as without drafts; j > 0 is the
	// state after its j-th draft, an earlier step's draft (the step starts
	// after it). A step without drafts has every DraftStart and StateRead
	// zero.
	DraftStart  []int32
	StateDrafts [][]int32
	StateRead   []int32

	rows []batchRow
	// stride is the width rows were laid out with (0: never), fixed
	// whether the caller chose it.
	stride      int
	fixed       bool
	groupRows   [][]groupRow
	groupStride int
}

type batchRow struct {
	id      SeqID
	version uint32
	// last repeats the row's last entry: a decode token's slot needs only
	// it, and this struct is already in cache for the delta check.
	last   int32
	filled int
}

// BuildBatch fills b for the scheduled sequences of one step, takes the
// pending copy and swap directives, and allocates nothing once b's buffers
// have grown. On error (an unknown, waiting or repeated sequence, NewTokens
// outside [1, length], a first new query whose sliding window or chunk
// reaches a released position, in any group, a sequence wider than a
// fixed Stride) the manager is unchanged, no directive is taken, and b holds
// no usable batch; its persistent rows stay consistent, so the next call
// builds correctly. A nil b, a negative Stride or one wider than any table
// can be (MaxModelLen/BlockSize rounded up to a power of two, at least 16),
// or SplitUnits outside [0, 2^20] is ErrInvalid.
func (m *Manager) BuildBatch(b *Batch, sched []Scheduled) error {
	if err := m.checkBatch("BuildBatch", b); err != nil {
		return err
	}
	if m.hybrid() {
		if err := m.checkGroupsBatch(sched); err != nil {
			return err
		}
	}
	b.layout()
	for {
		widest, err := m.fill(b, sched)
		if err != nil {
			return err
		}
		if widest == 0 {
			break
		}
		b.widen(widest)
	}
	m.finishBatch(b, sched)
	return nil
}

// checkBatch refuses what BuildBatch (or op) refuses of b itself.
func (m *Manager) checkBatch(op string, b *Batch) error {
	if b == nil {
		return errorf(ErrInvalid, "%s: nil *Batch", op)
	}
	if b.Stride < 0 || b.Stride > m.maxStride {
		return errorf(ErrInvalid, "Batch.Stride %d must be in [0, %d] (the longest table rounded up to a power of two)", b.Stride, m.maxStride)
	}
	if b.SplitUnits < 0 || b.SplitUnits > maxSplitUnits || b.SplitMinChunk < 0 {
		return errorf(ErrInvalid, "Batch.SplitUnits %d must be in [0, %d] and SplitMinChunk %d not negative", b.SplitUnits, maxSplitUnits, b.SplitMinChunk)
	}
	return nil
}

// layout takes the caller's Stride: on the first call, or when the caller
// changed Stride, a non-zero Stride fixes the width and zero makes it
// automatic; rows are dropped too when the caller replaced Tables.
func (b *Batch) layout() {
	switch {
	case b.stride == 0 || b.Stride != b.stride:
		b.fixed = b.Stride > 0
		b.relayout(cmp.Or(b.Stride, 16))
	case cap(b.Tables) < len(b.rows)*b.stride:
		b.relayout(b.stride)
	}
}

// widen makes an automatic width a power of two that fits widest blocks;
// every row is rewritten once.
func (b *Batch) widen(widest int) {
	stride := b.Stride
	for stride < widest {
		stride *= 2
	}
	b.relayout(stride)
}

// finishBatch completes b once its rows are filled: the other groups'
// tables, the split plan (its arguments checked by checkBatch, so it
// cannot fail) and the pending directives.
func (m *Manager) finishBatch(b *Batch, sched []Scheduled) {
	if m.hybrid() {
		m.fillGroups(b, sched)
	}
	if b.SplitUnits > 0 {
		b.FirstBlocks = resize(b.FirstBlocks, len(sched))
		for i, sc := range sched {
			b.FirstBlocks[i] = 0
			// fill validated every sequence: the lookup cannot fail.
			idx, _ := sc.ID.parts()
			if s := &m.seqs[idx]; s.windowed {
				b.FirstBlocks[i] = int32(m.windowStart(s.opts.Window, len(s.tokens)-sc.NewTokens))
			}
		}
		if err := b.Split.BuildFrom(b.FirstBlocks, b.BlocksPerSeq, b.SplitUnits, max(b.SplitMinChunk, 1)); err != nil {
			panic("paged: a checked split plan failed: " + err.Error())
		}
	}
	m.EndStep()
	b.Swaps = m.takeSwaps(b.Swaps[:0])
	b.Copies = m.takeCopies(b.Copies[:0])
}

// relayout empties b's rows for a new width.
func (b *Batch) relayout(stride int) {
	b.Stride, b.stride = stride, stride
	b.rows = b.rows[:0]
	clear(b.Tables[:cap(b.Tables)])
	b.Tables = b.Tables[:0]
}

// fill validates and writes every row in one pass. It returns the width
// needed when a sequence is wider than an automatic stride (the caller
// relayouts and fills again), or an error.
func (m *Manager) fill(b *Batch, sched []Scheduled) (widen int, err error) {
	m.nextStamp()
	n, stride := len(sched), b.Stride
	b.size(n)
	// Local slices of length n let the compiler drop bounds checks.
	seqs, lens, qlens, nblocks := b.Seqs[:n], b.SeqLens[:n], b.QueryLens[:n], b.BlocksPerSeq[:n]
	qstart, rows, all := b.QueryStart[1:n+1], b.rows[:n], m.seqs
	// The slots grow in a local slice: appending through b would store the
	// slice header back into b on every token.
	slots := b.Slots[:0]
	for i, sc := range sched {
		idx, gen := sc.ID.parts()
		if uint(idx) >= uint(len(all)) || all[idx].gen != gen || all[idx].state != seqRunning {
			return 0, m.batchError(b, sc, nil)
		}
		s := &all[idx]
		ntok, nb := len(s.tokens), len(s.blocks)
		// The first new query, at ntok-NewTokens, reads back to
		// ntok-NewTokens-Window+1: none of it may be released.
		if sc.NewTokens < 1 || sc.NewTokens > ntok || (s.windowed && s.released > 0 && ntok-sc.NewTokens-s.opts.Window+1 < s.released*m.bs) ||
			s.mark == m.stamp || (nb > stride && b.fixed) {
			return 0, m.batchError(b, sc, s)
		}
		if nb > stride {
			widen = max(widen, nb)
		}
		s.mark = m.stamp
		if widen > 0 {
			continue // only validating now; the rows are rewritten anyway
		}
		r := &rows[i]
		if r.id != sc.ID || r.version != s.version || r.filled != nb {
			b.syncRow(i, sc.ID, s)
		}
		seqs[i], lens[i], qlens[i], nblocks[i] = sc.ID, int32(ntok), int32(sc.NewTokens), int32(nb)
		// A decode token's slot needs only the row's last entry, cached in
		// r; longer runs walk the row (dense, so cheaper to reach than the
		// sequence's own table) with one division per sequence.
		k, off := m.split(ntok - sc.NewTokens)
		if sc.NewTokens == 1 && k == nb-1 {
			slots = append(slots, int64(r.last)*int64(m.bs)+int64(off))
		} else {
			row := b.Tables[i*stride : i*stride+nb]
			base := int64(row[k]) * int64(m.bs)
			for range sc.NewTokens {
				if off == m.bs {
					k, off = k+1, 0
					base = int64(row[k]) * int64(m.bs)
				}
				slots = append(slots, base+int64(off))
				off++
			}
		}
		qstart[i] = int32(len(slots))
	}
	b.Slots = slots
	return widen, nil
}

// size makes b's rows, tables and per-sequence arrays n entries long (the
// tables n rows of b.Stride), reusing their arrays, and empties Slots.
func (b *Batch) size(n int) {
	for len(b.rows) < n {
		b.rows = append(b.rows, batchRow{})
	}
	if need := n * b.Stride; cap(b.Tables) < need {
		t := make([]int32, need, need+need/2)
		copy(t, b.Tables[:cap(b.Tables)])
		b.Tables = t
	} else {
		b.Tables = b.Tables[:need]
	}
	b.Seqs, b.SeqLens, b.QueryLens = resize(b.Seqs, n), resize(b.SeqLens, n), resize(b.QueryLens, n)
	b.BlocksPerSeq, b.QueryStart = resize(b.BlocksPerSeq, n), resize(b.QueryStart, n+1)
	b.QueryStart[0] = 0
	b.Slots = b.Slots[:0]
}

// syncRow brings row i of b, whose Tables are b.Stride wide, up to date
// with s, scheduled there as id, whose table fits the stride: its entries,
// and the row's record (batchRow), which the fill loops compare with s to
// skip this call when nothing changed. A row of a different sequence, or
// of this one after it replaced or dropped entries, is rewritten; one
// whose sequence only gained blocks is extended by them.
func (b *Batch) syncRow(i int, id SeqID, s *sequence) {
	stride, nb := b.Stride, len(s.blocks)
	r := &b.rows[i]
	if r.id != id || r.version != s.version || r.filled > nb {
		clear(b.Tables[i*stride+nb : i*stride+min(max(r.filled, nb), stride)])
		*r = batchRow{id: id, version: s.version}
	}
	if r.filled < nb {
		row := b.Tables[i*stride : i*stride+nb]
		for k := r.filled; k < nb; k++ {
			row[k] = int32(s.blocks[k])
		}
		r.filled, r.last = nb, row[nb-1]
	}
}

// batchError says what is wrong with one scheduled entry; kept out of
// fill's loop so the loop stays small.
func (m *Manager) batchError(b *Batch, sc Scheduled, s *sequence) error {
	if s == nil {
		_, err := m.running(sc.ID, "BuildBatch")
		return err
	}
	ntok := len(s.tokens)
	switch {
	case sc.NewTokens < 1 || sc.NewTokens > ntok:
		return errorf(ErrInvalid, "BuildBatch: %v has %d new tokens of %d", sc.ID, sc.NewTokens, ntok)
	case s.released > 0 && ntok-sc.NewTokens-s.opts.Window+1 < s.released*m.bs:
		return errorf(ErrInvalid, "BuildBatch: %v: the query at %d reads positions the sliding window released (the first %d); at most %d new tokens",
			sc.ID, ntok-sc.NewTokens, s.released*m.bs, ntok-(s.released*m.bs+s.opts.Window-1))
	case s.mark == m.stamp:
		return errorf(ErrInvalid, "BuildBatch: %v scheduled twice", sc.ID)
	}
	return errorf(ErrInvalid, "BuildBatch: %v has %d blocks, wider than Batch.Stride %d", sc.ID, len(s.blocks), b.Stride)
}

// resize returns s with length n, reusing its array when it is large enough.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/2)
	}
	return s[:n]
}

func slot(b allocator.BlockID, bs, pos int) int64 { return int64(b)*int64(bs) + int64(pos%bs) }
