package attention_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// roundTrip returns what a store with codec c shows for a sequence's
// contiguous keys or values: per-token codecs round-trip every token, per
// channel codecs every full block's tile, leaving the partial last block as
// written.
func roundTrip(c attention.Codec, x []float32, n int, sh attention.Shape) []float32 {
	out := append([]float32(nil), x...)
	if c == nil {
		return out
	}
	d, kv := sh.HeadDim, sh.KVHeads*sh.HeadDim
	rows := 1
	if !c.PerToken() {
		rows = sh.BlockSize
	}
	tile := make([]float32, rows*d)
	codes := make([]uint8, rows*d)
	params := make([]float32, c.Params(rows, d))
	for t0 := 0; t0+rows <= n; t0 += rows {
		for h := range sh.KVHeads {
			for r := range rows {
				copy(tile[r*d:(r+1)*d], x[(t0+r)*kv+h*d:])
			}
			c.Encode(codes, params, tile, rows, d)
			c.Decode(tile, codes, params, rows, d)
			for r := range rows {
				copy(out[(t0+r)*kv+h*d:(t0+r)*kv+(h+1)*d], tile[r*d:(r+1)*d])
			}
		}
	}
	return out
}

// TestQuantizedStore: the attention dequantizes exactly what the codec
// encoded, block by block through the tables, including the residual of a
// partial block under per-channel key quantization and copy-on-write of a
// quantized block.
func TestQuantizedStore(t *testing.T) {
	sh := attention.Shape{BlockSize: 8, KVHeads: 2, QueryHeads: 4, HeadDim: 32}
	for _, pair := range [][2]string{{"int4-ch", "int4-g32"}, {"q8_0", "q4_0"}, {"fp8_e4m3", "int2-g32"}, {"int2-ch", "nvfp4"}} {
		kc, err := attention.ParseCodec(pair[0])
		require.NoError(t, err)
		vc, err := attention.ParseCodec(pair[1])
		require.NoError(t, err)
		m, err := paged.New(paged.Config{BlockSize: sh.BlockSize, NumBlocks: 32})
		require.NoError(t, err)
		store, err := attention.NewStore(sh, 32, kc, vc)
		require.NoError(t, err)
		r := rand.New(rand.NewPCG(1, 1))
		prompt := make([]int32, 21)
		for i := range prompt {
			prompt[i] = int32(r.IntN(100))
		}
		w := &world{t: t, r: r, m: m, store: store, tokens: map[paged.SeqID][]int32{}}
		id, cached, err := m.Create(prompt, nil)
		require.NoError(t, err)
		w.tokens[id], w.ids = prompt, []paged.SeqID{id}
		w.write(id, cached)
		// A fork that appends copies the shared, partial last block.
		child, err := m.Fork(id)
		require.NoError(t, err)
		w.tokens[child], w.ids = append([]int32(nil), prompt...), append(w.ids, child)
		for range 5 {
			for _, s := range w.ids {
				tok := int32(r.IntN(100))
				require.NoError(t, m.Append(s, tok))
				w.tokens[s] = append(w.tokens[s], tok)
				w.flushCopies()
				w.write(s, len(w.tokens[s])-1)
			}
		}
		require.Positive(t, m.Stats().Copies)

		var b paged.Batch
		require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}, {ID: child, NewTokens: 1}}))
		width := sh.QueryHeads * sh.HeadDim
		q := make([]float32, 2*width)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		want := make([]float32, len(q))
		for i, s := range w.ids {
			n := len(w.tokens[s])
			k, v := denseKV(w.tokens[s], sh)
			require.NoError(t, attention.Dense(want[i*width:(i+1)*width], q[i*width:(i+1)*width],
				roundTrip(kc, k, n, sh), roundTrip(vc, v, n, sh), n, sh))
		}
		got := make([]float32, len(q))
		var plan paged.SplitPlan
		require.NoError(t, plan.Build(attention.BlocksPerSeq(nil, &b, sh.BlockSize), 3, 1))
		require.NoError(t, attention.New(store).Decode(got, q, &b, &plan))
		requireClose(t, want, got, 1e-5)
	}
}

func TestStoreInvalid(t *testing.T) {
	_, err := attention.NewStore(attention.Shape{BlockSize: 4, KVHeads: 2, QueryHeads: 3, HeadDim: 8}, 4, nil, nil)
	assert.True(t, errors.Is(err, attention.ErrInvalid))
	store, err := attention.NewStore(testShape, 4, nil, nil)
	require.NoError(t, err)
	kv := make([]float32, testShape.KVHeads*testShape.HeadDim)
	assert.True(t, errors.Is(store.Write(16, kv, kv), attention.ErrInvalid))
	assert.True(t, errors.Is(store.Write(0, kv[1:], kv), attention.ErrInvalid))
	assert.True(t, errors.Is(store.Copy([]paged.Copy{{Src: 1, Dst: 4}}), attention.ErrInvalid))

	b := paged.Batch{Stride: 2, Tables: []int32{1, 9}, SeqLens: []int32{8}}
	width := testShape.QueryHeads * testShape.HeadDim
	q, out := make([]float32, width), make([]float32, width)
	assert.True(t, errors.Is(attention.New(store).Decode(out, q, &b, nil), attention.ErrInvalid), "block outside the store")
	b.Tables[1] = 2
	require.NoError(t, attention.New(store).Decode(out, q, &b, nil))
	var plan paged.SplitPlan
	require.NoError(t, plan.Build([]int32{3}, 2, 1))
	assert.True(t, errors.Is(attention.New(store).Decode(out, q, &b, &plan), attention.ErrInvalid), "plan wider than the batch")
}

// TestDecodeRefusesBadPlans: a plan that does not tile the batch is refused,
// never half-computed or a panic.
func TestDecodeRefusesBadPlans(t *testing.T) {
	store, err := attention.NewStore(testShape, 8, nil, nil)
	require.NoError(t, err)
	b := paged.Batch{Stride: 3, Tables: []int32{1, 2, 3, 4, 5, 0}, SeqLens: []int32{12, 5}}
	width := testShape.QueryHeads * testShape.HeadDim
	q, out := make([]float32, 2*width), make([]float32, 2*width)
	att := attention.New(store)
	var good paged.SplitPlan
	require.NoError(t, good.Build(attention.BlocksPerSeq(nil, &b, testShape.BlockSize), 3, 1))
	require.NoError(t, att.Decode(out, q, &b, &good))
	for name, mutate := range map[string]func(p *paged.SplitPlan){
		"gap":          func(p *paged.SplitPlan) { p.Items[1].First++ },
		"short":        func(p *paged.SplitPlan) { p.Items[len(p.Items)-1].End-- },
		"merge order":  func(p *paged.SplitPlan) { p.Merge[1] = p.Merge[2] + 1 },
		"wrong seq":    func(p *paged.SplitPlan) { p.Items[0].Seq = 1 },
		"merge length": func(p *paged.SplitPlan) { p.Merge = p.Merge[:2] },
	} {
		p := paged.SplitPlan{Items: slices.Clone(good.Items), Merge: slices.Clone(good.Merge)}
		mutate(&p)
		assert.True(t, errors.Is(att.Decode(out, q, &b, &p), attention.ErrInvalid), name)
	}
}
