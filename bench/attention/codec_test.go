package attention_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
)

var codecNames = []string{
	"fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int8-g32", "int4-g32", "int4-g64", "int4-g128",
	"int2-g32", "int2-g128", "int4-ch", "int2-ch", "q8_0", "q4_0", "nvfp4",
}

func TestParseCodec(t *testing.T) {
	for _, name := range codecNames {
		c, err := attention.ParseCodec(name)
		require.NoError(t, err, name)
		assert.Equal(t, name, attention.CodecName(c))
	}
	c, err := attention.ParseCodec("fp32")
	require.NoError(t, err)
	assert.Nil(t, c)
	for _, bad := range []string{"", "int3-g32", "int4-g0", "int4", "int4-x", "fp8", "q5_1",
		"int4-g+64", "int4-g064", "int+4-g64", "int04-g64", "int4-g 64"} {
		_, err := attention.ParseCodec(bad)
		assert.True(t, errors.Is(err, attention.ErrCodec), bad)
	}
}

// stepBound returns the largest round-trip error a codec may make on one
// element of a tile, from its definition: half a quantization step, where a
// step is the group's range over the code count, plus the error of storing
// parameters in FP16 (relative 2^-11 on scale times code, and on the zero
// point).
func stepBound(name string, groupMin, groupMax, absmax, x float64) float64 {
	const h = 0x1p-11
	switch name {
	case "fp16":
		return math.Abs(x) * 0x1p-11
	case "bf16":
		return math.Abs(x) * 0x1p-8
	case "int8", "q8_0":
		return absmax/127*(0.5+h*128) + 1e-12
	case "q4_0":
		// The codes span [-8, 7] steps with the extreme value on -8, so the
		// other end clips at 7 steps: up to a whole step of error there.
		return absmax/8*(1+h*16) + 1e-12
	}
	levels := map[byte]float64{'8': 255, '4': 15, '2': 3}[name[3]]
	return (groupMax-groupMin)/levels*(0.5+h*(levels+1)) + math.Abs(groupMin)*h + 1e-12
}

// TestCodecRoundTrip: integer codecs stay within half a step of every
// group (computed here independently), and the 16-bit ones within their
// rounding.
func TestCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, dim = 16, 128
	src := make([]float32, rows*dim)
	for i := range src {
		src[i] = float32(r.NormFloat64())
		if i%dim == 7 { // an outlier channel
			src[i] *= 20
		}
	}
	for _, name := range codecNames {
		if name == "fp8_e4m3" || name == "fp8_e5m2" || name == "nvfp4" {
			continue // see TestMinifloatNearest and TestNVFP4Error
		}
		c, err := attention.ParseCodec(name)
		require.NoError(t, err)
		codes := make([]uint8, rows*dim)
		params := make([]float32, c.Params(rows, dim))
		got := make([]float32, rows*dim)
		c.Encode(codes, params, src, rows, dim)
		c.Decode(got, codes, params, rows, dim)
		group := dim // channels per group of a token
		switch {
		case name == "q8_0" || name == "q4_0":
			group = 32
		case len(name) > 6 && name[5] == 'g':
			group = atoi(name[6:])
		}
		for i, x := range src {
			row, ch := i/dim, i%dim
			lo, hi, amax := math.Inf(1), math.Inf(-1), 0.0
			if name[len(name)-2:] == "ch" {
				for r := range rows {
					y := float64(src[r*dim+ch])
					lo, hi, amax = min(lo, y), max(hi, y), max(amax, math.Abs(y))
				}
			} else {
				g := ch / group * group
				for _, y := range src[row*dim+g : row*dim+min(g+group, dim)] {
					lo, hi, amax = min(lo, float64(y)), max(hi, float64(y)), max(amax, math.Abs(float64(y)))
				}
			}
			bound := stepBound(name, lo, hi, amax, float64(x))
			require.LessOrEqual(t, math.Abs(float64(got[i]-x)), bound, "%s element %d: %v -> %v", name, i, x, got[i])
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestCodecPerTokenRows: a per-token codec encodes a tile row by row exactly
// as it encodes the whole tile, which is what lets the store encode each
// token as it is written.
func TestCodecPerTokenRows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const rows, dim = 8, 64
	src := make([]float32, rows*dim)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 3)
	}
	for _, name := range codecNames {
		c, err := attention.ParseCodec(name)
		require.NoError(t, err)
		if !c.PerToken() {
			continue
		}
		whole, byRow := make([]float32, rows*dim), make([]float32, rows*dim)
		codes, params := make([]uint8, rows*dim), make([]float32, c.Params(rows, dim))
		c.Encode(codes, params, src, rows, dim)
		c.Decode(whole, codes, params, rows, dim)
		per := c.Params(1, dim)
		require.Equal(t, rows*per, c.Params(rows, dim), name)
		for row := range rows {
			c.Encode(codes[row*dim:], params[row*per:], src[row*dim:(row+1)*dim], 1, dim)
		}
		c.Decode(byRow, codes, params, rows, dim)
		assert.Equal(t, whole, byRow, name)
	}
}

// TestNVFP4Error: NVFP4 keeps every element within half an E2M1 step of
// its 16-value block, at the block's effective scale.
func TestNVFP4Error(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const dim = 64
	src := make([]float32, dim)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	c, err := attention.ParseCodec("nvfp4")
	require.NoError(t, err)
	codes, params, got := make([]uint8, dim), make([]float32, c.Params(1, dim)), make([]float32, dim)
	c.Encode(codes, params, src, 1, dim)
	c.Decode(got, codes, params, 1, dim)
	for b := 0; b < dim; b += 16 {
		var amax float64
		for _, x := range src[b : b+16] {
			amax = max(amax, math.Abs(float64(x)))
		}
		for i := b; i < b+16; i++ {
			// E2M1's widest step is 2 (between 4 and 6), and the E4M3
			// block scale itself may be off by 1/16 relative.
			bound := amax/6*(1+1.0/16) + amax/16
			assert.LessOrEqual(t, math.Abs(float64(got[i]-src[i])), bound, "element %d", i)
		}
	}
}
