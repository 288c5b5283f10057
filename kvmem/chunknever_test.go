package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// TestGemmaLongPromptAdmittedInChunks: Gemma-3-27B (bf16 weights and KV)
// on one 80 GB device at a 131,072-token context with 8,192-token prefill
// chunks, as `kvbench plan -model gemma-3-27b -gpus 1 -gpu-mem 80GB
// -weights bf16 -kv bf16 -context 128k -prefill-chunk 8192` plans it (one
// sequence, 80,670 blocks). Admitted whole the prompt needs 253,952
// blocks; paged.Manager.AdmitChunk used to refuse it as never for that
// reason, though computed 8,192 tokens a step it peaks at 55,936 blocks.
// Now it is admitted and completed chunk by chunk within the pool, Check
// passing after every step.
func TestGemmaLongPromptAdmittedInChunks(t *testing.T) {
	const bs, T, chunk = 16, 131072, 8192
	model, err := kvmem.LookupModel("gemma-3-27b")
	require.NoError(t, err)
	s := model.KV
	s.Key, s.Value = kvmem.BF16, kvmem.BF16
	w, err := model.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	c, err := kvmem.Plan(s, w, kvmem.Deployment{GPUs: 1, GPUMemory: 80e9, Reserve: 0.05, BlockSize: bs, PrefillChunk: chunk})
	require.NoError(t, err)
	require.Equal(t, int64(80670), c.NumBlocks)
	require.Equal(t, int64(1), c.MaxSequences(T))
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: int(c.NumBlocks), Groups: pagedGroups(t, s, bs)})
	require.NoError(t, err)
	p := make([]int32, T)
	for k := range p {
		p[k] = int32(k + 1)
	}
	id, err := m.Add(p, nil)
	require.NoError(t, err)
	a, err := m.CanAdmit(id)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitNever, a, "admitted whole")
	a, err = m.CanAdmitChunk(id, chunk)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitOK, a)
	_, rest, err := m.AdmitChunk(id, chunk, nil)
	require.NoError(t, err)
	for len(rest) > 0 {
		require.NoError(t, m.Check())
		require.NoError(t, m.Append(id, rest[:chunk]...))
		rest = rest[chunk:]
	}
	require.NoError(t, m.Check())
	peak := m.Stats().PeakUsedBlocks
	t.Logf("peak %d blocks of %d usable", peak, c.NumBlocks-1)
	require.LessOrEqual(t, int64(peak), c.NumBlocks-1)
	require.LessOrEqual(t, int64(peak), c.SequenceBytes(T)/mustBlockBytes(t, s, bs))
}

func mustBlockBytes(t *testing.T, s kvmem.Spec, bs int) int64 {
	b, err := s.BlockBytes(bs)
	require.NoError(t, err)
	return b
}
