package attention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Codec is a KV storage format. It encodes a tile, the keys or the values of
// one KV head in one block (rows tokens by dim channels, row-major), into one
// 8-bit code per element plus float32 parameters (scales, zero points, or
// the values themselves for the 16-bit formats), and decodes it back.
//
// Codes are kept one per byte whatever their width and parameters as
// float32 rounded to the precision a real layout stores them in (FP16 for
// scales and zero points, FP8 E4M3 for NVFP4's block scales), so the
// numerics are exact while the host store stays simple. Storage says what
// a real layout would keep; bytes per token come from the KV layout spec,
// and the tests check that the two agree for every codec.
//
// A nil Codec means plain float32.
type Codec interface {
	// Name is the format's name as ParseCodec accepts it.
	Name() string
	// PerToken reports whether every token (row) is encoded on its own, so
	// a token can be written alone; otherwise the codec groups along tokens
	// (per-channel quantization) and encodes a whole, full block at once.
	PerToken() bool
	// Params returns the number of float32 parameters of a rows x dim tile.
	// For a PerToken codec it is rows times Params(1, dim), laid out row by
	// row.
	Params(rows, dim int) int
	// Encode encodes src (rows*dim values) into codes (rows*dim) and params.
	Encode(codes []uint8, params []float32, src []float32, rows, dim int)
	// Decode writes the rows*dim values of an encoded tile to dst.
	Decode(dst []float32, codes []uint8, params []float32, rows, dim int)
	// Storage returns the widths a real layout stores the codes and the
	// parameters in.
	Storage() Storage
}

// Storage is what a real layout stores of a codec's tile: every code in
// CodeBits bits and every parameter in ParamBits bits of ParamFormat.
type Storage struct {
	// CodeBits is the width of one code; 0 when the values live in the
	// parameters (the 16-bit formats).
	CodeBits int
	// ParamBits is the width of one parameter; 0 when there are none.
	ParamBits int
	// ParamFormat names the format parameters are rounded to: "fp16",
	// "bf16" or "fp8_e4m3"; "" when there are none.
	ParamFormat string
}

// Bits returns the bits a real layout stores for a rows x dim tile of c:
// its codes and its parameters.
func Bits(c Codec, rows, dim int) int64 {
	st := c.Storage()
	return int64(st.CodeBits)*int64(rows)*int64(dim) + int64(st.ParamBits)*int64(c.Params(rows, dim))
}

// ErrCodec is returned by ParseCodec for a name it does not know.
var ErrCodec = errors.New("attention: unknown KV codec")

// ParseCodec returns the codec named name:
//
//	fp32                     nil: plain float32, the reference
//	fp16, bf16               16-bit floats
//	fp8_e4m3, fp8_e5m2       OCP FP8, saturating, scale 1 (vLLM's default
//	                         when no scales are calibrated)
//	int8                     symmetric, one FP16 scale per token and head
//	int4-gN, int2-gN, int8-gN  asymmetric, FP16 scale and zero point per
//	                         group of N channels of a token
//	int4-ch, int2-ch, int8-ch  asymmetric per channel, one group per channel
//	                         over a block's tokens (KIVI's key quantization;
//	                         the group size is the block size)
//	q8_0, q4_0               llama.cpp's formats: 32 values per FP16 scale
//	nvfp4                    FP4 E2M1 and an E4M3 scale per 16 values; the
//	                         per-tensor FP32 scale is 1 (uncalibrated)
func ParseCodec(name string) (Codec, error) {
	switch name {
	case "fp32", "f32":
		return nil, nil
	case "fp16":
		return half{}, nil
	case "bf16":
		return half{bf16: true}, nil
	case "fp8_e4m3":
		return fp8{name, fp8E4M3}, nil
	case "fp8_e5m2":
		return fp8{name, fp8E5M2}, nil
	case "int8":
		return int8Token{}, nil
	case "q8_0":
		return q80{}, nil
	case "q4_0":
		return q40{}, nil
	case "nvfp4":
		return nvfp4{}, nil
	}
	if rest, ok := strings.CutPrefix(name, "int"); ok {
		width, group, ok := strings.Cut(rest, "-")
		bits, err := strconv.Atoi(width)
		if ok && err == nil && (width == "2" || width == "4" || width == "8") {
			if group == "ch" {
				return intGroup{bits: bits, perChannel: true}, nil
			}
			if g, ok := strings.CutPrefix(group, "g"); ok {
				// Digits only, no leading zero: Atoi alone took "+64".
				n, err := strconv.Atoi(g)
				if err == nil && n >= 1 && n <= 1<<16 && g == strconv.Itoa(n) {
					return intGroup{bits: bits, group: n}, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%w %q", ErrCodec, name)
}

// CodecName returns c's name, "fp32" for nil.
func CodecName(c Codec) string {
	if c == nil {
		return "fp32"
	}
	return c.Name()
}

// half stores FP16 or BF16 values (kept in params, widened to float32).
type half struct{ bf16 bool }

func (h half) Name() string {
	if h.bf16 {
		return "bf16"
	}
	return "fp16"
}
func (half) PerToken() bool           { return true }
func (half) Params(rows, dim int) int { return rows * dim }
func (h half) Encode(_ []uint8, params []float32, src []float32, rows, dim int) {
	for i, x := range src[:rows*dim] {
		if h.bf16 {
			params[i] = roundBF16(x)
		} else {
			params[i] = roundHalf(x)
		}
	}
}
func (half) Decode(dst []float32, _ []uint8, params []float32, rows, dim int) {
	copy(dst[:rows*dim], params)
}
func (h half) Storage() Storage { return Storage{ParamBits: 16, ParamFormat: h.Name()} }

// fp8 stores FP8 codes with no scale.
type fp8 struct {
	name string
	f    *minifloat
}

func (c fp8) Name() string      { return c.name }
func (fp8) PerToken() bool      { return true }
func (fp8) Params(_, _ int) int { return 0 }
func (c fp8) Encode(codes []uint8, _ []float32, src []float32, rows, dim int) {
	c.f.encodeAll(codes, src[:rows*dim])
}
func (c fp8) Decode(dst []float32, codes []uint8, _ []float32, rows, dim int) {
	for i, q := range codes[:rows*dim] {
		dst[i] = c.f.decode(q)
	}
}
func (fp8) Storage() Storage { return Storage{CodeBits: 8} }
