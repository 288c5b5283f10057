package attention_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// audit91Codec parses name and encodes and decodes src, a rows x dim tile,
// returning the parameters and the decoded values.
func audit91Codec(t *testing.T, name string, src []float32, rows, dim int) (params, got []float32) {
	t.Helper()
	c, err := attention.ParseCodec(name)
	require.NoError(t, err)
	codes := make([]uint8, rows*dim)
	params, got = make([]float32, c.Params(rows, dim)), make([]float32, rows*dim)
	c.Encode(codes, params, src, rows, dim)
	c.Decode(got, codes, params, rows, dim)
	return params, got
}

// minifloatValues returns the finite magnitudes of a binary format with
// ebits exponent bits, mbits mantissa bits and the given bias, by code
// (code c = exponent<<mbits | mantissa), up to largest: the definition of
// OCP FP8 (E4M3 "fn": largest 448; E5M2: largest 57344) and of E2M1.
func minifloatValues(ebits, mbits, bias int, largest float64) []float64 {
	var vals []float64
	for c := range 1 << (ebits + mbits) {
		e, m := c>>mbits, c&(1<<mbits-1)
		v := math.Ldexp(float64(m), 1-bias-mbits) // subnormal
		if e > 0 {
			v = math.Ldexp(1+math.Ldexp(float64(m), -mbits), e-bias)
		}
		if v > largest {
			break
		}
		vals = append(vals, v)
	}
	return vals
}

// nearestValue rounds x to the nearest of vals (magnitudes by code), ties
// to the even code, keeping x's sign; beyond the largest it saturates.
func nearestValue(vals []float64, x float64) float64 {
	a, best := math.Abs(x), 0
	for i, v := range vals {
		if d, bd := math.Abs(v-a), math.Abs(vals[best]-a); d < bd || (d == bd && i%2 == 0) {
			best = i
		}
	}
	return math.Copysign(vals[best], x)
}

var (
	audit91E4M3 = minifloatValues(4, 3, 7, 448)
	audit91E5M2 = minifloatValues(5, 2, 15, 57344)
	audit91E2M1 = minifloatValues(2, 1, 1, 6)
)

// TestAudit91ParseCodecGroupLimit: the largest group ParseCodec takes is
// 65536 channels.
func TestAudit91ParseCodecGroupLimit(t *testing.T) {
	c, err := attention.ParseCodec("int4-g65536")
	require.NoError(t, err)
	assert.Equal(t, "int4-g65536", attention.CodecName(c))
	_, err = attention.ParseCodec("int4-g65537")
	assert.True(t, errors.Is(err, attention.ErrCodec))
}

// TestAudit91FP8MatchesOCP: the FP8 codecs decode every value, negative
// ones included, to its nearest OCP FP8 value (ties to even, saturating),
// computed here from the formats' definitions.
func TestAudit91FP8MatchesOCP(t *testing.T) {
	src := []float32{1.0625, 1.1875, 0.1, 300, 1000, 0.003, 70000, 1e-6, 3.3, 0}
	for _, x := range src[:len(src)-1] {
		src = append(src, -x)
	}
	r := rand.New(rand.NewPCG(91, 1))
	for range 64 {
		src = append(src, float32(r.NormFloat64()*math.Exp(3*r.NormFloat64())))
	}
	for name, vals := range map[string][]float64{"fp8_e4m3": audit91E4M3, "fp8_e5m2": audit91E5M2} {
		_, got := audit91Codec(t, name, src, 1, len(src))
		for i, x := range src {
			require.Equal(t, float32(nearestValue(vals, float64(x))), got[i], "%s: %v", name, x)
		}
	}
}

// TestAudit91Q80MatchesGGML: q8_0 as ggml's quantize_row_q8_0_ref defines
// it: d = amax/127 per 32 values (here a partial block of 8 too), codes
// roundf(x/d), halves rounded away from zero.
func TestAudit91Q80MatchesGGML(t *testing.T) {
	const dim = 40
	src := make([]float32, dim)
	for i := range 32 {
		src[i] = float32(i%9) - 3.5 // halves: ties
	}
	src[5], src[6], src[7] = 127, 2.5, -0.5
	copy(src[32:], []float32{0.25, 0.75, -0.25, -63.5, 1.25, 3, -2.75, 0})
	params, got := audit91Codec(t, "q8_0", src, 1, dim)
	require.Equal(t, []float32{1, 0.5}, params) // 127/127 and 63.5/127, exact in FP16
	for i, x := range src {
		d := params[i/32]
		want := float32(math.Round(float64(x*(1/d)))) * d
		require.Equal(t, want, got[i], "value %d: %v", i, x)
	}
	assert.Equal(t, []float32{3, -1}, []float32{got[6], got[7]}) // 2.5 and -0.5 away from zero
	assert.Equal(t, []float32{0.5, 1, -0.5}, got[32:35])
}

// TestAudit91Q40MatchesGGML: q4_0 as ggml's quantize_row_q4_0_ref defines
// it: per 32 values, m the first value of the greatest magnitude, d = m/-8,
// codes min(15, (int8)(x/d + 8.5)), x ≈ (q-8)*d; the partial block of 8
// too.
func TestAudit91Q40MatchesGGML(t *testing.T) {
	const dim = 40
	src := make([]float32, dim)
	for i := range 32 {
		src[i] = float32(i)*0.45 - 7
	}
	src[3], src[20] = -8, 8 // the first extreme is negative: d = 1
	copy(src[32:], []float32{4, -4, 1, -1.2, 0.3, 3.9, -3.75, 0})
	params, got := audit91Codec(t, "q4_0", src, 1, dim)
	require.Equal(t, []float32{1, -0.5}, params)
	for i, x := range src {
		d := params[i/32]
		q := min(15, int8(x*(1/d)+8.5))
		require.Equal(t, float32(int(q)-8)*d, got[i], "value %d: %v", i, x)
	}
	// The extreme is exact, its opposite clipped a step short.
	assert.Equal(t, []float32{-8, 7}, []float32{got[3], got[20]})
	assert.Equal(t, []float32{4, -3.5}, got[32:34])
}

// TestAudit91NVFP4PartialBlock: a token of 40 values has three NVFP4
// blocks, the last of 8, each with its E4M3 scale amax/6 and E2M1 values,
// computed here from the formats' definitions.
func TestAudit91NVFP4PartialBlock(t *testing.T) {
	const dim = 40
	r := rand.New(rand.NewPCG(91, 2))
	src := make([]float32, dim)
	for i := range src {
		src[i] = float32(r.NormFloat64() * float64(1+i/16*3))
	}
	params, got := audit91Codec(t, "nvfp4", src, 1, dim)
	require.Len(t, params, 3)
	for b := range 3 {
		blk := src[b*16 : min(b*16+16, dim)]
		var amax float64
		for _, x := range blk {
			amax = max(amax, math.Abs(float64(x)))
		}
		s := float32(nearestValue(audit91E4M3, float64(float32(amax)/6)))
		require.Equal(t, s, params[b], "block %d", b)
		for k, x := range blk {
			want := float32(nearestValue(audit91E2M1, float64(x/s))) * s
			require.Equal(t, want, got[b*16+k], "block %d value %d", b, k)
		}
	}
}

// TestAudit91Int8Clamps: int8's codes stay within [-127, 127] where the
// FP16 scale is coarser than amax/127: saturated at 65504, or a subnormal
// rounded down.
func TestAudit91Int8Clamps(t *testing.T) {
	src := []float32{1e7, -1e7, 5e6, 0}
	params, got := audit91Codec(t, "int8", src, 1, len(src))
	require.Equal(t, []float32{65504}, params)
	assert.Equal(t, []float32{127 * 65504, -127 * 65504, 76 * 65504, 0}, got)

	tiny := float32(1.4 * 127 * 0x1p-24) // scale 1.4 * 2^-24 rounds to 2^-24
	params, got = audit91Codec(t, "int8", []float32{tiny, -tiny}, 1, 2)
	require.Equal(t, []float32{0x1p-24}, params)
	assert.Equal(t, []float32{127 * 0x1p-24, -127 * 0x1p-24}, got)
}

// TestAudit91HalfSaturatesInfinities: the 16-bit codecs saturate an
// infinity at their largest finite value, as they do every finite value
// beyond it.
func TestAudit91HalfSaturatesInfinities(t *testing.T) {
	inf := float32(math.Inf(1))
	src := []float32{inf, -inf, 1e6, 1}
	_, got := audit91Codec(t, "fp16", src, 1, len(src))
	assert.Equal(t, []float32{65504, -65504, 65504, 1}, got)
	_, got = audit91Codec(t, "bf16", src[:2], 1, 2)
	assert.Equal(t, []float32{0x1.fep127, -0x1.fep127}, got)
}

// TestAudit91Int8PerChannelManyRows: int8-ch over a tile of more tokens
// than code levels and channels enough that a table of every channel's
// levels would not fit: values on each channel's grid come back exactly.
func TestAudit91Int8PerChannelManyRows(t *testing.T) {
	const rows, dim = 300, 32
	src := make([]float32, rows*dim)
	for r := range rows {
		for ch := range dim {
			src[r*dim+ch] = float32(ch) + 0.25*float32((r*7+ch)%256)
		}
	}
	params, got := audit91Codec(t, "int8-ch", src, rows, dim)
	require.Equal(t, []float32{0.25, 0}, params[:2]) // scale 63.75/255, zero 0
	assert.Equal(t, src, got)
}

// audit91Store returns a store of testShape, with key codec kc and float32
// values, holding the keys and values of n tokens (token after token)
// written through table.
func audit91Store(t *testing.T, kc attention.Codec, k, v []float32, n int, table []int32) *attention.Store {
	t.Helper()
	return storeWith(t, testShape, 4, kc, k, v, n, table)
}

// TestAudit91ResidualOneTokenShort: under a per-channel key codec, a
// block one token short of full is read from its float32 residual, as a
// partial block is, and the full block before it through its encoding.
func TestAudit91ResidualOneTokenShort(t *testing.T) {
	kc, err := attention.ParseCodec("int4-ch")
	require.NoError(t, err)
	tokens := []int32{3, 1, 4, 1, 5, 9, 2}
	k, v := denseKV(tokens, testShape)
	store := audit91Store(t, kc, k, v, len(tokens), []int32{2, 0})
	width := testShape.QueryHeads * testShape.HeadDim
	q := make([]float32, width)
	r := rand.New(rand.NewPCG(91, 3))
	for i := range q {
		q[i] = float32(r.NormFloat64())
	}
	want, got := make([]float32, width), make([]float32, width)
	require.NoError(t, attention.Dense(want, q, roundTrip(kc, k, len(tokens), testShape), v, len(tokens), testShape))
	b := paged.Batch{Stride: 2, Tables: []int32{2, 0}, SeqLens: []int32{7}, BlocksPerSeq: []int32{2}}
	require.NoError(t, attention.New(store).Decode(got, q, &b, nil))
	requireClose(t, want, got, 1e-5)
}

// TestAudit91DecodeLargeLogits: logits far beyond exp's range (about
// ±709), all positive or all negative, merge by their log-sum-exps
// relative to the largest, so a split sequence's output stays finite and
// equal to the dense one.
func TestAudit91DecodeLargeLogits(t *testing.T) {
	tokens := []int32{2, 7, 1, 8, 2, 8, 1}
	k, v := denseKV(tokens, testShape)
	for i := range k {
		k[i] = float32(math.Abs(float64(k[i]))) + 1 // every key positive
	}
	store := audit91Store(t, nil, k, v, len(tokens), []int32{1, 3})
	width := testShape.QueryHeads * testShape.HeadDim
	r := rand.New(rand.NewPCG(91, 4))
	b := paged.Batch{Stride: 2, Tables: []int32{1, 3}, SeqLens: []int32{7}, BlocksPerSeq: []int32{2}}
	plan := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}, {Seq: 0, First: 1, End: 2}}, Merge: []int32{0, 2}}
	for _, sign := range []float64{1, -1} {
		q := make([]float32, width)
		for i := range q {
			q[i] = float32(sign * 2000 * (0.5 + math.Abs(r.NormFloat64())))
		}
		want, got := make([]float32, width), make([]float32, width)
		require.NoError(t, attention.Dense(want, q, k, v, len(tokens), testShape))
		require.NoError(t, attention.New(store).Decode(got, q, &b, &plan))
		requireClose(t, want, got, 1e-4)
	}
}

// TestAudit91DecodeRefusals: Decode refuses, never panics on or half
// computes, a plan with an item of no blocks and block tables shorter
// than the batch; Copy refuses a source block outside the store.
func TestAudit91DecodeRefusals(t *testing.T) {
	k, v := denseKV([]int32{1, 2, 3, 4, 5, 6}, testShape)
	store := audit91Store(t, nil, k, v, 6, []int32{2, 0})
	width := testShape.QueryHeads * testShape.HeadDim
	q, out := make([]float32, 2*width), make([]float32, 2*width)
	att := attention.New(store)
	b := paged.Batch{Stride: 2, Tables: []int32{2, 0}, SeqLens: []int32{6}, BlocksPerSeq: []int32{2}}
	empty := paged.SplitPlan{Items: []paged.SplitItem{{Seq: 0, First: 0, End: 1}, {Seq: 0, First: 1, End: 1}, {Seq: 0, First: 1, End: 2}}, Merge: []int32{0, 3}}
	assert.True(t, errors.Is(att.Decode(out[:width], q[:width], &b, &empty), attention.ErrInvalid), "an empty item")
	short := paged.Batch{Stride: 2, Tables: []int32{2, 0}, SeqLens: []int32{6, 3}}
	assert.True(t, errors.Is(att.Decode(out, q, &short, nil), attention.ErrInvalid), "tables for one of two sequences")
	assert.True(t, errors.Is(store.Copy([]paged.Copy{{Src: 4, Dst: 1}}), attention.ErrInvalid), "a source outside the store")
}
