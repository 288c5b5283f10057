package attention

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refQuantAsym is quantAsym's plain formulation: the quotient of every
// value's offset by the scale, rounded to even and clamped.
func refQuantAsym(codes []uint8, src []float32, off, stride, count, bits int) (scale, zero float32) {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for k := range count {
		lo, hi = min(lo, src[off+k*stride]), max(hi, src[off+k*stride])
	}
	levels := float64(int(1)<<bits - 1)
	scale, zero = roundHalf(float32(float64(hi-lo)/levels)), roundHalf(lo)
	for k := range count {
		i := off + k*stride
		var q float64
		if scale != 0 {
			q = min(max(math.RoundToEven(float64(src[i]-zero)/float64(scale)), 0), levels)
		}
		codes[i] = uint8(q)
	}
	return scale, zero
}

// TestQuantAsymMatchesDivision: the codes quantAsym computes by a
// reciprocal are those of the quotient, on random groups and on groups
// whose values sit exactly on, and one float32 step either side of, the
// ties between codes.
func TestQuantAsymMatchesDivision(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const count = 64
	src := make([]float32, 2*count)
	got, want := make([]uint8, 2*count), make([]uint8, 2*count)
	for iter := range 30000 {
		bits := []int{2, 4, 8}[iter%3]
		mag := math.Exp(r.NormFloat64() * 3)
		for i := range src {
			src[i] = float32(r.NormFloat64() * mag)
		}
		if iter%2 == 1 {
			// Put the values on ties of the grid the group will have:
			// the first two fix the range, the rest fall on it.
			src[0], src[2] = float32(-mag), float32(mag)
			scale, zero := roundHalf(float32(float64(src[2]-src[0])/float64(int(1)<<bits-1))), roundHalf(src[0])
			for k := 2; k < count; k++ {
				x := float32(float64(zero) + (float64(r.IntN(1<<bits))+0.5)*float64(scale))
				switch r.IntN(3) {
				case 1:
					x = math.Nextafter32(x, float32(math.Inf(1)))
				case 2:
					x = math.Nextafter32(x, float32(math.Inf(-1)))
				}
				src[2*k] = max(src[0], min(x, src[2]))
			}
		}
		// Stride 2: every other value, as a per-channel group reads.
		gs, gz := quantAsym(got, src, 0, 2, count, bits)
		ws, wz := refQuantAsym(want, src, 0, 2, count, bits)
		if gs != ws || gz != wz {
			t.Fatalf("iteration %d: scale, zero %g, %g; want %g, %g", iter, gs, gz, ws, wz)
		}
		for k := range count {
			if got[2*k] != want[2*k] {
				t.Fatalf("iteration %d, value %d (%g): code %d, want %d", iter, k, src[2*k], got[2*k], want[2*k])
			}
		}
	}
}

// TestMinMaxMatchesComparisons: minMax and absMax return, to the bit, what
// the plain comparison loops return, on groups that mix signs, signed zeros,
// infinities and NaNs.
func TestMinMaxMatchesComparisons(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), -float32(math.NaN()), math.MaxFloat32, -math.SmallestNonzeroFloat32}
	src := make([]float32, 48)
	for iter := range 20000 {
		for i := range src {
			src[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()*10))
			if iter%3 == 1 { // zeros are then the least values
				src[i] = float32(math.Abs(float64(src[i])))
			}
			if r.IntN(8) == 0 {
				src[i] = specials[r.IntN(len(specials))]
			}
		}
		off, stride := r.IntN(3), 1+r.IntN(3)
		count := (len(src) - off + stride - 1) / stride
		if iter%5 == 0 {
			count = 0
		}
		wantLo, wantHi := float32(math.Inf(1)), float32(math.Inf(-1))
		for k := range count {
			if x := src[off+k*stride]; x < wantLo {
				wantLo = x
			}
			if x := src[off+k*stride]; x > wantHi {
				wantHi = x
			}
		}
		var wantAmax float32
		for _, x := range src[off:] {
			if a := float32(math.Abs(float64(x))); a > wantAmax {
				wantAmax = a
			}
		}
		if got := absMax(src[off:]); math.Float32bits(got) != math.Float32bits(wantAmax) {
			t.Fatalf("iteration %d: absMax %g, want %g", iter, got, wantAmax)
		}
		lo, hi := minMax(src, off, stride, count)
		if math.Float32bits(lo) != math.Float32bits(wantLo) || math.Float32bits(hi) != math.Float32bits(wantHi) {
			t.Fatalf("iteration %d: %g, %g; want %g, %g", iter, lo, hi, wantLo, wantHi)
		}
	}
}
