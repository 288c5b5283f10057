package attention_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// audit112Store returns a float32 store of shape sh and numBlocks blocks
// holding the keys and values of n tokens (token after token) written
// through table.
func audit112Store(t *testing.T, sh attention.Shape, numBlocks int, k, v []float32, n int, table []int32) *attention.Store {
	t.Helper()
	return storeWith(t, sh, numBlocks, nil, k, v, n, table)
}

// storeWith returns a store of shape sh and numBlocks blocks, with key
// codec kc and float32 values, holding the keys and values of n tokens
// (token after token) written through table.
func storeWith(t *testing.T, sh attention.Shape, numBlocks int, kc attention.Codec, k, v []float32, n int, table []int32) *attention.Store {
	t.Helper()
	store, err := attention.NewStore(sh, numBlocks, kc, nil)
	require.NoError(t, err)
	kv := sh.KVHeads * sh.HeadDim
	for p := range n {
		slot := int64(table[p/sh.BlockSize])*int64(sh.BlockSize) + int64(p%sh.BlockSize)
		require.NoError(t, store.Write(slot, k[p*kv:(p+1)*kv], v[p*kv:(p+1)*kv]))
	}
	return store
}

// TestAudit112GroupsOfFourAndMore: with four and five query heads per KV
// head, the paths that take four heads through each key and value row
// together give every head its own logits and weights: paged attention,
// whole and split, equals the dense reference, which takes one head at a
// time.
func TestAudit112GroupsOfFourAndMore(t *testing.T) {
	tokens := []int32{3, 1, 4, 1, 5, 9, 2}
	table := []int32{3, 1}
	r := rand.New(rand.NewPCG(112, 1))
	for _, qh := range []int{8, 10} {
		sh := attention.Shape{BlockSize: 4, KVHeads: 2, QueryHeads: qh, HeadDim: 8}
		k, v := denseKV(tokens, sh)
		store := audit112Store(t, sh, 4, k, v, len(tokens), table)
		width := sh.QueryHeads * sh.HeadDim
		q := make([]float32, width)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		want := make([]float32, width)
		require.NoError(t, attention.Dense(want, q, k, v, len(tokens), sh))
		b := paged.Batch{Stride: 2, Tables: table, SeqLens: []int32{7}, BlocksPerSeq: []int32{2}}
		split := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}, {Seq: 0, First: 1, End: 2}}, Merge: []int32{0, 2}}
		for _, plan := range []*paged.SplitPlan{nil, &split} {
			got := make([]float32, width)
			require.NoError(t, attention.New(store).Decode(got, q, &b, plan))
			requireClose(t, want, got, 1e-5)
		}
	}
}

// TestAudit112DenseExtremeLogits: Dense subtracts the largest logit, not
// the last, so logits 2000 apart give the larger one all the weight
// instead of an overflow; and a sequence of no tokens attends to nothing:
// its output is zero, not 0/0.
func TestAudit112DenseExtremeLogits(t *testing.T) {
	sh := attention.Shape{BlockSize: 1, KVHeads: 1, QueryHeads: 1, HeadDim: 1}
	out := []float32{7}
	require.NoError(t, attention.Dense(out, []float32{1}, []float32{1000, -1000}, []float32{3, 5}, 2, sh))
	assert.Equal(t, []float32{3}, out)
	require.NoError(t, attention.Dense(out, []float32{1}, []float32{-1000, 1000}, []float32{3, 5}, 2, sh))
	assert.Equal(t, []float32{5}, out)
	out[0] = 7
	require.NoError(t, attention.Dense(out, []float32{1}, nil, nil, 0, sh))
	assert.Equal(t, []float32{0}, out)
}

// TestAudit112EmptySequenceClearsItsOutput: in a batch not made by
// BuildBatch, a sequence of no tokens has no work item, and Decode
// writes zeros over whatever its output held; the other sequence's output
// is the dense one.
func TestAudit112EmptySequenceClearsItsOutput(t *testing.T) {
	tokens := []int32{2, 7, 1, 8, 2}
	k, v := denseKV(tokens, testShape)
	store := audit112Store(t, testShape, 4, k, v, len(tokens), []int32{2, 0})
	width := testShape.QueryHeads * testShape.HeadDim
	r := rand.New(rand.NewPCG(112, 2))
	q := make([]float32, 2*width)
	for i := range q {
		q[i] = float32(r.NormFloat64())
	}
	want := make([]float32, 2*width)
	require.NoError(t, attention.Dense(want[width:], q[width:], k, v, len(tokens), testShape))
	got := make([]float32, 2*width)
	for i := range got {
		got[i] = 7
	}
	b := paged.Batch{Stride: 2, Tables: []int32{1, 1, 2, 0}, SeqLens: []int32{0, 5}}
	require.NoError(t, attention.New(store).Decode(got, q, &b, nil))
	requireClose(t, want, got, 1e-5)
}

// TestAudit112BuffersGrowByOne: with one query head, a plan of one item
// more than the last one grows the partial buffers by one value, and the
// split result still equals the dense one.
func TestAudit112BuffersGrowByOne(t *testing.T) {
	sh := attention.Shape{BlockSize: 1, KVHeads: 1, QueryHeads: 1, HeadDim: 1}
	k := []float32{0.5, -1, 2}
	v := []float32{1, 2, 3}
	store := audit112Store(t, sh, 4, k, v, 3, []int32{2, 0, 3})
	att := attention.New(store)
	q := []float32{0.75}
	want := make([]float32, 1)
	require.NoError(t, attention.Dense(want, q, k, v, 3, sh))
	b := paged.Batch{Stride: 3, Tables: []int32{2, 0, 3}, SeqLens: []int32{3}, BlocksPerSeq: []int32{3}}
	for items := 1; items <= 3; items++ {
		var plan paged.SplitPlan
		require.NoError(t, plan.Build(b.BlocksPerSeq, items, 1))
		require.Len(t, plan.Items, items)
		got := make([]float32, 1)
		require.NoError(t, att.Decode(got, q, &b, &plan))
		requireClose(t, want, got, 1e-6)
	}
}

// TestAudit112Refusals: Decode refuses, never panics on, a table naming
// the block just past the store, a sequence needing one block more than
// the table stride, a merge map that does not start at item 0 (here
// with a stray first item of a sequence the batch does not have), a plan
// leaving a sequence's last block out and one with a gap inside (each
// item of one block or more, so the test of empty items cannot refuse
// them first);
// NewStore a block size of 0 and a store of no blocks; Write values of
// the wrong length.
func TestAudit112Refusals(t *testing.T) {
	k, v := denseKV([]int32{1, 2, 3, 4, 5, 6}, testShape)
	store := audit112Store(t, testShape, 4, k, v, 6, []int32{2, 0})
	width := testShape.QueryHeads * testShape.HeadDim
	q, out := make([]float32, width), make([]float32, width)
	att := attention.New(store)
	past := paged.Batch{Stride: 2, Tables: []int32{2, 4}, SeqLens: []int32{6}, BlocksPerSeq: []int32{2}}
	assert.True(t, errors.Is(att.Decode(out, q, &past, nil), attention.ErrInvalid), "the block past the store")
	wide := paged.Batch{Stride: 2, Tables: []int32{2, 0}, SeqLens: []int32{9}}
	assert.True(t, errors.Is(att.Decode(out, q, &wide, nil), attention.ErrInvalid), "three blocks in a stride of two")
	b := paged.Batch{Stride: 2, Tables: []int32{2, 0}, SeqLens: []int32{6}, BlocksPerSeq: []int32{2}}
	stray := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 1, First: 0, End: 1}, {Seq: 0, First: 0, End: 2}}, Merge: []int32{1, 2}}
	assert.True(t, errors.Is(att.Decode(out, q, &b, &stray), attention.ErrInvalid), "a merge map from item 1")
	short := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}}, Merge: []int32{0, 1}}
	assert.True(t, errors.Is(att.Decode(out, q, &b, &short), attention.ErrInvalid), "block 1 left out")
	three := paged.Batch{Stride: 3, Tables: []int32{2, 0, 1}, SeqLens: []int32{10}, BlocksPerSeq: []int32{3}}
	gap := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}, {Seq: 0, First: 2, End: 3}}, Merge: []int32{0, 2}}
	assert.True(t, errors.Is(att.Decode(out, q, &three, &gap), attention.ErrInvalid), "a gap at block 1")

	_, err := attention.NewStore(attention.Shape{BlockSize: 0, KVHeads: 2, QueryHeads: 6, HeadDim: 8}, 4, nil, nil)
	assert.True(t, errors.Is(err, attention.ErrInvalid), "a block size of 0")
	_, err = attention.NewStore(testShape, 0, nil, nil)
	assert.True(t, errors.Is(err, attention.ErrInvalid), "no blocks")
	kv := make([]float32, testShape.KVHeads*testShape.HeadDim)
	assert.True(t, errors.Is(store.Write(0, kv, kv[1:]), attention.ErrInvalid), "values one short")
	assert.True(t, errors.Is(store.Write(0, kv, append(kv, 0)), attention.ErrInvalid), "values one long")
}
