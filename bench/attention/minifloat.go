package attention

import "math"

// minifloat is a small binary floating-point format with a sign bit, ebits
// exponent bits and mbits mantissa bits, subnormals, and no infinities in
// the range it encodes: values beyond max saturate to ±max, as
// vLLM's and PyTorch's saturating FP8 casts do. Rounding is to nearest,
// ties to even.
type minifloat struct {
	mbits  int
	minExp int     // exponent of the smallest normal value
	max    float64 // largest finite value
	codes  int     // number of non-negative codes that hold finite values
	sign   uint8   // the code bit that holds the sign
	table  [256]float32
}

// newMinifloat builds the format and its decode table.
func newMinifloat(ebits, mbits, bias int, max float64) *minifloat {
	f := &minifloat{mbits: mbits, minExp: 1 - bias, max: max, sign: 1 << (ebits + mbits)}
	for c := range 1 << (ebits + mbits) {
		e, m := c>>mbits, c&(1<<mbits-1)
		var v float64
		if e == 0 {
			v = math.Ldexp(float64(m), f.minExp-mbits)
		} else {
			v = math.Ldexp(float64(m|1<<mbits), e-bias-mbits)
		}
		if v > max {
			break
		}
		f.codes = c + 1
		f.table[c] = float32(v)
		f.table[c|int(f.sign)] = float32(-v)
	}
	return f
}

// The formats. E4M3 is the OCP "fn" variant (max 448, no infinity); E5M2
// keeps IEEE-style infinities, which saturation never produces; E2M1 is the
// element type of NVFP4.
var (
	fp8E4M3 = newMinifloat(4, 3, 7, 448)
	fp8E5M2 = newMinifloat(5, 2, 15, 57344)
	fp4E2M1 = newMinifloat(2, 1, 1, 6)
)

// round returns x rounded to the nearest value of the format.
func (f *minifloat) round(x float64) float64 {
	return roundFloat(x, f.mbits, f.minExp, f.max)
}

// encode returns the code of x rounded to the format.
func (f *minifloat) encode(x float32) uint8 {
	var sign uint8
	a := float64(x)
	if math.Signbit(a) {
		sign, a = f.sign, -a
	}
	if math.IsNaN(a) {
		a = 0
	}
	r := f.round(a)
	if r == 0 {
		return sign
	}
	e := math.Ilogb(r)
	if e < f.minExp { // subnormal: exponent field 0
		return sign | uint8(math.Ldexp(r, f.mbits-f.minExp))
	}
	mant := uint8(math.Ldexp(r, f.mbits-e)) &^ (1 << f.mbits)
	return sign | uint8(e-f.minExp+1)<<f.mbits | mant
}

// decode returns the value of a code.
func (f *minifloat) decode(c uint8) float32 { return f.table[c] }

// roundFloat rounds x to a binary format with mbits stored mantissa bits,
// smallest normal exponent minExp and largest finite value max, to nearest
// with ties to even, saturating at ±max. It also serves the 16-bit formats
// (FP16 and BF16) in which scales are kept.
func roundFloat(x float64, mbits, minExp int, max float64) float64 {
	if x == 0 || math.IsNaN(x) {
		return x
	}
	a := math.Abs(x)
	e := math.Ilogb(a)
	if e < minExp {
		e = minExp
	}
	q := math.Ldexp(1, e-mbits) // spacing of representable values near a
	r := math.RoundToEven(a/q) * q
	if r > max {
		r = max
	}
	return math.Copysign(r, x)
}

// roundHalf rounds x to IEEE half precision (FP16), in which quantization
// scales and zero points are stored; it saturates at 65504.
func roundHalf(x float32) float32 { return float32(roundFloat(float64(x), 10, -14, 65504)) }

// roundBF16 rounds x to bfloat16.
func roundBF16(x float32) float32 {
	return float32(roundFloat(float64(x), 7, -126, 0x1.fep127))
}
