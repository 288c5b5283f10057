package paged

import "github.com/pagedkv/pagedkv/allocator"

// Scheduled names a running sequence in a step and how many of its last
// tokens are new this step (their KV is computed and written this step).
type Scheduled struct {
	ID        SeqID
	NewTokens int
}

// Batch is the kernel-ready metadata of one engine step. Keep one Batch and
// pass it to BuildBatch every step: its buffers are reused, and its block
// tables are persistent, so a row whose sequence sits at the same position
// as in the previous step is only extended by the blocks it gained. A
// scheduler that keeps its running list in a stable order (as vLLM's
// persistent batch does) pays O(changed entries + sequences) per step.
type Batch struct {
	// Stride is the width of a table row in blocks. Set it before the
	// first BuildBatch to fix it (kernels compiled for one width; a longer
	// sequence is then an error); left zero, it is chosen automatically as
	// a power of two of at least 16 that fits the longest scheduled
	// sequence, and grows when needed.
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
	// Copies are the copy-on-write directives to run before the kernels.
	Copies []Copy
	// Swaps are the tier transfers (swap, offload, onboard) to run in
	// order before Copies and the kernels; see Swap.
	Swaps []Swap

	rows  []batchRow
	fixed bool
}

type batchRow struct {
	id      SeqID
	version uint32
	filled  int
}

// BuildBatch fills b for the scheduled sequences of one step, takes the
// pending copy directives, and allocates nothing once b's buffers have
// grown. On error (an unknown, waiting or repeated sequence, or NewTokens
// outside [1, length]) b is left as it was.
func (m *Manager) BuildBatch(b *Batch, sched []Scheduled) error {
	if b.Stride < 0 {
		return errorf(ErrInvalid, "Batch.Stride %d must not be negative", b.Stride)
	}
	m.stamp++
	if m.stamp == 0 {
		m.stamp = 1
		for i := range m.seqs {
			m.seqs[i].mark = 0
		}
	}
	widest := 0
	for _, sc := range sched {
		s, err := m.running(sc.ID, "BuildBatch")
		if err != nil {
			return err
		}
		if sc.NewTokens < 1 || sc.NewTokens > len(s.tokens) {
			return errorf(ErrInvalid, "BuildBatch: %v has %d new tokens of %d", sc.ID, sc.NewTokens, len(s.tokens))
		}
		if len(s.tokens)-sc.NewTokens < s.released*m.bs {
			return errorf(ErrInvalid, "BuildBatch: %v: new tokens before its sliding window", sc.ID)
		}
		if b.fixed && len(s.blocks) > b.Stride {
			return errorf(ErrInvalid, "BuildBatch: %v has %d blocks, wider than Batch.Stride %d", sc.ID, len(s.blocks), b.Stride)
		}
		if s.mark == m.stamp {
			return errorf(ErrInvalid, "BuildBatch: %v scheduled twice", sc.ID)
		}
		s.mark = m.stamp
		widest = max(widest, len(s.blocks))
	}
	stride := b.Stride
	if len(b.rows) == 0 && stride > 0 {
		b.fixed = true
	}
	if !b.fixed && widest > stride {
		// Automatic width: a power of two, at least 16 blocks, grown as
		// longer sequences arrive (every row is rewritten then).
		stride = 16
		for stride < widest {
			stride *= 2
		}
	}
	if stride != b.Stride || len(b.rows) == 0 {
		b.Stride = stride
		b.rows = b.rows[:0]
		clear(b.Tables[:cap(b.Tables)])
		b.Tables = b.Tables[:0]
	}
	n := len(sched)
	for len(b.rows) < n {
		b.rows = append(b.rows, batchRow{})
	}
	if need := n * stride; cap(b.Tables) < need {
		t := make([]int32, need, need+need/2)
		copy(t, b.Tables[:cap(b.Tables)])
		b.Tables = t
	} else {
		b.Tables = b.Tables[:need]
	}
	b.Seqs, b.SeqLens, b.QueryLens = b.Seqs[:0], b.SeqLens[:0], b.QueryLens[:0]
	b.QueryStart, b.Slots = append(b.QueryStart[:0], 0), b.Slots[:0]
	for i, sc := range sched {
		idx, _ := sc.ID.parts()
		s := &m.seqs[idx]
		row := b.Tables[i*stride : (i+1)*stride]
		r := &b.rows[i]
		from := r.filled
		if r.id != sc.ID || r.version != s.version || from > len(s.blocks) {
			// A different sequence, or this one replaced or dropped
			// entries: rewrite the row.
			clear(row[len(s.blocks):min(max(r.filled, len(s.blocks)), stride)])
			from = 0
		}
		for k := from; k < len(s.blocks); k++ {
			row[k] = int32(s.blocks[k])
		}
		*r = batchRow{id: sc.ID, version: s.version, filled: len(s.blocks)}
		b.Seqs = append(b.Seqs, sc.ID)
		b.SeqLens = append(b.SeqLens, int32(len(s.tokens)))
		b.QueryLens = append(b.QueryLens, int32(sc.NewTokens))
		for pos := len(s.tokens) - sc.NewTokens; pos < len(s.tokens); pos++ {
			b.Slots = append(b.Slots, slot(s.blocks[pos/m.bs], m.bs, pos))
		}
		b.QueryStart = append(b.QueryStart, int32(len(b.Slots)))
	}
	b.Swaps = m.TakeSwaps(b.Swaps[:0])
	b.Copies = m.TakeCopies(b.Copies[:0])
	return nil
}

func slot(b allocator.BlockID, bs, pos int) int64 { return int64(b)*int64(bs) + int64(pos%bs) }
