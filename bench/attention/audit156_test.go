package attention_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// Tests that kill the bench/attention mutants of the hundred-and-eighth
// mutation round (docs/testing.md, "Mutation testing, hundred-and-eighth
// round").

// TestAudit156PlanForAnotherBatch: Decode refuses, with ErrInvalid and
// never a panic, plans that do not belong to the batch although every one
// of the batch's sequences is tiled: a merge map for two sequences over a
// batch of one (the second sequence of no blocks), an item past the merge
// map's end, and a merge map whose first sequence ends past the items. A
// well-formed plan over the same batch is accepted.
func TestAudit156PlanForAnotherBatch(t *testing.T) {
	k, v := denseKV([]int32{1, 2, 3, 4, 5, 6}, testShape)
	store := audit112Store(t, testShape, 4, k, v, 6, []int32{2, 0})
	width := testShape.QueryHeads * testShape.HeadDim
	q, out := make([]float32, 2*width), make([]float32, 2*width)
	att := attention.New(store)
	one := paged.Batch{Stride: 2, Tables: []int32{2, 0}, SeqLens: []int32{6}, BlocksPerSeq: []int32{2}}
	good := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}, {Seq: 0, First: 1, End: 2}}, Merge: []int32{0, 2}}
	require.NoError(t, att.Decode(out[:width], q[:width], &one, &good))
	// Two blocks for sequence 0 of an empty-block sequence 1, or one more item.
	twoSeqs := paged.SplitPlan{Items: good.Items, Merge: []int32{0, 2, 2}}
	extra := paged.SplitPlan{Items: append(append([]paged.SplitItem(nil), good.Items...), paged.SplitItem{Seq: 0, First: 0, End: 2}), Merge: []int32{0, 2}}
	for name, plan := range map[string]*paged.SplitPlan{"a merge map for two sequences": &twoSeqs, "an item past the merge map": &extra} {
		assert.NotPanics(t, func() {
			assert.True(t, errors.Is(att.Decode(out[:width], q[:width], &one, plan), attention.ErrInvalid), name)
		})
	}
	// Sequence 0 of one block, sequence 1 of no tokens; a merge map
	// giving sequence 0 items 0 and 1 of the one item, and sequence 1
	// none (its end back at 1, the item count).
	two := paged.Batch{Stride: 1, Tables: []int32{2, 0}, SeqLens: []int32{3, 0}, BlocksPerSeq: []int32{1, 0}}
	past := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}}, Merge: []int32{0, 2, 1}}
	assert.NotPanics(t, func() {
		assert.True(t, errors.Is(att.Decode(out, q, &two, &past), attention.ErrInvalid), "a merge map past the items")
	})
	fine := paged.SplitPlan{Items: past.Items, Merge: []int32{0, 1, 1}}
	require.NoError(t, att.Decode(out, q, &two, &fine))
}

// TestAudit156NegativeBlockRefused: a block table naming block -1 (or any
// negative block) is refused with ErrInvalid, never read; the refusal
// tests had named only the block one past the store.
func TestAudit156NegativeBlockRefused(t *testing.T) {
	k, v := denseKV([]int32{1, 2, 3, 4, 5, 6}, testShape)
	store := audit112Store(t, testShape, 4, k, v, 6, []int32{2, 0})
	width := testShape.QueryHeads * testShape.HeadDim
	q, out := make([]float32, width), make([]float32, width)
	att := attention.New(store)
	for _, id := range []int32{-1, -2, -1 << 30} {
		b := paged.Batch{Stride: 2, Tables: []int32{2, id}, SeqLens: []int32{6}, BlocksPerSeq: []int32{2}}
		assert.NotPanics(t, func() {
			assert.True(t, errors.Is(att.Decode(out, q, &b, nil), attention.ErrInvalid), "block %d", id)
		})
	}
}

// TestAudit156DenseRefusesShortVectors: Dense refuses, with ErrInvalid
// and never a panic, keys or values one token short and an output one
// value short or long; with them exact it computes.
func TestAudit156DenseRefusesShortVectors(t *testing.T) {
	tokens := []int32{3, 1, 4, 1, 5}
	n := len(tokens)
	k, v := denseKV(tokens, testShape)
	kv := testShape.KVHeads * testShape.HeadDim
	width := testShape.QueryHeads * testShape.HeadDim
	q := make([]float32, width)
	for i := range q {
		q[i] = float32(i%7) - 3
	}
	out := make([]float32, width+1)
	require.NoError(t, attention.Dense(out[:width], q, k, v, n, testShape))
	for name, c := range map[string]struct {
		out, k, v []float32
	}{
		"keys one token short":   {out[:width], k[:(n-1)*kv], v},
		"values one token short": {out[:width], k, v[:(n-1)*kv]},
		"output one short":       {out[:width-1], k, v},
		"output one long":        {out, k, v},
	} {
		assert.NotPanics(t, func() {
			assert.True(t, errors.Is(attention.Dense(c.out, q, c.k, c.v, n, testShape), attention.ErrInvalid), name)
		})
	}
}

// TestAudit156BlocksPerSeqOfAnotherBatch: a batch whose BlocksPerSeq does
// not have one entry per sequence (here one too many, all 0) is not
// trusted: Decode derives each sequence's block count from its length,
// so the output is the dense attention over all its tokens, not over
// none.
func TestAudit156BlocksPerSeqOfAnotherBatch(t *testing.T) {
	tokens := []int32{2, 7, 1, 8, 2, 8}
	k, v := denseKV(tokens, testShape)
	store := audit112Store(t, testShape, 4, k, v, len(tokens), []int32{3, 1})
	width := testShape.QueryHeads * testShape.HeadDim
	q := make([]float32, width)
	for i := range q {
		q[i] = float32(i%5) - 2
	}
	want, got := make([]float32, width), make([]float32, width)
	require.NoError(t, attention.Dense(want, q, k, v, len(tokens), testShape))
	b := paged.Batch{Stride: 2, Tables: []int32{3, 1}, SeqLens: []int32{6}, BlocksPerSeq: []int32{0, 0}}
	require.NoError(t, attention.New(store).Decode(got, q, &b, nil))
	requireClose(t, want, got, 1e-5)
}
