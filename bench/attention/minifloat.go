package attention

import "math"

// minifloat is a small binary floating-point format with a sign bit, ebits
// exponent bits and mbits mantissa bits, subnormals, and no infinities in
// the range it encodes: values beyond max saturate to ±max, as
// vLLM's and PyTorch's saturating FP8 casts do. Rounding is to nearest,
// ties to even.
type minifloat struct {
	rnd    rounding
	minExp int     // exponent of the smallest normal value
	max    float64 // largest finite value
	codes  int     // number of non-negative codes that hold finite values
	sign   uint8   // the code bit that holds the sign
	table  [256]float32
}

// newMinifloat builds the format and its decode table.
func newMinifloat(ebits, mbits, bias int, max float64) *minifloat {
	f := &minifloat{rnd: newRounding(mbits, 1-bias, float32(max)), minExp: 1 - bias, max: max, sign: 1 << (ebits + mbits)}
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

// encode returns the code of x rounded to the format: the same rounding
// as round, but producing the code from the float32 bits directly. A
// normal result's code is its float32 exponent and top mantissa bits,
// rebiased; a subnormal one's is its multiple of the smallest step, which
// is also the code of the smallest normal when it rounds up to it. NaN
// encodes as a zero of its sign.
func (f *minifloat) encode(x float32) uint8 {
	var c [1]uint8
	f.encodeAll(c[:], []float32{x})
	return c[0]
}

// encodeAll sets codes[i] to the code of src[i], for every i of src, with
// the common case (a normal result) in the loop and the rest out of line.
func (f *minifloat) encodeAll(codes []uint8, src []float32) {
	codes = codes[:len(src)]
	r := &f.rnd
	for i, x := range src {
		b := math.Float32bits(x)
		if a := b &^ (1 << 31); a-r.minNormal < 0x7f800000-r.minNormal {
			k := (a + r.half + (a>>r.shift)&1) >> r.shift
			codes[i] = uint8(b>>31)*f.sign | uint8(min(k, r.maxKept)-r.codeBias)
		} else {
			codes[i] = f.encodeSlow(x)
		}
	}
}

// encodeSlow encodes zeros, subnormal results, infinities and NaNs; kept
// out of line so that encode inlines.
//
//go:noinline
func (f *minifloat) encodeSlow(x float32) uint8 {
	b := math.Float32bits(x)
	sign, a, r := uint8(b>>31)*f.sign, b&^(1<<31), &f.rnd
	switch {
	case a > 0x7f800000: // NaN
		return sign
	case a == 0x7f800000: // infinity saturates
		return sign | uint8(r.maxKept-r.codeBias)
	}
	return sign | uint8(math.RoundToEven(float64(math.Float32frombits(a))*r.subScale))
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
	max float32
	// subScale is 2^(mbits-minExp): a subnormal's multiple of the
	// smallest step; subStep is its inverse.
	subScale, subStep float64
	// The bit-level constants: the float32 mantissa bits dropped (shift),
	// half a unit of the last kept place less one (half), the bits of the
	// smallest normal value (minNormal) and of max, max's bits shifted
	// right by shift (maxKept), and the float32 exponent bias less the
	// format's, shifted into place (codeBias), so that a normal value's
	// kept bits less codeBias are its code.
	shift                    uint32
	half, minNormal, maxBits uint32
	maxKept, codeBias        uint32
}

func newRounding(mbits, minExp int, max float32) rounding {
	shift := uint32(23 - mbits)
	return rounding{max: max,
		subScale: math.Ldexp(1, mbits-minExp), subStep: math.Ldexp(1, minExp-mbits),
		shift: shift, half: 1<<(shift-1) - 1, minNormal: uint32(minExp+127) << 23,
		maxBits: math.Float32bits(max), maxKept: math.Float32bits(max) >> shift,
		codeBias: uint32(minExp+126) << mbits}
}

// round is small enough to inline: normal values, by far the most
// common, take the fast path, the rest the slow one.
func (r *rounding) round(x float32) float32 {
	b := math.Float32bits(x)
	a := b &^ (1 << 31)
	if a-r.minNormal < 0x7f800000-r.minNormal {
		a = (a + r.half + (a>>r.shift)&1) &^ (1<<r.shift - 1)
		if a <= r.maxBits {
			return math.Float32frombits(b&(1<<31) | a)
		}
		return math.Float32frombits(b&(1<<31) | r.maxBits)
	}
	return r.roundSlow(x)
}

// roundSlow rounds zeros, NaNs, infinities and subnormal results.
func (r *rounding) roundSlow(x float32) float32 {
	b := math.Float32bits(x)
	sign, a := b&(1<<31), b&^(1<<31)
	switch {
	case a == 0 || a > 0x7f800000: // zero or NaN
		return x
	case a == 0x7f800000:
		return math.Float32frombits(sign | r.maxBits)
	}
	// Below the smallest normal: a fixed step, exact in float64.
	v := float32(math.RoundToEven(float64(math.Float32frombits(a))*r.subScale) * r.subStep)
	return math.Float32frombits(sign | math.Float32bits(min(v, r.max)))
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
