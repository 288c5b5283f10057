package paged

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit109OverwrittenBlockIsForgotten: a sequence cut back into a
// committed block keeps that block, own and still cached; the next Append
// writes over its content, which leaves the index (blockPool.forget) and
// must leave a policy that keeps history (eviction.Forgetter: LFU's
// counts, ARC's ghosts) too, or that history carries over to whatever the
// block holds next. (Mutation M2692.)
func TestAudit109OverwrittenBlockIsForgotten(t *testing.T) {
	var rec *a58Forgets
	m, err := New(Config{BlockSize: 4, NumBlocks: 16,
		Policy: func(capacity int) eviction.Policy {
			rec = &a58Forgets{Policy: eviction.NewLRU(capacity)}
			return rec
		}})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
	require.NoError(t, err)
	tbl, err := m.Table(id)
	require.NoError(t, err)
	last := tbl[1] // tokens 5-8, committed
	require.NoError(t, m.Truncate(id, 6))
	require.True(t, m.bp.hasContent(last), "the cut dropped the block's content: the test checks nothing")
	require.NotContains(t, rec.forgot, last)
	require.NoError(t, m.Append(id, 70))
	require.False(t, m.bp.hasContent(last))
	require.Contains(t, rec.forgot, last, "the overwritten block's content was not forgotten by the policy")
}

// TestAudit109RunTakesTheLowShelfFirst: an admission's blocks, taken a
// run at a time (blockPool.allocRun, the default LRU without events or a
// host tier), evict the low shelf's blocks (window blocks no hit needs)
// before any of the policy's, as one block taken alone does (alloc): a
// freed sequence's full-attention prefix, in the LRU, stays cached while
// the low shelf has blocks to give. (Mutation M2688.)
func TestAudit109RunTakesTheLowShelfFirst(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 20,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2}}})
	require.NoError(t, err)
	prompt := make([]int32, 16)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	full, err := m.Table(a)
	require.NoError(t, err)
	full = slices.Clone(full)
	require.NoError(t, m.Free(a))
	low, free := m.bp.shelves.n[shelfLow], m.bp.pool.Free()
	require.Positive(t, low, "nothing on the low shelf: the test checks nothing")
	// A prompt whose full-attention table alone needs one block more than
	// the free ones: its first eviction comes in that group's run.
	other := make([]int32, 2*(free+1)-1)
	for i := range other {
		other[i] = int32(100 + i)
	}
	_, _, err = m.Create(other, nil)
	require.NoError(t, err)
	require.Positive(t, m.Stats().Evictions, "nothing evicted: the test checks nothing")
	require.LessOrEqual(t, m.Stats().Evictions, uint64(low), "more evicted than the low shelf held: the test checks nothing")
	for k, b := range full {
		require.True(t, m.bp.hasContent(b), "block %d of the freed prompt's full-attention table (in the LRU) was evicted while the low shelf had blocks", k)
	}
}
