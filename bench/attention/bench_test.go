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
	require.NoError(tb, plan.Build(b.BlocksPerSeq, 8, 4))
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

// BenchmarkCodec: encoding and decoding one block tile (16 tokens of 128
// channels, or 32 for the per-channel codecs) of normal values with an
// outlier channel, the work the quant study does per token and read.
func BenchmarkCodec(b *testing.B) {
	for _, name := range []string{"fp16", "bf16", "fp8_e4m3", "int8", "int4-g32", "int2-g128", "int4-ch", "q8_0", "q4_0", "nvfp4"} {
		c, err := attention.ParseCodec(name)
		require.NoError(b, err)
		rows, dim := 16, 128
		if !c.PerToken() {
			rows = 32
		}
		r := rand.New(rand.NewPCG(1, 2))
		src := make([]float32, rows*dim)
		for i := range src {
			src[i] = float32(r.NormFloat64())
			if i%dim == 5 {
				src[i] += 12
			}
		}
		codes, params, dst := make([]uint8, rows*dim), make([]float32, c.Params(rows, dim)), make([]float32, rows*dim)
		b.Run(name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Encode(codes, params, src, rows, dim)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows*dim), "ns/value")
		})
		b.Run(name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Decode(dst, codes, params, rows, dim)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows*dim), "ns/value")
		})
	}
}
