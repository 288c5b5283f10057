package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// audit50Preset is one preset's figures as its cited config states them,
// written out here independently of models.go.
type audit50Preset struct {
	name                         string
	layers                       int   // num_hidden_layers
	full, window, chunked, state int   // layers by kind (0 if none)
	win, chunk                   int   // sliding_window, attention_chunk_size
	kvHeads, headDim             int   // num_key_value_heads, head_dim
	latent, rope                 int   // MLA: kv_lora_rank, qk_rope_head_dim
	stateBytes                   int64 // per state layer and sequence, BF16
	stateHeads                   int   // heads a state group splits over
	queryHeads, experts, context int   // num_attention_heads, routed experts, max_position_embeddings
	tokenBytes                   int64 // BF16 KV per token over the attention layers
	params                       int64 // exact, when the figure is a stated one (0: not checked here)
	statedParams, statedUnit     int64 // a stated total, rounded down to statedUnit (0: not checked here)
	activeFloorB                 int64 // stated active parameters in billions, rounded down (0: not checked here)
}

// audit50Presets: the figures of every preset, from the configs the
// presets cite (huggingface.co/<org>/<model>/config.json; see models.go).
// Bytes per token are 2 (K and V) x KV heads x head dim x 2 bytes x the
// attention layers, or (latent + rope) x 2 bytes x layers for MLA.
var audit50Presets = []audit50Preset{
	{name: "OPT-13B", layers: 40, full: 40, kvHeads: 40, headDim: 128, queryHeads: 40, context: 2048,
		tokenBytes: 40 * 2 * 40 * 128 * 2},
	{name: "Llama-3.1-8B", layers: 32, full: 32, kvHeads: 8, headDim: 128, queryHeads: 32, context: 131072,
		tokenBytes: 32 * 2 * 8 * 128 * 2},
	{name: "Llama-3.1-70B", layers: 80, full: 80, kvHeads: 8, headDim: 128, queryHeads: 64, context: 131072,
		tokenBytes: 80 * 2 * 8 * 128 * 2},
	{name: "Llama-3-70B", layers: 80, full: 80, kvHeads: 8, headDim: 128, queryHeads: 64, context: 8192,
		tokenBytes: 80 * 2 * 8 * 128 * 2},
	{name: "Mixtral-8x7B", layers: 32, full: 32, kvHeads: 8, headDim: 128, queryHeads: 32, experts: 8, context: 32768,
		tokenBytes: 32 * 2 * 8 * 128 * 2},
	{name: "Qwen2.5-72B", layers: 80, full: 80, kvHeads: 8, headDim: 128, queryHeads: 64, context: 131072,
		tokenBytes: 80 * 2 * 8 * 128 * 2},
	// DeepSeek: "671B total parameters with 37B activated for each token".
	{name: "DeepSeek-V3", layers: 61, full: 61, latent: 512, rope: 64, queryHeads: 128, experts: 256, context: 163840,
		tokenBytes: 61 * (512 + 64) * 2, statedParams: 671, statedUnit: 1e9, activeFloorB: 37},
	// Moonshot: "1 trillion total parameters", "32 billion activated".
	{name: "Kimi-K2", layers: 61, full: 61, latent: 512, rope: 64, queryHeads: 64, experts: 384, context: 262144,
		tokenBytes: 61 * (512 + 64) * 2, statedParams: 1, statedUnit: 1e12, activeFloorB: 32},
	// Alternating sliding and full layers.
	{name: "gpt-oss-120b", layers: 36, full: 18, window: 18, win: 128, kvHeads: 8, headDim: 64, queryHeads: 64, experts: 128, context: 131072,
		tokenBytes: 36 * 2 * 8 * 64 * 2},
	{name: "gpt-oss-20b", layers: 24, full: 12, window: 12, win: 128, kvHeads: 8, headDim: 64, queryHeads: 64, experts: 32, context: 131072,
		tokenBytes: 24 * 2 * 8 * 64 * 2},
	// Layers 6, 12, ..., 60 (1-based) global: 10 of 62.
	{name: "Gemma-3-27B", layers: 62, full: 10, window: 52, win: 1024, kvHeads: 16, headDim: 128, queryHeads: 32, context: 131072,
		tokenBytes: 62 * 2 * 16 * 128 * 2},
	// Layers 4, 8, ..., 48 NoPE with full attention: 12 of 48. The model
	// card: "109B total parameters", "17B active".
	{name: "Llama-4-Scout", layers: 48, full: 12, chunked: 36, chunk: 8192, kvHeads: 8, headDim: 128, queryHeads: 40, experts: 16, context: 10485760,
		tokenBytes: 48 * 2 * 8 * 128 * 2, params: 109_000_000_000, activeFloorB: 17},
	// 12 x (3 Gated DeltaNet + 1 gated attention). State: 32 value heads
	// x 128 x 128 recurrent, plus (kernel 4 - 1) x (128 x (16 + 16 + 32))
	// convolution channels, 2 bytes each; split over the 16 key heads.
	{name: "Qwen3-Next-80B-A3B", layers: 48, full: 12, state: 36, kvHeads: 2, headDim: 256, queryHeads: 16, experts: 512, context: 262144,
		stateBytes: 1_097_728, stateHeads: 16, tokenBytes: 12 * 2 * 2 * 256 * 2},
}

// TestAudit50PresetFiguresMatchSources checks every figure of every preset
// against the number its cited config (or the publisher's stated total)
// gives, written out in audit50Presets: layers by kind, windows, chunks,
// heads, MLA rows, state bytes and heads, query heads, experts, context,
// BF16 bytes per token and per state layer. Before audit 50 nothing
// checked the first eight presets' context, experts or query heads, and
// a one-layer change of gpt-oss-20b or of Qwen3-Next's kinds passed.
func TestAudit50PresetFiguresMatchSources(t *testing.T) {
	require.Len(t, kvmem.Models(), len(audit50Presets), "a preset without figures here")
	for _, w := range audit50Presets {
		m, err := kvmem.LookupModel(w.name)
		require.NoError(t, err)
		s := m.Spec(kvmem.BF16, kvmem.Type{})
		require.NoError(t, s.Validate(), w.name)
		assert.Equal(t, w.layers, s.NumLayers(), "%s: layers", w.name)
		var full, window, chunked, state, win, chunk, stateHeads int
		var stateBytes int64
		for _, g := range s.Groups {
			switch g.Kind {
			case kvmem.Full:
				full += g.Layers
			case kvmem.Window:
				window += g.Layers
				win = g.Window
			case kvmem.Chunked:
				chunked += g.Layers
				chunk = g.Chunk
			case kvmem.State:
				state += g.Layers
				stateBytes, stateHeads = g.StateBytes, g.StateHeads
			}
		}
		if s.Groups == nil {
			full = s.Layers
		}
		assert.Equal(t, [4]int{w.full, w.window, w.chunked, w.state}, [4]int{full, window, chunked, state}, "%s: full, window, chunked, state layers", w.name)
		assert.Equal(t, w.win, win, "%s: window", w.name)
		assert.Equal(t, w.chunk, chunk, "%s: chunk", w.name)
		assert.Equal(t, w.stateBytes, stateBytes, "%s: state bytes", w.name)
		assert.Equal(t, w.stateHeads, stateHeads, "%s: state heads", w.name)
		assert.Equal(t, [4]int{w.kvHeads, w.headDim, w.latent, w.rope}, [4]int{s.KVHeads, s.HeadDim, s.MLALatent, s.MLARope}, "%s: KV heads, head dim, MLA latent, rope", w.name)
		assert.Equal(t, w.queryHeads, m.QueryHeads, "%s: query heads", w.name)
		assert.Equal(t, w.experts, m.Experts, "%s: experts", w.name)
		assert.Equal(t, w.context, m.ContextLen, "%s: context", w.name)
		tb, err := s.TokenBytes()
		require.NoError(t, err, w.name)
		assert.Equal(t, w.tokenBytes, tb, "%s: BF16 bytes per token", w.name)
		if w.params != 0 {
			assert.Equal(t, w.params, m.Params, "%s: parameters", w.name)
		}
		if w.statedUnit != 0 {
			assert.Equal(t, w.statedParams, m.Params/w.statedUnit, "%s: parameters in units of %d", w.name, w.statedUnit)
		}
		if w.activeFloorB != 0 {
			assert.Equal(t, w.activeFloorB, m.ActiveParams/1e9, "%s: active parameters in billions", w.name)
		}
	}
}

// TestAudit50DenseParamsFromConfigs recomputes the parameter counts of
// the OPT, Llama, Mixtral and Qwen2.5 presets from their configs' fields
// (embeddings, attention, MLP or experts, norms, biases, output head),
// as TestHybridPresetParams does for the hybrid ones. Before audit 50
// no test read these counts: a rounded 70B for Llama-3.1-70B or 13B
// active for Mixtral passed.
func TestAudit50DenseParamsFromConfigs(t *testing.T) {
	// A Llama-style decoder: q and o of h x heads*dim, k and v of h x
	// kv*dim (with bias when qkvBias), a gated MLP of three h x inter
	// matrices per expert, a router of h x experts, two RMSNorms per
	// layer, a final norm and untied embeddings.
	llama := func(vocab, h, layers, heads, kv, dim, inter, experts, active int64, qkvBias bool) (total, act int64) {
		attn := 2*h*heads*dim + 2*h*kv*dim
		if qkvBias {
			attn += heads*dim + 2*kv*dim
		}
		router := int64(0)
		if experts > 1 {
			router = h * experts
		}
		mlp := 3 * h * inter
		layer := func(n int64) int64 { return attn + router + n*mlp + 2*h }
		return layers*layer(experts) + 2*vocab*h + h, layers*layer(active) + 2*vocab*h + h
	}
	check := func(name string, total, active int64) {
		t.Helper()
		m := mustModel(t, name)
		assert.Equal(t, total, m.Params, "%s: parameters", name)
		assert.Equal(t, active, m.ActiveParams, "%s: active parameters", name)
	}
	tot, act := llama(128256, 4096, 32, 32, 8, 128, 14336, 1, 1, false)
	check("Llama-3.1-8B", tot, act)
	tot, act = llama(128256, 8192, 80, 64, 8, 128, 28672, 1, 1, false)
	check("Llama-3.1-70B", tot, act)
	check("Llama-3-70B", tot, act)
	tot, act = llama(32000, 4096, 32, 32, 8, 128, 14336, 8, 2, false)
	check("Mixtral-8x7B", tot, act)
	tot, act = llama(152064, 8192, 80, 64, 8, 128, 29568, 1, 1, true)
	check("Qwen2.5-72B", tot, act)

	// OPT: biased projections and MLP, two LayerNorms (weight and bias)
	// per layer and a final one, learned positions of 2048 + 2 (OPT's
	// offset), the output head tied to the embeddings.
	const h, ffn, vocab = 5120, 20480, 50272
	optLayer := int64(4*(h*h+h) + (h*ffn + ffn) + (ffn*h + h) + 2*2*h)
	opt := 40*optLayer + vocab*h + (2048+2)*h + 2*h
	check("OPT-13B", opt, opt)
}
