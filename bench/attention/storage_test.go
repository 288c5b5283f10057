package attention

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestCodecStorageMatchesLayout checks, for every codec, what it keeps
// against what it declares and the declaration against the KV layout
// spec's bytes: every code fits its declared width, every parameter is
// exactly representable in its declared format, and the declared bits of
// a tile equal the spec's bytes for the same values (per-channel codecs
// against the per-token groups of as many values, the same layout).
func TestCodecStorageMatchesLayout(t *testing.T) {
	const dim = 128
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		codec, layout string
		rows          int
	}{
		{"fp16", "fp16", 16}, {"bf16", "bf16", 16}, {"fp8_e4m3", "fp8_e4m3", 16}, {"fp8_e5m2", "fp8_e5m2", 16},
		{"int8", "int8", 16}, {"q8_0", "q8_0", 16}, {"q4_0", "q4_0", 16}, {"nvfp4", "nvfp4", 16},
		{"int4-g32", "int4-g32", 16}, {"int4-g64", "int4-g64", 16}, {"int4-g128", "int4-g128", 16},
		{"int2-g32", "int2-g32", 16}, {"int2-g128", "int2-g128", 16},
		{"int4-ch", "int4-g32", 32}, {"int4-ch", "int4-g64", 64}, {"int2-ch", "int2-g32", 32},
	} {
		c, err := ParseCodec(tc.codec)
		require.NoError(t, err)
		kt, err := kvmem.ParseType(tc.layout)
		require.NoError(t, err)
		rowBytes, err := kt.RowBytes(dim)
		require.NoError(t, err)
		assert.Equal(t, 8*rowBytes*int64(tc.rows), Bits(c, tc.rows, dim), "%s: declared bits vs layout %s", tc.codec, tc.layout)

		st := c.Storage()
		src := make([]float32, tc.rows*dim)
		for i := range src {
			src[i] = float32(r.NormFloat64() * math.Exp(2*r.NormFloat64()))
		}
		codes, params := make([]uint8, len(src)), make([]float32, c.Params(tc.rows, dim))
		c.Encode(codes, params, src, tc.rows, dim)
		if st.CodeBits < 8 {
			for i, q := range codes {
				require.Less(t, int(q), 1<<st.CodeBits, "%s: code %d", tc.codec, i)
			}
		}
		if st.CodeBits == 0 {
			require.Equal(t, tc.rows*dim, len(params), "%s keeps its values in the parameters", tc.codec)
		}
		round := map[string]func(float32) float32{"fp16": roundHalf, "bf16": roundBF16, "fp8_e4m3": fp8E4M3.round}[st.ParamFormat]
		require.Equal(t, st.ParamBits == 0, round == nil, "%s: parameter format %q", tc.codec, st.ParamFormat)
		for i, p := range params {
			require.Equal(t, p, round(p), "%s: parameter %d is not a %s value", tc.codec, i, st.ParamFormat)
		}
	}
}
