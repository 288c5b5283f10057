package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestAudit50SpecTakesTheValueType: Model.Spec sets the key and the value
// type it is given. Llama-3.1-8B (32 layers, 8 KV heads of 128) with fp8
// keys and bf16 values stores 32 x 8 x 128 x (1 + 2) = 98,304 bytes a
// token; an unset value type means the key's (65,536 at fp8). A Spec
// that took the key type for both (M457) gave 65,536 for the first.
func TestAudit50SpecTakesTheValueType(t *testing.T) {
	m, err := kvmem.LookupModel("llama-3.1-8b")
	require.NoError(t, err)
	got, err := m.Spec(kvmem.FP8E4M3, kvmem.BF16).TokenBytes()
	require.NoError(t, err)
	assert.Equal(t, int64(98_304), got)
	got, err = m.Spec(kvmem.FP8E4M3, kvmem.Type{}).TokenBytes()
	require.NoError(t, err)
	assert.Equal(t, int64(65_536), got)
}

// TestAudit50ModelsCopiesTheGroups: an edit of the groups of a Models()
// copy reaches neither the next copy nor LookupModel's. Models returning
// the presets' own group slices (M459) passed TestModelsConsistent, which
// edits only a copy's Name and LookupModel's groups.
func TestAudit50ModelsCopiesTheGroups(t *testing.T) {
	first := kvmem.Models()
	for i := range first {
		for j := range first[i].KV.Groups {
			first[i].KV.Groups[j].Layers = 1000
		}
	}
	for _, m := range kvmem.Models() {
		for _, g := range m.KV.Groups {
			assert.NotEqual(t, 1000, g.Layers, m.Name)
		}
	}
	g, err := kvmem.LookupModel("gemma-3-27b")
	require.NoError(t, err)
	assert.Equal(t, 10, g.KV.Groups[0].Layers)
}
