package kvmem_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

func TestTypeRowBytes(t *testing.T) {
	tests := []struct {
		typ  kvmem.Type
		n    int
		want int64
	}{
		{kvmem.FP32, 128, 512},
		{kvmem.FP16, 128, 256},
		{kvmem.BF16, 576, 1152},
		{kvmem.FP8E4M3, 128, 128},
		{kvmem.FP8E5M2, 576, 576},
		{kvmem.INT8, 128, 130},          // one FP16 scale per row
		{kvmem.Q8_0, 32, 34},            // GGML block: 32 int8 + FP16 scale
		{kvmem.Q8_0, 128, 4 * 34},       // 8.5 bits per value
		{kvmem.Q4_0, 32, 18},            // 16 bytes of nibbles + FP16 scale
		{kvmem.Q4_0, 576, 18 * 18},      // 4.5 bits per value
		{kvmem.NVFP4, 16, 9},            // 8 bytes of FP4 + FP8 scale
		{kvmem.NVFP4, 128, 8 * 9},       //
		{kvmem.INT4(64), 128, 2 * 36},   // g/2 + 4 = 36 per group of 64
		{kvmem.INT4(32), 576, 18 * 20},  // g/2 + 4 = 20 per group of 32
		{kvmem.INT4(128), 128, 68},      // 4.25 bits per value
		{kvmem.INT2(32), 128, 4 * 12},   // g/4 + 4 = 12 per group of 32
		{kvmem.INT2(16), 64, 4 * 8},     // g/4 + 4 = 8 per group of 16
		{kvmem.INT2(128), 576 * 2, 324}, // 9 groups of 128 at 36 bytes
	}
	for _, tt := range tests {
		got, err := tt.typ.RowBytes(tt.n)
		require.NoError(t, err, "%v x %d", tt.typ, tt.n)
		assert.Equal(t, tt.want, got, "%v x %d", tt.typ, tt.n)
	}
}

// TestTypeGroupFormula checks the INT4/INT2 formulas over many group
// sizes against the bit count: values take bits/8 bytes each and each group
// adds a 2-byte scale and a 2-byte zero point.
func TestTypeGroupFormula(t *testing.T) {
	for g := 4; g <= 256; g += 4 {
		for _, typ := range []kvmem.Type{kvmem.INT4(g), kvmem.INT2(g)} {
			n := 3 * g
			got, err := typ.RowBytes(n)
			require.NoError(t, err)
			assert.Equal(t, int64(n*typ.ValueBits()/8+3*4), got, "%v", typ)
			assert.Equal(t, g, typ.GroupSize())
		}
	}
}

func TestTypeRowBytesErrors(t *testing.T) {
	tests := []struct {
		typ kvmem.Type
		n   int
	}{
		{kvmem.INT4(64), 96},           // not a multiple of the group
		{kvmem.INT4(128), 576},         // MLA row is 4.5 groups of 128
		{kvmem.Q8_0, 48},               // not a multiple of 32
		{kvmem.NVFP4, 24},              // not a multiple of 16
		{kvmem.FP16, 0},                // empty row
		{kvmem.FP16, -1},               // negative row
		{kvmem.INT4(3), 96},            // group not byte aligned
		{kvmem.INT2(6), 96},            // group not byte aligned
		{kvmem.INT4(0), 96},            // zero group
		{kvmem.Type{}, 128},            // unset
		{kvmem.Type{Format: 200}, 128}, // unknown format
		{kvmem.Type{Format: kvmem.FormatFP16, Group: 8}, 128}, // group on a float
	}
	for _, tt := range tests {
		_, err := tt.typ.RowBytes(tt.n)
		require.ErrorIs(t, err, kvmem.ErrInvalid, "%v x %d", tt.typ, tt.n)
	}
}

func TestParseType(t *testing.T) {
	tests := []struct {
		in   string
		want kvmem.Type
		str  string
	}{
		{"fp32", kvmem.FP32, "fp32"},
		{"fp16", kvmem.FP16, "fp16"},
		{"BF16", kvmem.BF16, "bf16"},
		{"fp8_e4m3", kvmem.FP8E4M3, "fp8_e4m3"},
		{"fp8-e4m3", kvmem.FP8E4M3, "fp8_e4m3"},
		{"fp8", kvmem.FP8E4M3, "fp8_e4m3"},
		{"fp8_e5m2", kvmem.FP8E5M2, "fp8_e5m2"},
		{"int8", kvmem.INT8, "int8"},
		{"int4-g64", kvmem.INT4(64), "int4-g64"},
		{"int4_g128", kvmem.INT4(128), "int4-g128"},
		{"int4", kvmem.INT4(64), "int4-g64"},
		{"int2-g32", kvmem.INT2(32), "int2-g32"},
		{"int2", kvmem.INT2(32), "int2-g32"},
		{"q8_0", kvmem.Q8_0, "q8_0"},
		{"Q4_0", kvmem.Q4_0, "q4_0"},
		{"nvfp4", kvmem.NVFP4, "nvfp4"},
	}
	for _, tt := range tests {
		got, err := kvmem.ParseType(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
		assert.Equal(t, tt.str, got.String(), tt.in)
	}
	for _, typ := range kvmem.Types() {
		back, err := kvmem.ParseType(typ.String())
		require.NoError(t, err)
		assert.Equal(t, typ, back, "round trip of %v", typ)
	}
	for _, bad := range []string{"", "fp4", "int4-g", "int4-gx", "int4-g3", "int2-g2", "int4-g0", "int4g64", "int42", "q5_0", "fp16 x",
		"int4-g+64", "int4-g-64", "int4-g064", "int4-g 64", "int4-g64 x", "int2-g+32", "int2_g0032", "int4-g６４"} {
		_, err := kvmem.ParseType(bad)
		require.ErrorIs(t, err, kvmem.ErrInvalid, "%q", bad)
		assert.Contains(t, err.Error(), "kvmem:", "%q", bad)
	}
}

func TestTypeAccessors(t *testing.T) {
	assert.Equal(t, 16, kvmem.BF16.ValueBits())
	assert.Equal(t, 0, kvmem.BF16.GroupSize())
	assert.Equal(t, 0, kvmem.INT8.GroupSize())
	assert.Equal(t, 32, kvmem.Q8_0.GroupSize())
	assert.Equal(t, 16, kvmem.NVFP4.GroupSize())
	assert.Equal(t, 4, kvmem.NVFP4.ValueBits())
	assert.Equal(t, 2, kvmem.INT2(8).ValueBits())
	assert.Equal(t, 0, kvmem.Type{}.ValueBits())
	assert.Equal(t, "unset", kvmem.Type{}.String())
	assert.Equal(t, "Format(99)", kvmem.Format(99).String())
	assert.True(t, kvmem.Type{}.IsZero())
}

func TestParamBytes(t *testing.T) {
	b, err := kvmem.BF16.ParamBytes(1000)
	require.NoError(t, err)
	assert.Equal(t, int64(2000), b)
	b, err = kvmem.FP8E4M3.ParamBytes(1001)
	require.NoError(t, err)
	assert.Equal(t, int64(1001), b)
	b, err = kvmem.INT4(128).ParamBytes(129) // two groups, the last partial
	require.NoError(t, err)
	assert.Equal(t, int64(2*68), b)
	b, err = kvmem.Q4_0.ParamBytes(64)
	require.NoError(t, err)
	assert.Equal(t, int64(36), b)
	_, err = kvmem.FP16.ParamBytes(0)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = kvmem.FP32.ParamBytes(1 << 62)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
}

// TestTokenBytesPublished checks the per-token KV of the presets at 16 bits
// against the published figures.
func TestTokenBytesPublished(t *testing.T) {
	tests := []struct {
		model string
		want  int64
	}{
		{"OPT-13B", 819_200},     // PagedAttention: "800 KB" per token
		{"Llama-3-70B", 327_680}, // Mooncake: "320 KB" per token
		{"Llama-3.1-70B", 327_680},
		{"Llama-3.1-8B", 131_072}, // 128 KiB
		{"Mixtral-8x7B", 131_072},
		{"Qwen2.5-72B", 327_680},
		{"DeepSeek-V3", 70_272}, // 61 x (512 + 64) x 2
		{"Kimi-K2", 70_272},
	}
	for _, tt := range tests {
		m, err := kvmem.LookupModel(tt.model)
		require.NoError(t, err)
		for _, typ := range []kvmem.Type{kvmem.FP16, kvmem.BF16} {
			got, err := m.Spec(typ, kvmem.Type{}).TokenBytes()
			require.NoError(t, err, tt.model)
			assert.Equal(t, tt.want, got, "%s %v", tt.model, typ)
		}
	}
	// OPT-13B at 2,048 tokens: "up to 1.6 GB" per request.
	m, err := kvmem.LookupModel("opt-13b")
	require.NoError(t, err)
	b, err := m.Spec(kvmem.FP16, kvmem.Type{}).SequenceBytes(2048, 16)
	require.NoError(t, err)
	assert.Equal(t, int64(1_677_721_600), b)
}

func TestSpecMixedTypes(t *testing.T) {
	// Llama-3.1-8B with q8_0 keys and q4_0 values: 32 layers x 8 heads x
	// (4 blocks x 34 + 4 blocks x 18) bytes.
	s := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.Q8_0, Value: kvmem.Q4_0}
	got, err := s.TokenBytes()
	require.NoError(t, err)
	assert.Equal(t, int64(32*8*(4*34+4*18)), got)

	// MLA at every type: 61 layers x one row of 576 values.
	for _, typ := range kvmem.Types() {
		mla := kvmem.Spec{Layers: 61, MLALatent: 512, MLARope: 64, Key: typ}
		row, err := typ.RowBytes(576)
		require.NoError(t, err)
		got, err := mla.TokenBytes()
		require.NoError(t, err, "%v", typ)
		assert.Equal(t, 61*row, got, "%v", typ)
	}
	// q8_0 is 8.5/16 of fp16 and q4_0 4.5/16, exactly, on any whole row.
	fp16 := kvmem.Spec{Layers: 61, MLALatent: 512, MLARope: 64, Key: kvmem.FP16}
	q8 := fp16
	q8.Key = kvmem.Q8_0
	q4 := fp16
	q4.Key = kvmem.Q4_0
	b16, _ := fp16.TokenBytes()
	b8, _ := q8.TokenBytes()
	b4, _ := q4.TokenBytes()
	assert.Equal(t, b16*17/32, b8)
	assert.Equal(t, b16*9/32, b4)
}

func TestSpecBlockAndSequence(t *testing.T) {
	s := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	b, err := s.BlockBytes(16)
	require.NoError(t, err)
	assert.Equal(t, int64(16*131_072), b)
	seq, err := s.SequenceBytes(17, 16) // 17 tokens take two blocks
	require.NoError(t, err)
	assert.Equal(t, 2*b, seq)
	seq, err = s.SequenceBytes(0, 16)
	require.NoError(t, err)
	assert.Zero(t, seq)
	_, err = s.BlockBytes(0)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = s.SequenceBytes(-1, 16)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
}

func TestSpecValidate(t *testing.T) {
	good := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	mla := kvmem.Spec{Layers: 61, MLALatent: 512, MLARope: 64, Key: kvmem.FP16}
	require.NoError(t, good.Validate())
	require.NoError(t, mla.Validate())
	tests := []struct {
		name  string
		edit  func(*kvmem.Spec)
		base  kvmem.Spec
		field string
	}{
		{"zero layers", func(s *kvmem.Spec) { s.Layers = 0 }, good, "Layers"},
		{"negative layers", func(s *kvmem.Spec) { s.Layers = -3 }, good, "Layers"},
		{"huge layers", func(s *kvmem.Spec) { s.Layers = 1 << 20 }, good, "Layers"},
		{"zero heads", func(s *kvmem.Spec) { s.KVHeads = 0 }, good, "KVHeads"},
		{"zero head dim", func(s *kvmem.Spec) { s.HeadDim = 0 }, good, "HeadDim"},
		{"unset key", func(s *kvmem.Spec) { s.Key = kvmem.Type{} }, good, "Key"},
		{"bad key", func(s *kvmem.Spec) { s.Key = kvmem.Type{Format: 77} }, good, "Key"},
		{"bad value", func(s *kvmem.Spec) { s.Value = kvmem.INT4(5) }, good, "Value"},
		{"head dim not packable", func(s *kvmem.Spec) { s.HeadDim = 96; s.Key = kvmem.INT4(64) }, good, "HeadDim"},
		{"value head dim not packable", func(s *kvmem.Spec) { s.HeadDim = 80; s.Value = kvmem.Q8_0 }, good, "HeadDim"},
		{"latent not packable", func(s *kvmem.Spec) { s.Key = kvmem.INT4(128) }, mla, "MLALatent"},
		{"MLA with heads", func(s *kvmem.Spec) { s.KVHeads = 1 }, mla, "KVHeads"},
		{"MLA zero latent", func(s *kvmem.Spec) { s.MLALatent = 0 }, mla, "MLALatent"},
		{"MLA negative rope", func(s *kvmem.Spec) { s.MLARope = -64 }, mla, "MLA"},
		{"MLA value differs", func(s *kvmem.Spec) { s.Value = kvmem.INT8 }, mla, "Value"},
	}
	for _, tt := range tests {
		s := tt.base
		tt.edit(&s)
		err := s.Validate()
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
		assert.Contains(t, err.Error(), tt.field, tt.name)
		_, err = s.TokenBytes()
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
	}
}

func TestSpecShard(t *testing.T) {
	s := kvmem.Spec{Layers: 80, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	for _, tt := range []struct{ tp, heads int }{{1, 8}, {2, 4}, {8, 1}, {16, 1}, {64, 1}} {
		sh, err := s.Shard(tt.tp)
		require.NoError(t, err)
		assert.Equal(t, tt.heads, sh.KVHeads, "tp %d", tt.tp)
	}
	_, err := s.Shard(3)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	assert.Contains(t, err.Error(), "KVHeads")
	_, err = s.Shard(12) // neither divides the other
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = s.Shard(0)
	require.ErrorIs(t, err, kvmem.ErrInvalid)

	// MLA's latent is replicated on every device.
	mla := kvmem.Spec{Layers: 61, MLALatent: 512, MLARope: 64, Key: kvmem.BF16}
	sh, err := mla.Shard(8)
	require.NoError(t, err)
	assert.Equal(t, mla, sh)
}

func TestSpecPoolBlocks(t *testing.T) {
	s := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	block := int64(16 * 131_072)
	n, err := s.PoolBlocks(100*block+block/2, 0)
	require.NoError(t, err)
	assert.Equal(t, 100, n)
	_, err = s.PoolBlocks(2*block-1, 16)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	_, err = s.PoolBlocks(-5, 16)
	require.ErrorIs(t, err, kvmem.ErrTooSmall)
	assert.Contains(t, err.Error(), "holds 0 blocks")
	_, err = s.PoolBlocks(1<<62, 1)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	assert.False(t, errors.Is(err, kvmem.ErrTooSmall))
}

// FuzzParseType: any string parses or fails with ErrInvalid, never
// panics; a parsed type round-trips through String and packs its own
// group without a negative size.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{"fp16", "int4-g64", "int2_g4", "q8_0", "nvfp4", "int4-g-8", "int4-g99999999999999999999", "fp8",
		"int4-g+64", "int4-g064", " INT2_G32 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := kvmem.ParseType(s)
		if err != nil {
			require.ErrorIs(t, err, kvmem.ErrInvalid)
			return
		}
		// Only the canonical name, in any case, with "-" for "_" and
		// spaces around, or one of the short forms, parses: a group has one
		// spelling.
		norm := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
		if canon := strings.ReplaceAll(typ.String(), "_", "-"); norm != canon {
			require.Contains(t, []string{"int4", "int2", "fp8", "e4m3"}, norm, "%q parsed as %v", s, typ)
		}
		back, err := kvmem.ParseType(typ.String())
		require.NoError(t, err)
		require.Equal(t, typ, back)
		n := max(typ.GroupSize(), 1) * 3
		b, err := typ.RowBytes(n)
		require.NoError(t, err)
		require.Positive(t, b)
	})
}

// FuzzSpec: any shape and type either validates, giving positive sizes,
// or fails with ErrInvalid; nothing panics or goes negative.
func FuzzSpec(f *testing.F) {
	f.Add(32, 8, 128, 0, 0, uint8(2), 0, 16)
	f.Add(61, 0, 0, 512, 64, uint8(7), 64, 16)
	f.Add(1<<12, 1<<16, 1<<20, 0, 0, uint8(1), 0, 1<<20)
	f.Fuzz(func(t *testing.T, layers, heads, dim, latent, rope int, format uint8, group, blockSize int) {
		s := kvmem.Spec{Layers: layers, KVHeads: heads, HeadDim: dim, MLALatent: latent, MLARope: rope,
			Key: kvmem.Type{Format: kvmem.Format(format), Group: group}}
		tok, err := s.TokenBytes()
		if err != nil {
			require.ErrorIs(t, err, kvmem.ErrInvalid)
			return
		}
		require.Positive(t, tok)
		blk, err := s.BlockBytes(blockSize)
		if err == nil {
			require.Equal(t, tok*int64(blockSize), blk)
		}
		for _, tp := range []int{1, 2, 8, 3} {
			sh, err := s.Shard(tp)
			if err == nil {
				st, err := sh.TokenBytes()
				require.NoError(t, err)
				require.Positive(t, st)
				require.LessOrEqual(t, st, tok)
			}
		}
	})
}
