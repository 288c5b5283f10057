package kvmem

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Format is the storage format of a KV (or weight) element type.
type Format uint8

// The formats a Type can have. The zero Format means "unset".
const (
	// FormatFP32 is IEEE binary32: 4 bytes per value, no scale.
	FormatFP32 Format = iota + 1
	// FormatFP16 is IEEE binary16: 2 bytes per value, no scale.
	FormatFP16
	// FormatBF16 is bfloat16: 2 bytes per value, no scale.
	FormatBF16
	// FormatFP8E4M3 is OCP FP8 E4M3: 1 byte per value and one FP32 scale
	// per tensor (per layer for K and for V), a fixed cost not counted per
	// token.
	FormatFP8E4M3
	// FormatFP8E5M2 is OCP FP8 E5M2, laid out as FormatFP8E4M3.
	FormatFP8E5M2
	// FormatINT8 is symmetric 8-bit integers with one FP16 scale per token
	// per head row: n + 2 bytes for a row of n values.
	FormatINT8
	// FormatINT4 is asymmetric 4-bit integers in groups of Type.Group
	// values, each group with an FP16 scale and an FP16 zero point:
	// g/2 + 4 bytes per group of g.
	FormatINT4
	// FormatINT2 is asymmetric 2-bit integers in groups of Type.Group
	// values, each with an FP16 scale and an FP16 zero point: g/4 + 4 bytes
	// per group of g.
	FormatINT2
	// FormatQ8_0 is GGML's q8_0: blocks of 32 int8 values with one FP16
	// scale, 34 bytes per 32 values (8.5 bits per value).
	FormatQ8_0
	// FormatQ4_0 is GGML's q4_0: blocks of 32 4-bit values with one FP16
	// scale, 18 bytes per 32 values (4.5 bits per value).
	FormatQ4_0
	// FormatNVFP4 is NVIDIA's NVFP4: blocks of 16 FP4 (E2M1) values with an
	// FP8 E4M3 scale, 9 bytes per 16 values (4.5 bits per value), plus one
	// FP32 scale per tensor, a fixed cost not counted per token.
	FormatNVFP4
	// FormatMXFP4 is the OCP Microscaling MXFP4: blocks of 32 FP4 (E2M1)
	// values with one E8M0 (power of two) scale, 17 bytes per 32 values
	// (4.25 bits per value). gpt-oss ships its expert weights in it.
	FormatMXFP4
)

// Default group sizes of "int4" and "int2" written without "-gN".
const (
	defaultINT4Group = 64
	defaultINT2Group = 32
	maxGroup         = 1 << 20
)

// formatInfo describes one format: its canonical name, the bits of one
// stored value, its fixed block (values per scale, 0 for none or per row)
// and that block's bytes.
type formatInfo struct {
	name       string
	valueBits  int
	block      int   // fixed values per scale block; 0 when the format has none
	blockBytes int64 // bytes of one fixed block
}

var formats = [...]formatInfo{
	FormatFP32:    {name: "fp32", valueBits: 32},
	FormatFP16:    {name: "fp16", valueBits: 16},
	FormatBF16:    {name: "bf16", valueBits: 16},
	FormatFP8E4M3: {name: "fp8_e4m3", valueBits: 8},
	FormatFP8E5M2: {name: "fp8_e5m2", valueBits: 8},
	FormatINT8:    {name: "int8", valueBits: 8},
	FormatINT4:    {name: "int4", valueBits: 4},
	FormatINT2:    {name: "int2", valueBits: 2},
	FormatQ8_0:    {name: "q8_0", valueBits: 8, block: 32, blockBytes: 34},
	FormatQ4_0:    {name: "q4_0", valueBits: 4, block: 32, blockBytes: 18},
	FormatNVFP4:   {name: "nvfp4", valueBits: 4, block: 16, blockBytes: 9},
	FormatMXFP4:   {name: "mxfp4", valueBits: 4, block: 32, blockBytes: 17},
}

// String returns the format's canonical name, such as "fp8_e4m3".
func (f Format) String() string {
	if f == 0 || int(f) >= len(formats) {
		return "Format(" + strconv.Itoa(int(f)) + ")"
	}
	return formats[f].name
}

// Type is the element type of stored keys or values: a format and, for
// the group-wise integer formats (INT4, INT2), the number of values that
// share one scale and zero point. The zero Type is unset.
//
// Bytes for a row of n values (one token of one head, or one token's MLA
// latent), scales included:
//
//	fp32            4n
//	fp16, bf16      2n
//	fp8_e4m3/e5m2   n            (per-tensor scale: fixed, not per token)
//	int8            n + 2        (FP16 scale per token per row)
//	int4-gG         (n/G)(G/2+4) (FP16 scale + FP16 zero per group)
//	int2-gG         (n/G)(G/4+4) (FP16 scale + FP16 zero per group)
//	q8_0            (n/32)·34
//	q4_0            (n/32)·18
//	nvfp4           (n/16)·9     (FP8 scale per 16; per-tensor FP32 fixed)
//	mxfp4           (n/32)·17    (E8M0 scale per 32)
//
// A group never spans two rows, so n must be a multiple of the group.
type Type struct {
	// Format is the storage format.
	Format Format
	// Group is the number of values per scale for FormatINT4 and
	// FormatINT2 (a multiple of 2 for INT4 and of 4 for INT2, so groups
	// end on byte boundaries); 0 for every other format.
	Group int
}

// Common KV types.
var (
	FP32    = Type{Format: FormatFP32}
	FP16    = Type{Format: FormatFP16}
	BF16    = Type{Format: FormatBF16}
	FP8E4M3 = Type{Format: FormatFP8E4M3}
	FP8E5M2 = Type{Format: FormatFP8E5M2}
	INT8    = Type{Format: FormatINT8}
	Q8_0    = Type{Format: FormatQ8_0}
	Q4_0    = Type{Format: FormatQ4_0}
	NVFP4   = Type{Format: FormatNVFP4}
	MXFP4   = Type{Format: FormatMXFP4}
)

// INT4 returns the INT4 type with the given group size.
func INT4(group int) Type { return Type{Format: FormatINT4, Group: group} }

// INT2 returns the INT2 type with the given group size.
func INT2(group int) Type { return Type{Format: FormatINT2, Group: group} }

// Types returns one of each format, with the default group sizes for INT4
// (64) and INT2 (32), roughly from the widest to the narrowest: the set "kvbench
// plan -kv all" compares.
func Types() []Type {
	return []Type{FP32, FP16, BF16, FP8E4M3, FP8E5M2, INT8, Q8_0,
		INT4(defaultINT4Group), Q4_0, NVFP4, MXFP4, INT2(defaultINT2Group)}
}

// ParseType parses a type name: "fp32", "fp16", "bf16", "fp8_e4m3" (or
// "fp8" or "e4m3"), "fp8_e5m2", "int8", "int4-g64", "int2-g32", "q8_0", "q4_0",
// "nvfp4", "mxfp4". Case does not matter and "-" may stand for "_". "int4" and
// "int2" without a group mean int4-g64 and int2-g32. A group is decimal
// digits without a sign, a leading zero or spaces ("int4-g+64", "int4-g064"
// and "int4-g 64" are ErrInvalid).
func ParseType(s string) (Type, error) {
	name := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	for _, p := range []struct {
		prefix string
		format Format
		def    int
	}{{"int4", FormatINT4, defaultINT4Group}, {"int2", FormatINT2, defaultINT2Group}} {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "-g")) {
			continue
		}
		t := Type{Format: p.format, Group: p.def}
		if rest != "" {
			g, ok := parseGroup(rest[2:])
			if !ok {
				return Type{}, fmt.Errorf("%w: kv type %q: group %q is not a number of decimal digits without a sign or a leading zero", ErrInvalid, s, rest[2:])
			}
			t.Group = g
		}
		if err := t.Validate(); err != nil {
			return Type{}, err
		}
		return t, nil
	}
	if name == "fp8" || name == "e4m3" {
		return FP8E4M3, nil
	}
	for f := FormatFP32; int(f) < len(formats); f++ {
		if f == FormatINT4 || f == FormatINT2 {
			continue
		}
		if name == strings.ReplaceAll(formats[f].name, "_", "-") {
			return Type{Format: f}, nil
		}
	}
	return Type{}, fmt.Errorf("%w: unknown kv type %q (want fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, int4-gN, int2-gN, q8_0, q4_0, nvfp4 or mxfp4)", ErrInvalid, s)
}

// parseGroup reads a group size spelled as String spells it: decimal
// digits, no sign, no leading zero, no spaces. strconv.Atoi alone took
// "+64" and "064" as 64. A number too long for an int is not one.
func parseGroup(s string) (int, bool) {
	if s == "" || s[0] == '0' {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	g, err := strconv.Atoi(s)
	return g, err == nil
}

// String returns the type's name as ParseType reads it, with the group of
// INT4 and INT2 always spelled out ("int4-g64").
func (t Type) String() string {
	if t.Format == 0 {
		return "unset"
	}
	if t.Format == FormatINT4 || t.Format == FormatINT2 {
		return t.Format.String() + "-g" + strconv.Itoa(t.Group)
	}
	return t.Format.String()
}

// IsZero reports whether t is the unset type.
func (t Type) IsZero() bool { return t == Type{} }

// Validate returns an error wrapping ErrInvalid when t is unset, has an
// unknown format, or a group that does not fit its format.
func (t Type) Validate() error { return t.validate("kv type") }

// validate is Validate with the type named as what (a Spec's field).
func (t Type) validate(what string) error {
	if t.Format == 0 || int(t.Format) >= len(formats) {
		return fmt.Errorf("%w: %s %v is not a known format", ErrInvalid, what, t)
	}
	switch t.Format {
	case FormatINT4, FormatINT2:
		align := 8 / formats[t.Format].valueBits
		if t.Group < align || t.Group > maxGroup || t.Group%align != 0 {
			return fmt.Errorf("%w: %s %v: group %d must be a multiple of %d in [%d, %d] so groups end on a byte",
				ErrInvalid, what, t, t.Group, align, align, maxGroup)
		}
	default:
		if t.Group != 0 {
			return fmt.Errorf("%w: %s %v: Group %d is only for int4 and int2", ErrInvalid, what, t, t.Group)
		}
	}
	return nil
}

// ValueBits returns the bits of one stored value without its share of the
// scales: 32, 16, 8, 4 or 2. It returns 0 for an invalid type.
func (t Type) ValueBits() int {
	if t.Validate() != nil {
		return 0
	}
	return formats[t.Format].valueBits
}

// GroupSize returns how many values share one scale: 32 for q8_0, q4_0 and mxfp4,
// 16 for nvfp4, Group for INT4 and INT2, and 0 when the scale covers a whole
// row (int8), a whole tensor (fp8) or there is none (fp32, fp16, bf16).
func (t Type) GroupSize() int {
	if t.Validate() != nil {
		return 0
	}
	if t.Format == FormatINT4 || t.Format == FormatINT2 {
		return t.Group
	}
	return formats[t.Format].block
}

// groupBytes returns the bytes of one scale group of t (values plus scale
// and zero point), for types with GroupSize > 0.
func (t Type) groupBytes() int64 {
	switch t.Format {
	case FormatINT4:
		return int64(t.Group/2 + 4)
	case FormatINT2:
		return int64(t.Group/4 + 4)
	}
	return formats[t.Format].blockBytes
}

// RowBytes returns the bytes that store one row of n values in type t,
// scales and zero points included (see Type for the formulas). It fails
// when t is invalid, n is not positive, or n is not a multiple of t's group.
func (t Type) RowBytes(n int) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%w: row of %d values for kv type %v must be positive", ErrInvalid, n, t)
	}
	if g := t.GroupSize(); g > 0 {
		if n%g != 0 {
			return 0, fmt.Errorf("%w: kv type %v packs groups of %d values; a row of %d is not a multiple", ErrInvalid, t, g, n)
		}
		return int64(n/g) * t.groupBytes(), nil
	}
	b := int64(n) * int64(formats[t.Format].valueBits) / 8
	if t.Format == FormatINT8 {
		b += 2 // the row's FP16 scale
	}
	return b, nil
}

// ParamBytes returns the bytes of n model parameters stored in type t, such
// as a checkpoint's weights. Group formats count one scale per group over
// the flattened parameters (the last group may be partial); int8 and fp8
// weights' per-channel or per-tensor scales are well under 0.1% and not
// counted, since they depend on tensor shapes a parameter count lacks.
func (t Type) ParamBytes(n int64) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%w: parameter count %d must be positive", ErrInvalid, n)
	}
	if g := int64(t.GroupSize()); g > 0 {
		return mulBytes((n+g-1)/g, t.groupBytes())
	}
	// The bits in 128; with no high word the bytes, below 2^61, fit.
	hi, lo := bits.Mul64(uint64(n), uint64(formats[t.Format].valueBits))
	if hi != 0 {
		return 0, fmt.Errorf("%w: %d parameters of %v overflow", ErrInvalid, n, t)
	}
	return int64(lo / 8), nil
}
