package paged

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// KVFormat is the storage format of a KV (or weight) element type.
type KVFormat uint8

// The formats a KVType can have. The zero KVFormat means "unset".
const (
	// FormatFP32 is IEEE binary32: 4 bytes per value, no scale.
	FormatFP32 KVFormat = iota + 1
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
	// FormatINT4 is asymmetric 4-bit integers in groups of KVType.Group
	// values, each group with an FP16 scale and an FP16 zero point:
	// g/2 + 4 bytes per group of g.
	FormatINT4
	// FormatINT2 is asymmetric 2-bit integers in groups of KVType.Group
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
}

// String returns the format's canonical name, such as "fp8_e4m3".
func (f KVFormat) String() string {
	if f == 0 || int(f) >= len(formats) {
		return "KVFormat(" + strconv.Itoa(int(f)) + ")"
	}
	return formats[f].name
}

// KVType is the element type of stored keys or values: a format and, for
// the group-wise integer formats (INT4, INT2), the number of values that
// share one scale and zero point. The zero KVType is unset.
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
//
// A group never spans two rows, so n must be a multiple of the group.
type KVType struct {
	// Format is the storage format.
	Format KVFormat
	// Group is the number of values per scale for FormatINT4 and
	// FormatINT2 (a multiple of 2 for INT4 and of 4 for INT2, so groups
	// end on byte boundaries); 0 for every other format.
	Group int
}

// Common KV types.
var (
	KVFP32    = KVType{Format: FormatFP32}
	KVFP16    = KVType{Format: FormatFP16}
	KVBF16    = KVType{Format: FormatBF16}
	KVFP8E4M3 = KVType{Format: FormatFP8E4M3}
	KVFP8E5M2 = KVType{Format: FormatFP8E5M2}
	KVINT8    = KVType{Format: FormatINT8}
	KVQ8_0    = KVType{Format: FormatQ8_0}
	KVQ4_0    = KVType{Format: FormatQ4_0}
	KVNVFP4   = KVType{Format: FormatNVFP4}
)

// KVINT4 returns the INT4 type with the given group size.
func KVINT4(group int) KVType { return KVType{Format: FormatINT4, Group: group} }

// KVINT2 returns the INT2 type with the given group size.
func KVINT2(group int) KVType { return KVType{Format: FormatINT2, Group: group} }

// KVTypes returns one of each format, with the default group sizes for INT4
// (64) and INT2 (32), roughly from the widest to the narrowest: the set "kvbench
// plan -kv all" compares.
func KVTypes() []KVType {
	return []KVType{KVFP32, KVFP16, KVBF16, KVFP8E4M3, KVFP8E5M2, KVINT8, KVQ8_0,
		KVINT4(defaultINT4Group), KVQ4_0, KVNVFP4, KVINT2(defaultINT2Group)}
}

// ParseKVType parses a type name: "fp32", "fp16", "bf16", "fp8_e4m3" (or
// "fp8"), "fp8_e5m2", "int8", "int4-g64", "int2-g32", "q8_0", "q4_0",
// "nvfp4". Case does not matter and "-" may stand for "_". "int4" and
// "int2" without a group mean int4-g64 and int2-g32.
func ParseKVType(s string) (KVType, error) {
	name := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	for _, p := range []struct {
		prefix string
		format KVFormat
		def    int
	}{{"int4", FormatINT4, defaultINT4Group}, {"int2", FormatINT2, defaultINT2Group}} {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "-g")) {
			continue
		}
		t := KVType{Format: p.format, Group: p.def}
		if rest != "" {
			g, err := strconv.Atoi(rest[2:])
			if err != nil {
				return KVType{}, fmt.Errorf("%w: kv type %q: group %q is not a number", ErrInvalid, s, rest[2:])
			}
			t.Group = g
		}
		if err := t.Validate(); err != nil {
			return KVType{}, err
		}
		return t, nil
	}
	if name == "fp8" || name == "e4m3" {
		return KVFP8E4M3, nil
	}
	for f := FormatFP32; int(f) < len(formats); f++ {
		if f == FormatINT4 || f == FormatINT2 {
			continue
		}
		if name == strings.ReplaceAll(formats[f].name, "_", "-") {
			return KVType{Format: f}, nil
		}
	}
	return KVType{}, fmt.Errorf("%w: unknown kv type %q (want fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, int4-gN, int2-gN, q8_0, q4_0 or nvfp4)", ErrInvalid, s)
}

// String returns the type's name as ParseKVType reads it, with the group of
// INT4 and INT2 always spelled out ("int4-g64").
func (t KVType) String() string {
	if t.Format == 0 {
		return "unset"
	}
	if t.Format == FormatINT4 || t.Format == FormatINT2 {
		return t.Format.String() + "-g" + strconv.Itoa(t.Group)
	}
	return t.Format.String()
}

// IsZero reports whether t is the unset type.
func (t KVType) IsZero() bool { return t == KVType{} }

// Validate returns an error wrapping ErrInvalid when t is unset, has an
// unknown format, or a group that does not fit its format.
func (t KVType) Validate() error {
	if t.Format == 0 || int(t.Format) >= len(formats) {
		return fmt.Errorf("%w: kv type %v is not a known format", ErrInvalid, t)
	}
	switch t.Format {
	case FormatINT4, FormatINT2:
		align := 8 / formats[t.Format].valueBits
		if t.Group < align || t.Group > maxGroup || t.Group%align != 0 {
			return fmt.Errorf("%w: kv type %v: group %d must be a multiple of %d in [%d, %d] so groups end on a byte",
				ErrInvalid, t, t.Group, align, align, maxGroup)
		}
	default:
		if t.Group != 0 {
			return fmt.Errorf("%w: kv type %v: Group %d is only for int4 and int2", ErrInvalid, t, t.Group)
		}
	}
	return nil
}

// ValueBits returns the bits of one stored value without its share of the
// scales: 32, 16, 8, 4 or 2. It returns 0 for an invalid type.
func (t KVType) ValueBits() int {
	if t.Validate() != nil {
		return 0
	}
	return formats[t.Format].valueBits
}

// GroupSize returns how many values share one scale: 32 for q8_0 and q4_0,
// 16 for nvfp4, Group for INT4 and INT2, and 0 when the scale covers a whole
// row (int8), a whole tensor (fp8) or there is none (fp32, fp16, bf16).
func (t KVType) GroupSize() int {
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
func (t KVType) groupBytes() int64 {
	switch t.Format {
	case FormatINT4:
		return int64(t.Group/2 + 4)
	case FormatINT2:
		return int64(t.Group/4 + 4)
	}
	return formats[t.Format].blockBytes
}

// RowBytes returns the bytes that store one row of n values in type t,
// scales and zero points included (see KVType for the formulas). It fails
// when t is invalid, n is not positive, or n is not a multiple of t's group.
func (t KVType) RowBytes(n int) (int64, error) {
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
func (t KVType) ParamBytes(n int64) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%w: parameter count %d must be positive", ErrInvalid, n)
	}
	if g := int64(t.GroupSize()); g > 0 {
		return mulBytes((n+g-1)/g, t.groupBytes())
	}
	hi, lo := bits.Mul64(uint64(n), uint64(formats[t.Format].valueBits))
	if hi != 0 || lo/8 > 1<<62 {
		return 0, fmt.Errorf("%w: %d parameters of %v overflow", ErrInvalid, n, t)
	}
	return int64(lo / 8), nil
}

// KVSpec is the KV layout of a model: how many bytes each token's keys and
// values take, per layer and in total.
//
// A standard (MHA, GQA or MQA) model stores, per layer and token, KVHeads
// key rows and KVHeads value rows of HeadDim values each; GQA and MQA have
// fewer KV heads than query heads, which is where their saving comes from.
// An MLA model (DeepSeek-V2/V3, Kimi K2) stores instead one shared row of
// MLALatent compressed values plus MLARope decoupled rotary key values per
// layer and token; keys and values are both recomputed from it, so the row
// is stored once, in the Key type.
type KVSpec struct {
	// Layers is the number of attention layers that keep a KV cache.
	Layers int
	// KVHeads is the number of key/value heads (standard attention; 0 for
	// MLA).
	KVHeads int
	// HeadDim is the dimension of one key or value head (standard
	// attention; 0 for MLA).
	HeadDim int
	// MLALatent is the compressed KV dimension (kv_lora_rank) of an MLA
	// model; 0 for standard attention.
	MLALatent int
	// MLARope is the decoupled rotary key dimension (qk_rope_head_dim) of
	// an MLA model.
	MLARope int
	// Key is the element type of keys (and of the whole MLA row).
	// Required.
	Key KVType
	// Value is the element type of values. Unset means the same as Key. An
	// MLA spec must leave it unset or equal to Key.
	Value KVType
}

// Spec limits keep every product below int64's range: 2^12 layers x 2^16
// heads x 2^20 values x 4.25 bytes x 2 stays under 2^63.
const (
	maxLayers  = 1 << 12
	maxKVHeads = 1 << 16
	maxDim     = 1 << 20
)

// MLA reports whether s describes multi-head latent attention.
func (s KVSpec) MLA() bool { return s.MLALatent != 0 || s.MLARope != 0 }

// value returns the effective value type.
func (s KVSpec) value() KVType {
	if s.Value.IsZero() {
		return s.Key
	}
	return s.Value
}

// Validate returns an error wrapping ErrInvalid that names the first bad
// field: a count out of range, an unset or unknown type, a head dimension or
// latent that the type cannot pack, or a mix of MLA and standard fields.
func (s KVSpec) Validate() error {
	if s.Layers <= 0 || s.Layers > maxLayers {
		return fmt.Errorf("%w: KVSpec.Layers %d must be in [1, %d]", ErrInvalid, s.Layers, maxLayers)
	}
	if s.Key.IsZero() {
		return fmt.Errorf("%w: KVSpec.Key is unset", ErrInvalid)
	}
	if err := s.Key.Validate(); err != nil {
		return fmt.Errorf("KVSpec.Key: %w", err)
	}
	if !s.Value.IsZero() {
		if err := s.Value.Validate(); err != nil {
			return fmt.Errorf("KVSpec.Value: %w", err)
		}
	}
	if s.MLA() {
		if s.KVHeads != 0 || s.HeadDim != 0 {
			return fmt.Errorf("%w: KVSpec.KVHeads and HeadDim must be 0 for MLA (one shared latent row)", ErrInvalid)
		}
		if s.MLALatent <= 0 || s.MLALatent > maxDim {
			return fmt.Errorf("%w: KVSpec.MLALatent %d must be in [1, %d]", ErrInvalid, s.MLALatent, maxDim)
		}
		if s.MLARope < 0 || s.MLARope > maxDim {
			return fmt.Errorf("%w: KVSpec.MLARope %d must be in [0, %d]", ErrInvalid, s.MLARope, maxDim)
		}
		if !s.Value.IsZero() && s.Value != s.Key {
			return fmt.Errorf("%w: KVSpec.Value %v differs from Key %v, but MLA stores one latent row in the Key type", ErrInvalid, s.Value, s.Key)
		}
		if _, err := s.Key.RowBytes(s.MLALatent + s.MLARope); err != nil {
			return fmt.Errorf("KVSpec.MLALatent+MLARope: %w", err)
		}
		return nil
	}
	if s.KVHeads <= 0 || s.KVHeads > maxKVHeads {
		return fmt.Errorf("%w: KVSpec.KVHeads %d must be in [1, %d]", ErrInvalid, s.KVHeads, maxKVHeads)
	}
	if s.HeadDim <= 0 || s.HeadDim > maxDim {
		return fmt.Errorf("%w: KVSpec.HeadDim %d must be in [1, %d]", ErrInvalid, s.HeadDim, maxDim)
	}
	if _, err := s.Key.RowBytes(s.HeadDim); err != nil {
		return fmt.Errorf("KVSpec.HeadDim: %w", err)
	}
	if _, err := s.value().RowBytes(s.HeadDim); err != nil {
		return fmt.Errorf("KVSpec.HeadDim: %w", err)
	}
	return nil
}

// LayerBytes returns the bytes of one token's KV in one layer.
func (s KVSpec) LayerBytes() (int64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if s.MLA() {
		return s.Key.RowBytes(s.MLALatent + s.MLARope)
	}
	k, _ := s.Key.RowBytes(s.HeadDim)
	v, _ := s.value().RowBytes(s.HeadDim)
	return int64(s.KVHeads) * (k + v), nil
}

// TokenBytes returns the bytes of one token's KV over all layers.
func (s KVSpec) TokenBytes() (int64, error) {
	l, err := s.LayerBytes()
	if err != nil {
		return 0, err
	}
	return l * int64(s.Layers), nil
}

// BlockBytes returns the bytes of one block of blockSize tokens.
func (s KVSpec) BlockBytes(blockSize int) (int64, error) {
	if blockSize <= 0 || blockSize > 1<<20 {
		return 0, fmt.Errorf("%w: block size %d must be in [1, 2^20]", ErrInvalid, blockSize)
	}
	t, err := s.TokenBytes()
	if err != nil {
		return 0, err
	}
	return mulBytes(t, int64(blockSize))
}

// SequenceBytes returns the bytes a paged cache spends on a sequence of
// tokens: whole blocks, ceil(tokens/blockSize) of them.
func (s KVSpec) SequenceBytes(tokens, blockSize int) (int64, error) {
	if tokens < 0 {
		return 0, fmt.Errorf("%w: sequence of %d tokens must not be negative", ErrInvalid, tokens)
	}
	b, err := s.BlockBytes(blockSize)
	if err != nil {
		return 0, err
	}
	return mulBytes(int64(ceilDiv(tokens, blockSize)), b)
}

// Shard returns the part of s that one device holds under tensor
// parallelism of degree tp. KV heads split evenly across devices; with fewer
// KV heads than devices each head is replicated tp/KVHeads times, so every
// device holds one (vLLM's rule), which needs tp to divide or be divided by
// KVHeads. An MLA latent is shared by all query heads and cannot split, so
// every device holds all of it: MLA's saving shrinks as tp grows.
func (s KVSpec) Shard(tp int) (KVSpec, error) {
	if err := s.Validate(); err != nil {
		return KVSpec{}, err
	}
	if tp <= 0 {
		return KVSpec{}, fmt.Errorf("%w: tensor parallel degree %d must be positive", ErrInvalid, tp)
	}
	if s.MLA() {
		return s, nil
	}
	switch {
	case s.KVHeads%tp == 0:
		s.KVHeads /= tp
	case tp%s.KVHeads == 0:
		s.KVHeads = 1
	default:
		return KVSpec{}, fmt.Errorf("%w: tensor parallel degree %d must divide or be a multiple of KVSpec.KVHeads %d", ErrInvalid, tp, s.KVHeads)
	}
	return s, nil
}

// Config returns a manager Config for one device's pool: s as that device
// holds it (see Shard), budget bytes of KV memory on it, and blockSize
// tokens per block (0 for DefaultBlockSize). NumBlocks is every whole block
// the budget holds, and includes the null block, so NumBlocks-1 are usable;
// vLLM counts its GPU blocks the same way. Other fields keep their defaults.
func (s KVSpec) Config(budget int64, blockSize int) (Config, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	b, err := s.BlockBytes(blockSize)
	if err != nil {
		return Config{}, err
	}
	n := budget / b
	if n < 2 {
		return Config{}, fmt.Errorf("%w: KV budget of %d bytes holds %d blocks of %d bytes; a pool needs 2 (block 0 is the null block)", ErrTooSmall, budget, max(n, 0), b)
	}
	if n > 1<<31-1 {
		return Config{}, fmt.Errorf("%w: KV budget of %d bytes holds %d blocks, more than a pool's 2^31-1; use larger blocks", ErrInvalid, budget, n)
	}
	return Config{BlockSize: blockSize, NumBlocks: int(n)}, nil
}

// mulBytes multiplies two non-negative byte counts, failing on overflow.
func mulBytes(a, b int64) (int64, error) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > 1<<62 {
		return 0, fmt.Errorf("%w: %d x %d bytes overflows", ErrInvalid, a, b)
	}
	return int64(lo), nil
}

// ceilDiv returns ceil(a/b) for a >= 0, b > 0, without overflowing near
// the top of int's range.
func ceilDiv(a, b int) int {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}
