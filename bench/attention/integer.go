package attention

import (
	"fmt"
	"math"
)

// int8Token is symmetric INT8 with one FP16 scale per token and head:
// scale = max|x|/127.
type int8Token struct{}

func (int8Token) Name() string           { return "int8" }
func (int8Token) PerToken() bool         { return true }
func (int8Token) Params(rows, _ int) int { return rows }
func (int8Token) Encode(codes []uint8, params []float32, src []float32, rows, dim int) {
	for r := range rows {
		row := src[r*dim : (r+1)*dim]
		amax := absMax(row)
		scale := roundHalf(amax / 127)
		params[r] = scale
		for i, x := range row {
			var q float64
			if scale != 0 {
				q = clamp(math.RoundToEven(float64(x/scale)), -127, 127)
			}
			codes[r*dim+i] = uint8(int8(q))
		}
	}
}
func (int8Token) Storage() Storage { return Storage{CodeBits: 8, ParamBits: 16, ParamFormat: "fp16"} }
func (int8Token) Decode(dst []float32, codes []uint8, params []float32, rows, dim int) {
	for r := range rows {
		for i := r * dim; i < (r+1)*dim; i++ {
			dst[i] = float32(int8(codes[i])) * params[r]
		}
	}
}

// intGroup is asymmetric integer quantization with an FP16 scale and zero
// point (the group's minimum) per group: x ≈ q*scale + zero, q in
// [0, 2^bits-1]. Groups run along a token's channels (group channels each),
// or, per channel, along the tokens of a block, which is how KIVI (Liu et
// al., ICML 2024) quantizes keys: their outliers sit in fixed channels, so
// a per-channel group keeps one outlier channel from flattening the rest.
type intGroup struct {
	bits       int
	group      int // channels per group, when not perChannel
	perChannel bool
}

func (c intGroup) Name() string {
	if c.perChannel {
		return fmt.Sprintf("int%d-ch", c.bits)
	}
	return fmt.Sprintf("int%d-g%d", c.bits, c.group)
}
func (c intGroup) PerToken() bool { return !c.perChannel }
func (c intGroup) Storage() Storage {
	return Storage{CodeBits: c.bits, ParamBits: 16, ParamFormat: "fp16"}
}
func (c intGroup) Params(rows, dim int) int {
	if c.perChannel {
		return 2 * dim
	}
	return rows * 2 * ((dim + c.group - 1) / c.group)
}
func (c intGroup) Encode(codes []uint8, params []float32, src []float32, rows, dim int) {
	if c.perChannel {
		for ch := range dim {
			params[2*ch], params[2*ch+1] = quantAsym(codes, src, ch, dim, rows, c.bits)
		}
		return
	}
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += c.group {
			n := min(c.group, dim-g)
			params[p], params[p+1] = quantAsym(codes, src, r*dim+g, 1, n, c.bits)
			p += 2
		}
	}
}
func (c intGroup) Decode(dst []float32, codes []uint8, params []float32, rows, dim int) {
	// A group of more values than codes decodes through a table of its
	// codes' values, computed as the loop would.
	levels := 1 << c.bits
	if c.perChannel {
		var table [4096]float32
		if rows <= levels || dim*levels > len(table) {
			for r := range rows {
				for ch := range dim {
					i := r*dim + ch
					dst[i] = float32(codes[i])*params[2*ch] + params[2*ch+1]
				}
			}
			return
		}
		for ch := range dim {
			for q := range levels {
				table[ch*levels+q] = float32(q)*params[2*ch] + params[2*ch+1]
			}
		}
		for r := range rows {
			src, out := codes[r*dim:(r+1)*dim], dst[r*dim:(r+1)*dim]
			for ch, q := range src {
				out[ch] = table[ch*levels+int(q)]
			}
		}
		return
	}
	var table [256]float32
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += c.group {
			scale, zero := params[p], params[p+1]
			p += 2
			src, out := codes[r*dim+g:r*dim+min(g+c.group, dim)], dst[r*dim+g:r*dim+min(g+c.group, dim)]
			if len(src) <= levels {
				for i, q := range src {
					out[i] = float32(q)*scale + zero
				}
				continue
			}
			for q := range levels {
				table[q] = float32(q)*scale + zero
			}
			for i, q := range src {
				out[i] = table[q]
			}
		}
	}
}

// quantAsym quantizes the count values src[off], src[off+stride], ... to
// bits-bit codes at the same indices and returns the group's FP16 scale and
// zero point. Codes are computed against the rounded parameters, as a
// kernel that stores FP16 parameters must.
func quantAsym(codes []uint8, src []float32, off, stride, count, bits int) (scale, zero float32) {
	lo, hi := minMax(src, off, stride, count)
	levels := int(1)<<bits - 1
	scale, zero = roundHalf(float32(float64(hi-lo)/float64(levels))), roundHalf(lo)
	if scale == 0 {
		for k := range count {
			codes[off+k*stride] = 0
		}
		return scale, zero
	}
	// The code is RoundToEven(a/s), a = x-zero and s = scale, clamped.
	// Where it is not clamped, a/s is below 2^8 and a*(1/s) within 2^-44
	// of it (relative error 2^-52), so where the product is further than
	// that from a tie it rounds the same way as the quotient (beyond the
	// codes' range both clamp alike): only within a hair of a tie, or for
	// a NaN or an infinity, does the division decide, as it always did.
	s := float64(scale)
	inv := 1 / s
	for k := range count {
		i := off + k*stride
		a := float64(src[i] - zero)
		t := a * inv
		q := math.RoundToEven(t)
		if r := t - q; !(r*r < 0.2499) { // near a tie, or NaN
			q = math.RoundToEven(a / s)
		}
		// Explicit bounds: the builtin min and max also order NaNs and
		// signed zeros, which costs a third of this loop.
		if q < 0 {
			q = 0
		} else if q > float64(levels) {
			q = float64(levels)
		}
		codes[i] = uint8(q)
	}
	return scale, zero
}

// minMax returns the least and the greatest of the count values src[off],
// src[off+stride], ..., as comparing each with x < lo and x > hi from
// lo = +Inf and hi = -Inf does: NaNs never taken, the first of equal
// values kept. It compares them as integers that order like them (the
// bits, with the magnitude bits of negative values flipped), which the
// compiler does without branches: the record-breaking comparisons of the
// plain loop are branches the processor mispredicts, which costs about
// as much as the rest of a group's quantization. NaNs, which those
// integers would order, and zeros, whose first sign the plain loop keeps,
// go to the plain loop.
func minMax(src []float32, off, stride, count int) (lo, hi float32) {
	kmin, kmax := int32(math.MaxInt32), int32(math.MinInt32)
	for k := range count {
		b := int32(math.Float32bits(src[off+k*stride]))
		v := b ^ (b >> 31 & 0x7fffffff)
		kmin, kmax = min(kmin, v), max(kmax, v)
	}
	const posInf, negInf = 0x7f800000, -0x7f800001 // their integers
	if negInf <= kmin && kmin <= kmax && kmax <= posInf && kmin != 0 && kmin != -1 && kmax != 0 && kmax != -1 {
		return math.Float32frombits(uint32(kmin ^ (kmin >> 31 & 0x7fffffff))),
			math.Float32frombits(uint32(kmax ^ (kmax >> 31 & 0x7fffffff)))
	}
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	for k := range count {
		// Plain comparisons: the builtin min and max also order NaNs and
		// signed zeros.
		x := src[off+k*stride]
		if x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	return lo, hi
}

// absMax returns the greatest magnitude of src, as comparing each with
// a > amax from amax = 0 does (NaNs never taken), by the same branch-free
// integer comparison as minMax: the bits of a magnitude order like it.
func absMax(src []float32) float32 {
	var m uint32
	for _, x := range src {
		m = max(m, math.Float32bits(x)&^(1<<31))
	}
	if m <= 0x7f800000 {
		return math.Float32frombits(m)
	}
	var amax float32 // a NaN, which the integers order: the plain loop
	for _, x := range src {
		if a := abs32(x); a > amax {
			amax = a
		}
	}
	return amax
}

func clamp(x, lo, hi float64) float64 { return min(max(x, lo), hi) }

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }
