package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

func TestLookupModel(t *testing.T) {
	for _, name := range []string{"Kimi-K2", "kimi-k2", "Kimi K2", "KIMIK2"} {
		m, err := kvmem.LookupModel(name)
		require.NoError(t, err, name)
		assert.Equal(t, "Kimi-K2", m.Name)
	}
	for _, m := range kvmem.Models() {
		got, err := kvmem.LookupModel(m.Name)
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	m, err := kvmem.LookupModel("llama-3-70b")
	require.NoError(t, err)
	assert.Equal(t, 8192, m.ContextLen, "Llama 3 and 3.1 must not alias")
	for _, bad := range []string{"", "gpt-5", "llama"} {
		_, err := kvmem.LookupModel(bad)
		require.ErrorIs(t, err, kvmem.ErrInvalid, bad)
		assert.Contains(t, err.Error(), "Kimi-K2", "the error lists known models")
	}
}

// TestModelsConsistent checks every preset: a valid 16-bit spec, query heads
// a multiple of KV heads (GQA), active parameters no more than total, and
// MoE flagged where active < total.
func TestModelsConsistent(t *testing.T) {
	models := kvmem.Models()
	require.Len(t, models, 13)
	for _, m := range models {
		s := m.Spec(kvmem.BF16, kvmem.Type{})
		require.NoError(t, s.Validate(), m.Name)
		assert.True(t, m.KV.Key.IsZero() && m.KV.Value.IsZero(), m.Name)
		assert.Positive(t, m.ContextLen, m.Name)
		assert.NotEmpty(t, m.Source, m.Name)
		assert.LessOrEqual(t, m.ActiveParams, m.Params, m.Name)
		assert.Equal(t, m.Experts > 0, m.ActiveParams < m.Params, m.Name)
		if !s.MLA() {
			assert.Zero(t, m.QueryHeads%m.KV.KVHeads, m.Name)
		}
	}
	// Models returns a copy, down to the groups.
	models[0].Name = "changed"
	assert.NotEqual(t, "changed", kvmem.Models()[0].Name)
	g := mustModel(t, "gemma-3-27b")
	g.KV.Groups[1].Window = 1
	g.Spec(kvmem.BF16, kvmem.Type{}).Groups[0].Layers = 99
	assert.Equal(t, 1024, mustModel(t, "gemma-3-27b").KV.Groups[1].Window)
	assert.Equal(t, 10, mustModel(t, "gemma-3-27b").KV.Groups[0].Layers)
}

// TestHybridPresetShapes checks the hybrid presets' layouts against the
// configs they cite: layer counts per kind, windows, chunks, heads.
func TestHybridPresetShapes(t *testing.T) {
	tests := []struct {
		name            string
		layers          int
		groups          []kvmem.Group
		kvHeads, headDm int
	}{
		// 36 layers alternating sliding (even) and full (odd).
		{"gpt-oss-120b", 36, []kvmem.Group{{Kind: kvmem.Full, Layers: 36 / 2}, {Kind: kvmem.Window, Layers: 36 / 2, Window: 128}}, 8, 64},
		{"gpt-oss-20b", 24, []kvmem.Group{{Kind: kvmem.Full, Layers: 24 / 2}, {Kind: kvmem.Window, Layers: 24 / 2, Window: 128}}, 8, 64},
		// Layer i is global when (i+1) % 6 == 0: floor(62/6) of them.
		{"Gemma-3-27B", 62, []kvmem.Group{{Kind: kvmem.Full, Layers: 62 / 6}, {Kind: kvmem.Window, Layers: 62 - 62/6, Window: 1024}}, 16, 128},
		// Every fourth layer is NoPE full attention, the rest chunked.
		{"Llama-4-Scout", 48, []kvmem.Group{{Kind: kvmem.Full, Layers: 48 / 4}, {Kind: kvmem.Chunked, Layers: 48 - 48/4, Chunk: 8192}}, 8, 128},
		// 12 x (3 Gated DeltaNet + 1 gated attention).
		{"Qwen3-Next-80B-A3B", 48, []kvmem.Group{{Kind: kvmem.Full, Layers: 12},
			{Kind: kvmem.State, Layers: 3 * 12, StateBytes: 2 * (32*128*128 + (4-1)*(2*16*128+32*128)), StateHeads: 16}}, 2, 256},
	}
	for _, tt := range tests {
		m := mustModel(t, tt.name)
		assert.Equal(t, tt.groups, m.KV.Groups, tt.name)
		assert.Equal(t, tt.layers, m.KV.NumLayers(), tt.name)
		assert.Equal(t, tt.kvHeads, m.KV.KVHeads, tt.name)
		assert.Equal(t, tt.headDm, m.KV.HeadDim, tt.name)
		assert.True(t, m.KV.Hybrid(), tt.name)
	}
}

// TestHybridPresetParams recomputes the parameter counts of the hybrid
// presets from the config fields their comments cite.
func TestHybridPresetParams(t *testing.T) {
	// gpt-oss: biased attention projections, one sink per head, a router
	// with bias, experts with biased gate_up (2 x intermediate) and down
	// projections, two norms per layer, untied embeddings, a final norm.
	gptOSS := func(layers, experts, active int64) int64 {
		const h, v, q, kv, inter = 2880, 201088, 64 * 64, 8 * 64, 2880
		attn := int64((h*q + q) + 2*(h*kv+kv) + (q*h + h) + 64)
		expert := int64((h*2*inter + 2*inter) + (inter*h + h))
		router := h*experts + experts
		return 2*v*h + layers*(attn+router+active*expert+2*h) + h
	}
	assert.Equal(t, gptOSS(36, 128, 128), mustModel(t, "gpt-oss-120b").Params)
	assert.Equal(t, gptOSS(36, 128, 4), mustModel(t, "gpt-oss-120b").ActiveParams)
	assert.Equal(t, gptOSS(24, 32, 32), mustModel(t, "gpt-oss-20b").Params)
	assert.Equal(t, gptOSS(24, 32, 4), mustModel(t, "gpt-oss-20b").ActiveParams)

	// Gemma 3 27B text: q/k norms, gated MLP, four norms per layer, tied
	// embeddings; plus the report's 417M vision encoder.
	const gh, gv = 5376, 262208
	gAttn := int64(gh*32*128 + 2*gh*16*128 + 32*128*gh + 2*128)
	gemma := 62*(gAttn+3*gh*21504+4*gh) + gv*gh + gh
	assert.Equal(t, gemma+417_000_000, mustModel(t, "gemma-3-27b").Params)

	// Llama 4 Scout text, active: 1 routed + 1 shared expert per layer.
	const lh, lv = 5120, 202048
	lAttn := int64(lh*40*128 + 2*lh*8*128 + 40*128*lh)
	lExpert := int64(3 * lh * 8192)
	assert.Equal(t, 48*(lAttn+2*lExpert+16*lh+2*lh)+2*lv*lh+lh, mustModel(t, "llama-4-scout").ActiveParams)

	// Qwen3-Next: gated attention (q_proj twice as wide), Gated DeltaNet
	// (in_proj_qkvz, in_proj_ba, conv1d, dt_bias, A_log, norm, out_proj),
	// 512 experts + a gated shared expert per layer, untied embeddings.
	qwen := func(experts int64) int64 {
		const h, v = 2048, 151936
		attn := int64(h*16*256*2 + 2*h*2*256 + 16*256*h + 2*256)
		keyDim, valDim := int64(16*128), int64(32*128)
		gdn := h*(2*keyDim+2*valDim) + h*2*32 + (2*keyDim+valDim)*4 + 2*32 + 128 + valDim*h
		expert := int64(3 * h * 512)
		moe := experts*expert + expert + h + 512*h
		return 2*v*h + 12*attn + 36*gdn + 48*(moe+2*h) + h
	}
	assert.Equal(t, qwen(512), mustModel(t, "qwen3-next-80b-a3b").Params)
	assert.Equal(t, qwen(10), mustModel(t, "qwen3-next-80b-a3b").ActiveParams)
}

// TestMoEParams recomputes the parameter counts of the DeepSeek-V3-shaped
// presets from their config fields, so the preset totals cannot drift from
// the architecture they cite: all experts count, not only the active ones.
func TestMoEParams(t *testing.T) {
	type mla struct {
		vocab, hidden, inter, moeInter, layers, dense, heads, experts, active int64
	}
	count := func(c mla, experts int64) int64 {
		const qRank, kvRank, nope, rope, vDim = 1536, 512, 128, 64, 128
		attn := c.hidden*qRank + qRank + qRank*c.heads*(nope+rope) +
			c.hidden*(kvRank+rope) + kvRank + kvRank*c.heads*(nope+vDim) + c.heads*vDim*c.hidden
		expert := 3 * c.hidden * c.moeInter
		moe := experts*expert + expert + c.experts*c.hidden + c.experts // + shared expert, router, bias
		return 2*c.vocab*c.hidden + c.layers*(attn+2*c.hidden) + c.dense*3*c.hidden*c.inter +
			(c.layers-c.dense)*moe + c.hidden
	}
	for name, c := range map[string]mla{
		"DeepSeek-V3": {129280, 7168, 18432, 2048, 61, 3, 128, 256, 8},
		"Kimi-K2":     {163840, 7168, 18432, 2048, 61, 1, 64, 384, 8},
	} {
		m := mustModel(t, name)
		assert.Equal(t, count(c, c.experts), m.Params, name)
		assert.Equal(t, count(c, c.active), m.ActiveParams, name)
		assert.Equal(t, int(c.experts), m.Experts, name)
		assert.Equal(t, int(c.heads), m.QueryHeads, name)
	}
}
