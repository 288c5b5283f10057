package attention

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMinifloatTables(t *testing.T) {
	for _, tc := range []struct {
		name          string
		f             *minifloat
		max, smallest float64
		codes         int
	}{
		{"e4m3", fp8E4M3, 448, math.Ldexp(1, -9), 127},
		{"e5m2", fp8E5M2, 57344, math.Ldexp(1, -16), 124},
		{"e2m1", fp4E2M1, 6, 0.5, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.codes, tc.f.codes)
			assert.Equal(t, float32(tc.max), tc.f.decode(uint8(tc.f.codes-1)))
			assert.Equal(t, float32(tc.smallest), tc.f.decode(1))
			for c := range tc.f.codes {
				for _, code := range []uint8{uint8(c), uint8(c) | tc.f.sign} {
					assert.Equal(t, code, tc.f.encode(tc.f.decode(code)), "code %#x", code)
				}
			}
		})
	}
	// E2M1 holds exactly these magnitudes.
	var got []float32
	for c := range fp4E2M1.codes {
		got = append(got, fp4E2M1.decode(uint8(c)))
	}
	assert.Equal(t, []float32{0, 0.5, 1, 1.5, 2, 3, 4, 6}, got)
}

// TestMinifloatNearest: encoding picks the nearest value, ties to the even
// code, and saturates.
func TestMinifloatNearest(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, f := range []*minifloat{fp8E4M3, fp8E5M2, fp4E2M1} {
		for range 20000 {
			x := float32(r.NormFloat64() * math.Exp(r.NormFloat64()*4))
			got := float64(f.decode(f.encode(x)))
			best, bestCode := math.Inf(1), 0
			for c := range f.codes {
				v := float64(f.table[c])
				if x < 0 {
					v = -v
				}
				d := math.Abs(v - float64(x))
				if d < best || (d == best && c%2 == 0) {
					best, bestCode = d, c
				}
			}
			want := float64(f.table[bestCode])
			if x < 0 {
				want = -want
			}
			require.Equal(t, want, got, "x=%v", x)
		}
		assert.Equal(t, float32(f.max), f.decode(f.encode(1e9)))
		assert.Equal(t, float32(-f.max), f.decode(f.encode(-1e9)))
	}
}

func TestRoundHalf(t *testing.T) {
	assert.Equal(t, float32(1), roundHalf(1+0x1p-11)) // tie, to even
	assert.Equal(t, float32(1+0x1p-10), roundHalf(1+0x1.8p-11))
	assert.Equal(t, float32(65504), roundHalf(1e6))
	assert.Equal(t, float32(0x1p-24), roundHalf(0x1.1p-24)) // subnormal spacing
	assert.Equal(t, float32(0), roundHalf(0x1p-26))
	assert.Equal(t, float32(1), roundBF16(1+0x1p-8))
	assert.Equal(t, float32(1+0x1p-7), roundBF16(1+0x1.8p-8))
}

// refRound is the plain formulation of rounding: frexp-style exponent,
// the spacing of values there, round to even, saturate.
func refRound(x float64, mbits, minExp int, largest float64) float64 {
	if x == 0 || math.IsNaN(x) {
		return x
	}
	a := math.Abs(x)
	e := max(math.Ilogb(a), minExp)
	q := math.Ldexp(1, e-mbits)
	return math.Copysign(min(math.RoundToEven(a/q)*q, largest), x)
}

// TestRoundingMatchesReference checks the bit-level rounding of every
// format against refRound on every float32 of a dense sweep of bit
// patterns plus random values, and the codes against their decoded values.
func TestRoundingMatchesReference(t *testing.T) {
	formats := []struct {
		name          string
		round         func(float32) float32
		mbits, minExp int
		max           float64
	}{
		{"fp16", roundHalf, 10, -14, 65504},
		{"bf16", roundBF16, 7, -126, 0x1.fep127},
		{"e4m3", fp8E4M3.round, 3, -6, 448},
		{"e5m2", fp8E5M2.round, 2, -14, 57344},
		{"e2m1", fp4E2M1.round, 1, 0, 6},
	}
	r := rand.New(rand.NewPCG(5, 6))
	check := func(x float32) {
		for _, f := range formats {
			want := float32(refRound(float64(x), f.mbits, f.minExp, f.max))
			if got := f.round(x); got != want {
				t.Fatalf("%s: round(%g [%#x]) = %g, want %g", f.name, x, math.Float32bits(x), got, want)
			}
		}
		for _, f := range []*minifloat{fp8E4M3, fp8E5M2, fp4E2M1} {
			if got, want := f.decode(f.encode(x)), f.round(x); got != want {
				t.Fatalf("decode(encode(%g)) = %g, want %g", x, got, want)
			}
		}
	}
	// Every 1009th bit pattern below +Inf covers every exponent, and
	// mantissas odd and even, near and at ties.
	for b := uint32(0); b < 0x7f800000; b += 1009 {
		x := math.Float32frombits(b)
		check(x)
		check(-x)
	}
	for range 200000 {
		check(float32(r.NormFloat64() * math.Exp(r.NormFloat64()*6)))
	}
	// Ties at each format's spacing.
	for _, x := range []float32{1 + 0x1p-11, 1 + 0x3p-11, 1 + 0x1p-8, 1 + 0x1p-4, 1.25, 0x1p-25, 0x3p-25, 5, 65520, 0x1.ffp127} {
		check(x)
	}
}

// refEncode is the plain formulation of encode: the code whose value is
// refRound's result, with x's sign; NaN encodes as a zero of its sign.
func refEncode(f *minifloat, mbits int, x float32) uint8 {
	var sign uint8
	if math.Signbit(float64(x)) {
		sign = f.sign
	}
	if x != x {
		return sign
	}
	r := float32(f.max) // infinities saturate
	if !math.IsInf(float64(x), 0) {
		r = float32(refRound(math.Abs(float64(x)), mbits, f.minExp, f.max))
	}
	for c := range f.codes {
		if f.table[c] == r {
			return sign | uint8(c)
		}
	}
	panic("no code")
}

// TestEncodeMatchesReference checks encode's codes, signed zeros
// included, against refEncode on a sweep of bit patterns, on every value
// of each format and the midpoints between neighbours (ties) with the
// float32 values either side of them, and on infinities and NaNs.
func TestEncodeMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     *minifloat
		mbits int
	}{{"e4m3", fp8E4M3, 3}, {"e5m2", fp8E5M2, 2}, {"e2m1", fp4E2M1, 1}} {
		check := func(x float32) {
			if got, want := tc.f.encode(x), refEncode(tc.f, tc.mbits, x); got != want {
				t.Fatalf("%s: encode(%g [%#x]) = %#x, want %#x", tc.name, x, math.Float32bits(x), got, want)
			}
		}
		for b := uint32(0); b < 0x7f800000; b += 4099 {
			check(math.Float32frombits(b))
			check(-math.Float32frombits(b))
		}
		for c := 1; c < tc.f.codes; c++ {
			lo, hi := tc.f.table[c-1], tc.f.table[c]
			mid := float32((float64(lo) + float64(hi)) / 2)
			for _, x := range []float32{lo, hi, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9),
				math.Nextafter32(hi, 1e9), hi * 2} {
				check(x)
				check(-x)
			}
		}
		for _, x := range []float64{0, math.Inf(1), math.NaN(), 1e38, 0x1p-149} {
			check(float32(x))
			check(-float32(x))
		}
	}
}
