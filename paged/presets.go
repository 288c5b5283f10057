package paged

import (
	"fmt"
	"strings"
)

// Model is a well-known model's shape for capacity planning: its KV layout
// (types unset; choose them with Spec) and its parameter counts.
type Model struct {
	// Name is the model's usual name, as LookupModel finds it.
	Name string
	// KV is the model's KV layout with Key and Value unset.
	KV KVSpec
	// QueryHeads is the number of attention (query) heads; more than
	// KV.KVHeads means GQA or MQA.
	QueryHeads int
	// Params is the total parameter count: every expert of an MoE, since
	// all of them must be resident even though few are active per token.
	Params int64
	// ActiveParams is the parameters used per token (Params for a dense
	// model).
	ActiveParams int64
	// Experts is the number of routed experts per MoE layer; 0 when dense.
	Experts int
	// ContextLen is the longest context the released config supports
	// (max_position_embeddings).
	ContextLen int
	// Source names the public config the figures were checked against.
	Source string
}

// Spec returns the model's KV layout with the given key and value types
// (value may be unset: the same as key).
func (m Model) Spec(key, value KVType) KVSpec {
	s := m.KV
	s.Key, s.Value = key, value
	return s
}

// WeightBytes returns the bytes of the model's weights stored in type t
// (see KVType.ParamBytes).
func (m Model) WeightBytes(t KVType) (int64, error) { return t.ParamBytes(m.Params) }

// The parameter counts below are computed from each config (embeddings,
// attention, MLP or experts, norms, biases, untied output head) and agree
// with the counts the publishers state; none of the configs was in the
// search index, so the config values are cited from the public files as
// remembered and cross-checked against published totals and per-token KV
// figures (PagedAttention's 800 KB for OPT-13B, Mooncake's 320 KB for
// Llama-3-70B).
var models = []Model{
	{
		// huggingface.co/facebook/opt-13b config.json: num_hidden_layers 40,
		// num_attention_heads 40, hidden_size 5120 (head dim 128), ffn_dim
		// 20480, vocab 50272, max_position_embeddings 2048.
		Name: "OPT-13B", KV: KVSpec{Layers: 40, KVHeads: 40, HeadDim: 128}, QueryHeads: 40,
		Params: 12_853_473_280, ActiveParams: 12_853_473_280, ContextLen: 2048,
		Source: "huggingface.co/facebook/opt-13b/config.json",
	},
	{
		// huggingface.co/meta-llama/Llama-3.1-8B config.json: 32 layers, 32
		// heads, num_key_value_heads 8, hidden 4096 (head dim 128),
		// intermediate 14336, vocab 128256, max_position_embeddings 131072.
		Name: "Llama-3.1-8B", KV: KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128}, QueryHeads: 32,
		Params: 8_030_261_248, ActiveParams: 8_030_261_248, ContextLen: 131072,
		Source: "huggingface.co/meta-llama/Llama-3.1-8B/config.json",
	},
	{
		// huggingface.co/meta-llama/Llama-3.1-70B config.json: 80 layers,
		// 64 heads, 8 KV heads, hidden 8192, intermediate 28672, vocab
		// 128256, max_position_embeddings 131072.
		Name: "Llama-3.1-70B", KV: KVSpec{Layers: 80, KVHeads: 8, HeadDim: 128}, QueryHeads: 64,
		Params: 70_553_706_496, ActiveParams: 70_553_706_496, ContextLen: 131072,
		Source: "huggingface.co/meta-llama/Llama-3.1-70B/config.json",
	},
	{
		// huggingface.co/meta-llama/Meta-Llama-3-70B config.json: the same
		// shape as 3.1 with max_position_embeddings 8192.
		Name: "Llama-3-70B", KV: KVSpec{Layers: 80, KVHeads: 8, HeadDim: 128}, QueryHeads: 64,
		Params: 70_553_706_496, ActiveParams: 70_553_706_496, ContextLen: 8192,
		Source: "huggingface.co/meta-llama/Meta-Llama-3-70B/config.json",
	},
	{
		// huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json: 32 layers,
		// 32 heads, 8 KV heads, hidden 4096, intermediate 14336,
		// num_local_experts 8, num_experts_per_tok 2, vocab 32000,
		// max_position_embeddings 32768.
		Name: "Mixtral-8x7B", KV: KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128}, QueryHeads: 32,
		Params: 46_702_792_704, ActiveParams: 12_879_925_248, Experts: 8, ContextLen: 32768,
		Source: "huggingface.co/mistralai/Mixtral-8x7B-v0.1/config.json",
	},
	{
		// huggingface.co/Qwen/Qwen2.5-72B config.json: 80 layers, 64 heads,
		// 8 KV heads, hidden 8192, intermediate 29568, QKV bias, vocab
		// 152064, max_position_embeddings 131072 (the Instruct config ships
		// 32768 and reaches 131072 with YaRN).
		Name: "Qwen2.5-72B", KV: KVSpec{Layers: 80, KVHeads: 8, HeadDim: 128}, QueryHeads: 64,
		Params: 72_706_203_648, ActiveParams: 72_706_203_648, ContextLen: 131072,
		Source: "huggingface.co/Qwen/Qwen2.5-72B/config.json",
	},
	{
		// huggingface.co/deepseek-ai/DeepSeek-V3 config.json: 61 layers,
		// 128 heads, kv_lora_rank 512, qk_rope_head_dim 64, q_lora_rank 1536,
		// hidden 7168, first_k_dense_replace 3, n_routed_experts 256 of
		// moe_intermediate_size 2048 plus 1 shared, 8 active, vocab 129280,
		// max_position_embeddings 163840. 671B without the 14B
		// multi-token-prediction module, as DeepSeek counts.
		Name: "DeepSeek-V3", KV: KVSpec{Layers: 61, MLALatent: 512, MLARope: 64}, QueryHeads: 128,
		Params: 671_026_419_200, ActiveParams: 37_552_297_472, Experts: 256, ContextLen: 163840,
		Source: "huggingface.co/deepseek-ai/DeepSeek-V3/config.json",
	},
	{
		// huggingface.co/moonshotai/Kimi-K2-Instruct-0905 config.json: the
		// DeepSeek-V3 architecture with 64 heads, first_k_dense_replace 1,
		// n_routed_experts 384, vocab 163840 and max_position_embeddings
		// 262144 (Kimi-K2-Instruct shipped 131072). Moonshot rounds the
		// total to 1T parameters, 32B active.
		Name: "Kimi-K2", KV: KVSpec{Layers: 61, MLALatent: 512, MLARope: 64}, QueryHeads: 64,
		Params: 1_026_408_232_448, ActiveParams: 32_861_500_928, Experts: 384, ContextLen: 262144,
		Source: "huggingface.co/moonshotai/Kimi-K2-Instruct-0905/config.json",
	},
}

// Models returns the presets, a fresh copy each call.
func Models() []Model { return append([]Model(nil), models...) }

// LookupModel returns the preset named name, ignoring case and punctuation
// ("kimi-k2", "Kimi K2" and "kimik2" all match Kimi-K2).
func LookupModel(name string) (Model, error) {
	key := modelKey(name)
	for _, m := range models {
		if modelKey(m.Name) == key {
			return m, nil
		}
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return Model{}, fmt.Errorf("%w: unknown model %q (known: %s)", ErrInvalid, name, strings.Join(names, ", "))
}

// modelKey lowercases name and drops everything but letters and digits.
func modelKey(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}
