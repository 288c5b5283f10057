package paged

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// SplitItem is one work item of a split-KV decode plan: the attention of
// one sequence over a contiguous run of its block table, [First, End). Its
// partial result (output, max logit, sum of exponentials) goes to the
// item's own index in SplitPlan.Items, so partials never collide.
type SplitItem struct {
	// Seq is the sequence's row in the batch (its index in the
	// blocksPerSeq slice given to Build).
	Seq int32
	// First and End bound the run of table entries, First inclusive, End
	// exclusive: blocks First..End-1 of the sequence's block table.
	First, End int32
	// Unit is the compute unit (an SM on a GPU) that runs the item; a
	// persistent kernel runs its unit's items one after the other.
	Unit int32
}

// Blocks returns the number of blocks the item covers.
func (it SplitItem) Blocks() int { return int(it.End - it.First) }

// SplitPlan is a Flash-Decoding work plan for one decode batch (Dao et al.,
// "Flash-Decoding for long-context inference", 2023): each sequence's blocks
// are cut into contiguous chunks, each chunk is a work item run by one
// compute unit, and the items of one sequence are merged afterwards by their
// log-sum-exp. Long sequences spread over many units instead of leaving most
// of the device idle; short ones stay whole.
//
// Build lays the batch's blocks end to end, sequence after sequence, and
// gives unit u the stretch that ends at ceil((u+1)*total/units), as
// FlashMLA's scheduler metadata does: every unit gets the ideal share, and a
// unit's stretch may hold the tail of one sequence, several short ones and
// the head of another. A cut that would leave a piece shorter than
// minChunkBlocks on either side moves to the nearest allowed place, so:
//
//   - a sequence is never split into a piece shorter than minChunkBlocks,
//     so one shorter than twice that is never split at all;
//   - every unit boundary is less than minChunkBlocks away from its ideal
//     place, so the busiest unit carries at most
//     ceil(Ideal()) + 2*(minChunkBlocks-1) blocks, and exactly the ideal
//     share, rounded up, when minChunkBlocks is 1;
//   - there are at most len(blocksPerSeq) + units - 1 items.
//
// Items are ordered by sequence, and by position within a sequence, so the
// merge map is a prefix sum: the partials of sequence s are items
// Merge[s]..Merge[s+1]-1, in block order. A sequence of zero blocks has no
// items. Items of one unit are consecutive in Items, too.
//
// The zero value is ready to use. Build reuses the plan's slices, so a plan
// rebuilt every step allocates nothing once its buffers have grown; Build is
// O(sequences + units). Slices are owned by the plan and overwritten by the
// next Build. A SplitPlan is not safe for concurrent use.
type SplitPlan struct {
	// Items are the work items, ordered by sequence and block.
	Items []SplitItem
	// Merge has one entry per sequence plus one: the partial results of
	// sequence s are Items[Merge[s]:Merge[s+1]].
	Merge []int32
	// Units is the number of compute units planned for.
	Units int
	// MinChunkBlocks is the shortest piece of a split sequence.
	MinChunkBlocks int
	// TotalBlocks is the sum of the sequences' blocks.
	TotalBlocks int64
	// MaxItemBlocks is the size of the largest item.
	MaxItemBlocks int
	// MaxUnitBlocks is the load of the busiest unit, in blocks: the time
	// the batch takes, where Ideal() is the time a perfect split would.
	MaxUnitBlocks int64
}

// maxSplitUnits bounds Build's units argument: far above any device.
const maxSplitUnits = 1 << 20

// Build plans the batch whose sequence s holds blocksPerSeq[s] blocks, for
// the given number of compute units, never splitting a sequence into a
// piece shorter than minChunkBlocks. It returns an error wrapping ErrInvalid
// for a negative block count, units outside [1, 2^20] or minChunkBlocks
// below 1, and leaves the plan unchanged then.
func (p *SplitPlan) Build(blocksPerSeq []int32, units, minChunkBlocks int) error {
	return p.BuildFrom(nil, blocksPerSeq, units, minChunkBlocks)
}

// BuildFrom is Build for sequences whose first blocks are not read: the
// items of sequence s cover blocks first[s]..blocksPerSeq[s]-1 of its
// table (the blocks a sliding window still reaches; BuildBatch passes
// Batch.FirstBlocks), and TotalBlocks and the units' shares count those
// only. A nil first starts every sequence at block 0, as Build does. A
// first of another length than blocksPerSeq, or an entry outside [0,
// blocksPerSeq[s]], is ErrInvalid, and leaves the plan unchanged.
func (p *SplitPlan) BuildFrom(first, blocksPerSeq []int32, units, minChunkBlocks int) error {
	if units < 1 || units > maxSplitUnits {
		return fmt.Errorf("%w: split plan: units %d must be in [1, %d]", ErrInvalid, units, maxSplitUnits)
	}
	if minChunkBlocks < 1 {
		return fmt.Errorf("%w: split plan: minChunkBlocks %d must be at least 1", ErrInvalid, minChunkBlocks)
	}
	if len(blocksPerSeq) > math.MaxInt32-1 {
		return fmt.Errorf("%w: split plan: %d sequences is too many", ErrInvalid, len(blocksPerSeq))
	}
	if first != nil && len(first) != len(blocksPerSeq) {
		return fmt.Errorf("%w: split plan: %d first blocks for %d sequences", ErrInvalid, len(first), len(blocksPerSeq))
	}
	var total int64
	for s, n := range blocksPerSeq {
		if n < 0 {
			return fmt.Errorf("%w: split plan: sequence %d has %d blocks", ErrInvalid, s, n)
		}
		f := firstOf(first, s)
		if f < 0 || f > n {
			return fmt.Errorf("%w: split plan: sequence %d of %d blocks starts at block %d", ErrInvalid, s, n, f)
		}
		total += int64(n - f)
	}
	p.Units, p.MinChunkBlocks, p.TotalBlocks = units, minChunkBlocks, total
	p.MaxItemBlocks, p.MaxUnitBlocks = 0, 0
	p.Items = p.Items[:0]
	p.Merge = append(p.Merge[:0], 0)

	m := int64(minChunkBlocks)
	u := 0
	stop := p.bound(u)  // global block where unit u should end
	var start int64     // global block of the current sequence's first block
	var unitStart int64 // global block where unit u began
	for s, n32 := range blocksPerSeq {
		// The sequence's blocks before f are not planned: unit bounds count
		// from f, and its items are shifted by f when emitted.
		f := int64(firstOf(first, s))
		n := int64(n32) - f
		for x := int64(0); x < n; {
			end := stop - start // unit u's ideal end, in this sequence's blocks
			if u == units-1 || end >= n {
				p.emit(s, f+x, f+n, u)
				x = n
				if end == n && u < units-1 {
					p.closeUnit(start+n, &unitStart)
					u++
					stop = p.bound(u)
				}
				continue
			}
			cut := nearestCut(x, end, n, m)
			if cut > x {
				p.emit(s, f+x, f+cut, u)
				x = cut
			}
			p.closeUnit(start+x, &unitStart)
			u++
			stop = p.bound(u)
		}
		start += n
		p.Merge = append(p.Merge, int32(len(p.Items)))
	}
	p.closeUnit(total, &unitStart)
	return nil
}

// firstOf returns first[s], or 0 for a nil first.
func firstOf(first []int32, s int) int32 {
	if first == nil {
		return 0
	}
	return first[s]
}

// nearestCut returns where to end a piece of a sequence of n blocks that
// starts at block x, closest to the ideal place end (x < end < n), among the
// places that leave no piece shorter than m: x itself (the unit takes
// nothing more), [x+m, n-m], or n.
func nearestCut(x, end, n, m int64) int64 {
	lo, hi := x+m, n-m
	if lo > hi { // no interior cut: all or nothing
		if end-x <= n-end {
			return x
		}
		return n
	}
	switch {
	case end < lo:
		if end-x < lo-end {
			return x
		}
		return lo
	case end > hi:
		if end-hi <= n-end {
			return hi
		}
		return n
	}
	return end
}

// bound returns ceil((u+1)*total/units), the global block where unit u
// should end, without overflow.
func (p *SplitPlan) bound(u int) int64 {
	hi, lo := bits.Mul64(uint64(u+1), uint64(p.TotalBlocks))
	q, r := bits.Div64(hi, lo, uint64(p.Units))
	if r != 0 {
		q++
	}
	return int64(q)
}

// emit appends the item [first, end) of sequence s on unit u.
func (p *SplitPlan) emit(s int, first, end int64, u int) {
	p.Items = append(p.Items, SplitItem{Seq: int32(s), First: int32(first), End: int32(end), Unit: int32(u)})
	p.MaxItemBlocks = max(p.MaxItemBlocks, int(end-first))
}

// closeUnit records the load of the unit that ends at global block at.
func (p *SplitPlan) closeUnit(at int64, unitStart *int64) {
	p.MaxUnitBlocks = max(p.MaxUnitBlocks, at-*unitStart)
	*unitStart = at
}

// Ideal returns the perfectly balanced share of one unit, TotalBlocks/Units.
func (p *SplitPlan) Ideal() float64 {
	if p.Units == 0 {
		return 0
	}
	return float64(p.TotalBlocks) / float64(p.Units)
}

// Partials returns the work items whose results merge into sequence s's
// output, in block order. The slice aliases Items. A sequence outside the
// plan (s negative or not below the number of sequences, any s of the zero
// plan) has none: nil.
func (p *SplitPlan) Partials(s int) []SplitItem {
	if s < 0 || s >= len(p.Merge)-1 {
		return nil
	}
	lo, hi := p.Merge[s], p.Merge[s+1]
	if lo < 0 || hi < lo || int(hi) > len(p.Items) {
		return nil // a merge map the caller overwrote
	}
	return p.Items[lo:hi]
}

// Check verifies that the plan covers every block of every sequence in
// blocksPerSeq exactly once, in order, that the merge map matches the items,
// that every item is on a valid unit, each unit's items consecutive, and
// that the reported figures are right. It is meant for tests and costs
// O(items + sequences + units).
func (p *SplitPlan) Check(blocksPerSeq []int32) error {
	return p.CheckFrom(nil, blocksPerSeq)
}

// CheckFrom is Check for a plan made by BuildFrom with first: sequence s
// is covered from block first[s].
func (p *SplitPlan) CheckFrom(first, blocksPerSeq []int32) error {
	if first != nil && len(first) != len(blocksPerSeq) {
		return fmt.Errorf("paged: split plan: %d first blocks for %d sequences", len(first), len(blocksPerSeq))
	}
	if len(p.Merge) != len(blocksPerSeq)+1 || p.Merge[0] != 0 || int(p.Merge[len(blocksPerSeq)]) != len(p.Items) {
		return fmt.Errorf("paged: split plan: merge map of %d entries for %d sequences and %d items", len(p.Merge), len(blocksPerSeq), len(p.Items))
	}
	for s := range blocksPerSeq {
		if p.Merge[s+1] < p.Merge[s] {
			return fmt.Errorf("paged: split plan: merge map decreases at sequence %d", s)
		}
	}
	if p.Units < 1 || p.Units > maxSplitUnits {
		return fmt.Errorf("paged: split plan: %d units", p.Units)
	}
	load := make([]int64, p.Units)
	var total int64
	maxItem := 0
	for s, n := range blocksPerSeq {
		f := firstOf(first, s)
		if f < 0 || f > n {
			return fmt.Errorf("paged: split plan: sequence %d of %d blocks starts at block %d", s, n, f)
		}
		next := f
		for i := p.Merge[s]; i < p.Merge[s+1]; i++ {
			it := p.Items[i]
			if it.Seq != int32(s) || it.First != next || it.End <= it.First {
				return fmt.Errorf("paged: split plan: item %d %+v breaks the cover of sequence %d at block %d", i, it, s, next)
			}
			if it.Unit < 0 || int(it.Unit) >= p.Units || (i > 0 && it.Unit < p.Items[i-1].Unit) {
				return fmt.Errorf("paged: split plan: item %d on unit %d of %d, out of unit order", i, it.Unit, p.Units)
			}
			if p.Merge[s+1]-p.Merge[s] > 1 && it.Blocks() < p.MinChunkBlocks {
				return fmt.Errorf("paged: split plan: item %d of %d blocks is below the minimum chunk %d", i, it.Blocks(), p.MinChunkBlocks)
			}
			next = it.End
			load[it.Unit] += int64(it.Blocks())
			maxItem = max(maxItem, it.Blocks())
		}
		if next != n {
			return fmt.Errorf("paged: split plan: sequence %d covered to block %d of %d", s, next, n)
		}
		total += int64(n - f)
	}
	if total != p.TotalBlocks || maxItem != p.MaxItemBlocks || slices.Max(append(load, 0)) != p.MaxUnitBlocks {
		return fmt.Errorf("paged: split plan: figures total %d max item %d max unit %d, recomputed %d %d %d",
			p.TotalBlocks, p.MaxItemBlocks, p.MaxUnitBlocks, total, maxItem, slices.Max(append(load, 0)))
	}
	return nil
}
