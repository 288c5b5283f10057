package attention

import "math"

// minifloat is a small binary floating-point format with a sign bit, ebits
// exponent bits and mbits mantissa bits, subnormals, and no infinities in
// the range it encodes: values beyond max saturate to ±max, as
// vLLM's and PyTorch's saturating FP8 casts do. Rounding is to nearest,
// ties to even.
type minifloat struct {
	rnd    rounding
	mbits  int
	minExp int     // exponent of the smallest normal value
	max    float64 // largest finite value
	codes  int     // number of non-negative codes that hold finite values
	sign   uint8   // the code bit that holds the sign
	table  [256]float32
}

// newMinifloat builds the format and its decode table.
func newMinifloat(ebits, mbits, bias int, max float64) *minifloat {
	f := &minifloat{rnd: newRounding(mbits, 1-bias, float32(max)), mbits: mbits, minExp: 1 - bias, max: max, sign: 1 << (ebits + mbits)}
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
func (f *minifloat) round(x float32) float32 { return f.rnd.round(x) }

// encode returns the code of x rounded to the format.
func (f *minifloat) encode(x float32) uint8 {
	var sign uint8
	if math.Signbit(float64(x)) {
		sign, x = f.sign, -x
	}
	if x != x { // NaN
		x = 0
	}
	r := f.round(x)
	if r == 0 {
		return sign
	}
	b := math.Float32bits(r)
	e := int(b>>23) - 127
	if e < f.minExp { // subnormal: exponent field 0
		return sign | uint8(float64(r)*f.rnd.subScale)
	}
	mant := uint8(b>>(23-f.mbits)) & (1<<f.mbits - 1)
	return sign | uint8(e-f.minExp+1)<<f.mbits | mant
}

// decode returns the value of a code.
func (f *minifloat) decode(c uint8) float32 { return f.table[c] }

// rounding rounds float32 values to a binary format with mbits stored
// mantissa bits, smallest normal exponent minExp and largest finite value
// max: to nearest, ties to even, saturating at ±max. It works on the
// float32 bits (adding half a unit of the target's last place, plus one if
// the kept part is odd, then truncating), which is exact for every format
// narrower than float32 and several times faster than a frexp/ldexp
// formulation; the tests check it against one on millions of values.
type rounding struct {
	mbits, minExp int
	max           float32
	// subScale is 2^(mbits-minExp): a subnormal's multiple of the
	// smallest step; subStep is its inverse.
	subScale, subStep float64
}

func newRounding(mbits, minExp int, max float32) rounding {
	return rounding{mbits: mbits, minExp: minExp, max: max,
		subScale: math.Ldexp(1, mbits-minExp), subStep: math.Ldexp(1, minExp-mbits)}
}

func (r rounding) round(x float32) float32 {
	b := math.Float32bits(x)
	sign, a := b&(1<<31), b&^(1<<31)
	switch {
	case a == 0 || a > 0x7f800000: // zero or NaN
		return x
	case int(a>>23)-127 < r.minExp:
		// Below the smallest normal: a fixed step, exact in float64.
		v := float32(math.RoundToEven(float64(math.Float32frombits(a))*r.subScale) * r.subStep)
		return math.Float32frombits(sign | math.Float32bits(min(v, r.max)))
	}
	shift := uint(23 - r.mbits)
	a += 1<<(shift-1) - 1 + (a>>shift)&1
	a &^= 1<<shift - 1
	if v := math.Float32frombits(a); v > r.max || a >= 0x7f800000 {
		a = math.Float32bits(r.max)
	}
	return math.Float32frombits(sign | a)
}

var (
	fp16Rounding = newRounding(10, -14, 65504)
	bf16Rounding = newRounding(7, -126, 0x1.fep127)
)

// roundHalf rounds x to IEEE half precision (FP16), in which quantization
// scales and zero points are stored; it saturates at 65504.
func roundHalf(x float32) float32 { return fp16Rounding.round(x) }

// roundBF16 rounds x to bfloat16, saturating at its largest finite value.
func roundBF16(x float32) float32 { return bf16Rounding.round(x) }
