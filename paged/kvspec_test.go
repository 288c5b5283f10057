package paged_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

func TestKVTypeRowBytes(t *testing.T) {
	tests := []struct {
		typ  paged.KVType
		n    int
		want int64
	}{
		{paged.KVFP32, 128, 512},
		{paged.KVFP16, 128, 256},
		{paged.KVBF16, 576, 1152},
		{paged.KVFP8E4M3, 128, 128},
		{paged.KVFP8E5M2, 576, 576},
		{paged.KVINT8, 128, 130},          // one FP16 scale per row
		{paged.KVQ8_0, 32, 34},            // GGML block: 32 int8 + FP16 scale
		{paged.KVQ8_0, 128, 4 * 34},       // 8.5 bits per value
		{paged.KVQ4_0, 32, 18},            // 16 bytes of nibbles + FP16 scale
		{paged.KVQ4_0, 576, 18 * 18},      // 4.5 bits per value
		{paged.KVNVFP4, 16, 9},            // 8 bytes of FP4 + FP8 scale
		{paged.KVNVFP4, 128, 8 * 9},       //
		{paged.KVINT4(64), 128, 2 * 36},   // g/2 + 4 = 36 per group of 64
		{paged.KVINT4(32), 576, 18 * 20},  // g/2 + 4 = 20 per group of 32
		{paged.KVINT4(128), 128, 68},      // 4.25 bits per value
		{paged.KVINT2(32), 128, 4 * 12},   // g/4 + 4 = 12 per group of 32
		{paged.KVINT2(16), 64, 4 * 8},     // g/4 + 4 = 8 per group of 16
		{paged.KVINT2(128), 576 * 2, 324}, // 9 groups of 128 at 36 bytes
	}
	for _, tt := range tests {
		got, err := tt.typ.RowBytes(tt.n)
		require.NoError(t, err, "%v x %d", tt.typ, tt.n)
		assert.Equal(t, tt.want, got, "%v x %d", tt.typ, tt.n)
	}
}

// TestKVTypeGroupFormula checks the INT4/INT2 formulas over many group
// sizes against the bit count: values take bits/8 bytes each and each group
// adds a 2-byte scale and a 2-byte zero point.
func TestKVTypeGroupFormula(t *testing.T) {
	for g := 4; g <= 256; g += 4 {
		for _, typ := range []paged.KVType{paged.KVINT4(g), paged.KVINT2(g)} {
			n := 3 * g
			got, err := typ.RowBytes(n)
			require.NoError(t, err)
			assert.Equal(t, int64(n*typ.ValueBits()/8+3*4), got, "%v", typ)
			assert.Equal(t, g, typ.GroupSize())
		}
	}
}

func TestKVTypeRowBytesErrors(t *testing.T) {
	tests := []struct {
		typ paged.KVType
		n   int
	}{
		{paged.KVINT4(64), 96},           // not a multiple of the group
		{paged.KVINT4(128), 576},         // MLA row is 4.5 groups of 128
		{paged.KVQ8_0, 48},               // not a multiple of 32
		{paged.KVNVFP4, 24},              // not a multiple of 16
		{paged.KVFP16, 0},                // empty row
		{paged.KVFP16, -1},               // negative row
		{paged.KVINT4(3), 96},            // group not byte aligned
		{paged.KVINT2(6), 96},            // group not byte aligned
		{paged.KVINT4(0), 96},            // zero group
		{paged.KVType{}, 128},            // unset
		{paged.KVType{Format: 200}, 128}, // unknown format
		{paged.KVType{Format: paged.FormatFP16, Group: 8}, 128}, // group on a float
	}
	for _, tt := range tests {
		_, err := tt.typ.RowBytes(tt.n)
		require.ErrorIs(t, err, paged.ErrInvalid, "%v x %d", tt.typ, tt.n)
	}
}

func TestParseKVType(t *testing.T) {
	tests := []struct {
		in   string
		want paged.KVType
		str  string
	}{
		{"fp32", paged.KVFP32, "fp32"},
		{"fp16", paged.KVFP16, "fp16"},
		{"BF16", paged.KVBF16, "bf16"},
		{"fp8_e4m3", paged.KVFP8E4M3, "fp8_e4m3"},
		{"fp8-e4m3", paged.KVFP8E4M3, "fp8_e4m3"},
		{"fp8", paged.KVFP8E4M3, "fp8_e4m3"},
		{"fp8_e5m2", paged.KVFP8E5M2, "fp8_e5m2"},
		{"int8", paged.KVINT8, "int8"},
		{"int4-g64", paged.KVINT4(64), "int4-g64"},
		{"int4_g128", paged.KVINT4(128), "int4-g128"},
		{"int4", paged.KVINT4(64), "int4-g64"},
		{"int2-g32", paged.KVINT2(32), "int2-g32"},
		{"int2", paged.KVINT2(32), "int2-g32"},
		{"q8_0", paged.KVQ8_0, "q8_0"},
		{"Q4_0", paged.KVQ4_0, "q4_0"},
		{"nvfp4", paged.KVNVFP4, "nvfp4"},
	}
	for _, tt := range tests {
		got, err := paged.ParseKVType(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
		assert.Equal(t, tt.str, got.String(), tt.in)
	}
	for _, typ := range paged.KVTypes() {
		back, err := paged.ParseKVType(typ.String())
		require.NoError(t, err)
		assert.Equal(t, typ, back, "round trip of %v", typ)
	}
	for _, bad := range []string{"", "fp4", "int4-g", "int4-gx", "int4-g3", "int2-g2", "int4-g0", "int4g64", "int42", "q5_0", "fp16 x"} {
		_, err := paged.ParseKVType(bad)
		require.ErrorIs(t, err, paged.ErrInvalid, "%q", bad)
		assert.Contains(t, err.Error(), "paged:", "%q", bad)
	}
}

func TestKVTypeAccessors(t *testing.T) {
	assert.Equal(t, 16, paged.KVBF16.ValueBits())
	assert.Equal(t, 0, paged.KVBF16.GroupSize())
	assert.Equal(t, 0, paged.KVINT8.GroupSize())
	assert.Equal(t, 32, paged.KVQ8_0.GroupSize())
	assert.Equal(t, 16, paged.KVNVFP4.GroupSize())
	assert.Equal(t, 4, paged.KVNVFP4.ValueBits())
	assert.Equal(t, 2, paged.KVINT2(8).ValueBits())
	assert.Equal(t, 0, paged.KVType{}.ValueBits())
	assert.Equal(t, "unset", paged.KVType{}.String())
	assert.Equal(t, "KVFormat(99)", paged.KVFormat(99).String())
	assert.True(t, paged.KVType{}.IsZero())
}

func TestParamBytes(t *testing.T) {
	b, err := paged.KVBF16.ParamBytes(1000)
	require.NoError(t, err)
	assert.Equal(t, int64(2000), b)
	b, err = paged.KVFP8E4M3.ParamBytes(1001)
	require.NoError(t, err)
	assert.Equal(t, int64(1001), b)
	b, err = paged.KVINT4(128).ParamBytes(129) // two groups, the last partial
	require.NoError(t, err)
	assert.Equal(t, int64(2*68), b)
	b, err = paged.KVQ4_0.ParamBytes(64)
	require.NoError(t, err)
	assert.Equal(t, int64(36), b)
	_, err = paged.KVFP16.ParamBytes(0)
	require.ErrorIs(t, err, paged.ErrInvalid)
	_, err = paged.KVFP32.ParamBytes(1 << 62)
	require.ErrorIs(t, err, paged.ErrInvalid)
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
		m, err := paged.LookupModel(tt.model)
		require.NoError(t, err)
		for _, typ := range []paged.KVType{paged.KVFP16, paged.KVBF16} {
			got, err := m.Spec(typ, paged.KVType{}).TokenBytes()
			require.NoError(t, err, tt.model)
			assert.Equal(t, tt.want, got, "%s %v", tt.model, typ)
		}
	}
	// OPT-13B at 2,048 tokens: "up to 1.6 GB" per request.
	m, err := paged.LookupModel("opt-13b")
	require.NoError(t, err)
	b, err := m.Spec(paged.KVFP16, paged.KVType{}).SequenceBytes(2048, 16)
	require.NoError(t, err)
	assert.Equal(t, int64(1_677_721_600), b)
}

func TestKVSpecMixedTypes(t *testing.T) {
	// Llama-3.1-8B with q8_0 keys and q4_0 values: 32 layers x 8 heads x
	// (4 blocks x 34 + 4 blocks x 18) bytes.
	s := paged.KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: paged.KVQ8_0, Value: paged.KVQ4_0}
	got, err := s.TokenBytes()
	require.NoError(t, err)
	assert.Equal(t, int64(32*8*(4*34+4*18)), got)

	// MLA at every type: 61 layers x one row of 576 values.
	for _, typ := range paged.KVTypes() {
		mla := paged.KVSpec{Layers: 61, MLALatent: 512, MLARope: 64, Key: typ}
		row, err := typ.RowBytes(576)
		require.NoError(t, err)
		got, err := mla.TokenBytes()
		require.NoError(t, err, "%v", typ)
		assert.Equal(t, 61*row, got, "%v", typ)
	}
	// q8_0 is 8.5/16 of fp16 and q4_0 4.5/16, exactly, on any whole row.
	fp16 := paged.KVSpec{Layers: 61, MLALatent: 512, MLARope: 64, Key: paged.KVFP16}
	q8 := fp16
	q8.Key = paged.KVQ8_0
	q4 := fp16
	q4.Key = paged.KVQ4_0
	b16, _ := fp16.TokenBytes()
	b8, _ := q8.TokenBytes()
	b4, _ := q4.TokenBytes()
	assert.Equal(t, b16*17/32, b8)
	assert.Equal(t, b16*9/32, b4)
}

func TestKVSpecBlockAndSequence(t *testing.T) {
	s := paged.KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: paged.KVFP16}
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
	require.ErrorIs(t, err, paged.ErrInvalid)
	_, err = s.SequenceBytes(-1, 16)
	require.ErrorIs(t, err, paged.ErrInvalid)
}

func TestKVSpecValidate(t *testing.T) {
	good := paged.KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: paged.KVFP16}
	mla := paged.KVSpec{Layers: 61, MLALatent: 512, MLARope: 64, Key: paged.KVFP16}
	require.NoError(t, good.Validate())
	require.NoError(t, mla.Validate())
	tests := []struct {
		name  string
		edit  func(*paged.KVSpec)
		base  paged.KVSpec
		field string
	}{
		{"zero layers", func(s *paged.KVSpec) { s.Layers = 0 }, good, "Layers"},
		{"negative layers", func(s *paged.KVSpec) { s.Layers = -3 }, good, "Layers"},
		{"huge layers", func(s *paged.KVSpec) { s.Layers = 1 << 20 }, good, "Layers"},
		{"zero heads", func(s *paged.KVSpec) { s.KVHeads = 0 }, good, "KVHeads"},
		{"zero head dim", func(s *paged.KVSpec) { s.HeadDim = 0 }, good, "HeadDim"},
		{"unset key", func(s *paged.KVSpec) { s.Key = paged.KVType{} }, good, "Key"},
		{"bad key", func(s *paged.KVSpec) { s.Key = paged.KVType{Format: 77} }, good, "Key"},
		{"bad value", func(s *paged.KVSpec) { s.Value = paged.KVINT4(5) }, good, "Value"},
		{"head dim not packable", func(s *paged.KVSpec) { s.HeadDim = 96; s.Key = paged.KVINT4(64) }, good, "HeadDim"},
		{"value head dim not packable", func(s *paged.KVSpec) { s.HeadDim = 80; s.Value = paged.KVQ8_0 }, good, "HeadDim"},
		{"latent not packable", func(s *paged.KVSpec) { s.Key = paged.KVINT4(128) }, mla, "MLALatent"},
		{"MLA with heads", func(s *paged.KVSpec) { s.KVHeads = 1 }, mla, "KVHeads"},
		{"MLA zero latent", func(s *paged.KVSpec) { s.MLALatent = 0 }, mla, "MLALatent"},
		{"MLA negative rope", func(s *paged.KVSpec) { s.MLARope = -64 }, mla, "MLA"},
		{"MLA value differs", func(s *paged.KVSpec) { s.Value = paged.KVINT8 }, mla, "Value"},
	}
	for _, tt := range tests {
		s := tt.base
		tt.edit(&s)
		err := s.Validate()
		require.ErrorIs(t, err, paged.ErrInvalid, tt.name)
		assert.Contains(t, err.Error(), tt.field, tt.name)
		_, err = s.TokenBytes()
		require.ErrorIs(t, err, paged.ErrInvalid, tt.name)
	}
}

func TestKVSpecShard(t *testing.T) {
	s := paged.KVSpec{Layers: 80, KVHeads: 8, HeadDim: 128, Key: paged.KVFP16}
	for _, tt := range []struct{ tp, heads int }{{1, 8}, {2, 4}, {8, 1}, {16, 1}, {64, 1}} {
		sh, err := s.Shard(tt.tp)
		require.NoError(t, err)
		assert.Equal(t, tt.heads, sh.KVHeads, "tp %d", tt.tp)
	}
	_, err := s.Shard(3)
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "KVHeads")
	_, err = s.Shard(12) // neither divides the other
	require.ErrorIs(t, err, paged.ErrInvalid)
	_, err = s.Shard(0)
	require.ErrorIs(t, err, paged.ErrInvalid)

	// MLA's latent is replicated on every device.
	mla := paged.KVSpec{Layers: 61, MLALatent: 512, MLARope: 64, Key: paged.KVBF16}
	sh, err := mla.Shard(8)
	require.NoError(t, err)
	assert.Equal(t, mla, sh)
}

func TestKVSpecConfig(t *testing.T) {
	s := paged.KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: paged.KVFP16}
	block := int64(16 * 131_072)
	cfg, err := s.Config(100*block+block/2, 0)
	require.NoError(t, err)
	assert.Equal(t, paged.Config{BlockSize: 16, NumBlocks: 100}, cfg)
	_, err = s.Config(2*block-1, 16)
	require.ErrorIs(t, err, paged.ErrTooSmall)
	_, err = s.Config(-5, 16)
	require.ErrorIs(t, err, paged.ErrTooSmall)
	assert.Contains(t, err.Error(), "holds 0 blocks")
	_, err = s.Config(1<<62, 1)
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.False(t, errors.Is(err, paged.ErrTooSmall))
}

// FuzzParseKVType: any string parses or fails with ErrInvalid, never
// panics; a parsed type round-trips through String and packs its own
// group without a negative size.
func FuzzParseKVType(f *testing.F) {
	for _, s := range []string{"fp16", "int4-g64", "int2_g4", "q8_0", "nvfp4", "int4-g-8", "int4-g99999999999999999999", "fp8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := paged.ParseKVType(s)
		if err != nil {
			require.ErrorIs(t, err, paged.ErrInvalid)
			return
		}
		back, err := paged.ParseKVType(typ.String())
		require.NoError(t, err)
		require.Equal(t, typ, back)
		n := max(typ.GroupSize(), 1) * 3
		b, err := typ.RowBytes(n)
		require.NoError(t, err)
		require.Positive(t, b)
	})
}

// FuzzKVSpec: any shape and type either validates, giving positive sizes,
// or fails with ErrInvalid; nothing panics or goes negative.
func FuzzKVSpec(f *testing.F) {
	f.Add(32, 8, 128, 0, 0, uint8(2), 0, 16)
	f.Add(61, 0, 0, 512, 64, uint8(7), 64, 16)
	f.Add(1<<12, 1<<16, 1<<20, 0, 0, uint8(1), 0, 1<<20)
	f.Fuzz(func(t *testing.T, layers, heads, dim, latent, rope int, format uint8, group, blockSize int) {
		s := paged.KVSpec{Layers: layers, KVHeads: heads, HeadDim: dim, MLALatent: latent, MLARope: rope,
			Key: paged.KVType{Format: paged.KVFormat(format), Group: group}}
		tok, err := s.TokenBytes()
		if err != nil {
			require.ErrorIs(t, err, paged.ErrInvalid)
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
