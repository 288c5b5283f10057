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
