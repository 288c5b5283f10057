package attention_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// decodeSetup fills a store with seqs sequences of n tokens through a
// manager and returns the attention, its batch, a split plan and queries.
func decodeSetup(tb testing.TB, sh attention.Shape, seqs, n int, codec string) (*attention.Attention, *paged.Batch, *paged.SplitPlan, []float32) {
	c, err := attention.ParseCodec(codec)
	require.NoError(tb, err)
	blocks := seqs*((n+sh.BlockSize-1)/sh.BlockSize) + 1
	m, err := paged.New(paged.Config{BlockSize: sh.BlockSize, NumBlocks: blocks, DisablePrefixCaching: true})
	require.NoError(tb, err)
	store, err := attention.NewStore(sh, blocks, c, c)
	require.NoError(tb, err)
	r := rand.New(rand.NewPCG(1, 2))
	kv := make([]float32, sh.KVHeads*sh.HeadDim)
	sched := make([]paged.Scheduled, seqs)
	for s := range seqs {
		id, _, err := m.Create(make([]int32, n), nil)
		require.NoError(tb, err)
		sched[s] = paged.Scheduled{ID: id, NewTokens: 1}
		for p := range n {
			for i := range kv {
				kv[i] = float32(r.NormFloat64())
			}
			slot, err := m.Slot(id, p)
			require.NoError(tb, err)
			require.NoError(tb, store.Write(slot, kv, kv))
		}
	}
	var b paged.Batch
	require.NoError(tb, m.BuildBatch(&b, sched))
	var plan paged.SplitPlan
	require.NoError(tb, plan.Build(attention.BlocksPerSeq(nil, &b, sh.BlockSize), 8, 4))
	q := make([]float32, seqs*sh.QueryHeads*sh.HeadDim)
	for i := range q {
		q[i] = float32(r.NormFloat64())
	}
	return attention.New(store), &b, &plan, q
}

func TestDecodeAllocs(t *testing.T) {
	att, b, plan, q := decodeSetup(t, testShape, 3, 50, "int4-ch")
	out := make([]float32, len(q))
	require.NoError(t, att.Decode(out, q, b, plan))
	require.NoError(t, att.Decode(out, q, b, nil))
	var err1, err2 error
	allocs := testing.AllocsPerRun(20, func() {
		err1 = att.Decode(out, q, b, plan)
		err2 = att.Decode(out, q, b, nil)
	})
	require.NoError(t, err1)
	require.NoError(t, err2)
	require.Zero(t, allocs)
}

// BenchmarkDecode: one decode step of 4 sequences of 1K tokens, a
// Llama-3.1-8B layer (32 query heads, 8 KV heads of 128), split over 8
// units. The reference is for checking, not speed; this shows its cost.
func BenchmarkDecode(b *testing.B) {
	sh := attention.Shape{BlockSize: 16, KVHeads: 8, QueryHeads: 32, HeadDim: 128}
	for _, codec := range []string{"fp32", "fp8_e4m3", "q8_0", "int4-ch"} {
		b.Run(codec, func(b *testing.B) {
			att, batch, plan, q := decodeSetup(b, sh, 4, 1024, codec)
			out := make([]float32, len(q))
			require.NoError(b, att.Decode(out, q, batch, plan)) // grow the scratch
			b.ReportAllocs()
			for b.Loop() {
				_ = att.Decode(out, q, batch, plan)
			}
			b.ReportMetric(float64(4*1024*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
