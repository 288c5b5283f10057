package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

func TestLookupModel(t *testing.T) {
	for _, name := range []string{"Kimi-K2", "kimi-k2", "Kimi K2", "KIMIK2"} {
		m, err := paged.LookupModel(name)
		require.NoError(t, err, name)
		assert.Equal(t, "Kimi-K2", m.Name)
	}
	for _, m := range paged.Models() {
		got, err := paged.LookupModel(m.Name)
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	m, err := paged.LookupModel("llama-3-70b")
	require.NoError(t, err)
	assert.Equal(t, 8192, m.ContextLen, "Llama 3 and 3.1 must not alias")
	for _, bad := range []string{"", "gpt-5", "llama"} {
		_, err := paged.LookupModel(bad)
		require.ErrorIs(t, err, paged.ErrInvalid, bad)
		assert.Contains(t, err.Error(), "Kimi-K2", "the error lists known models")
	}
}

// TestModelsConsistent checks every preset: a valid 16-bit spec, query heads
// a multiple of KV heads (GQA), active parameters no more than total, and
// MoE flagged where active < total.
func TestModelsConsistent(t *testing.T) {
	models := paged.Models()
	require.Len(t, models, 8)
	for _, m := range models {
		s := m.Spec(paged.KVBF16, paged.KVType{})
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
	// Models returns a copy.
	models[0].Name = "changed"
	assert.NotEqual(t, "changed", paged.Models()[0].Name)
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
