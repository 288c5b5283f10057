package main

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit24PlanTokensPastInt: a token count past what int holds is
// refused, not wrapped. Where int has 32 bits (386, arm) "-context 4096M"
// (2^32 tokens) wrapped to 0 and was reported as a missing -context,
// and "-context 4194305k" wrapped to 1,024 tokens and was planned as if
// valid; -groups' fields wrapped the same way ("full:4294967297" was one
// layer).
func TestAudit24PlanTokensPastInt(t *testing.T) {
	for _, s := range []string{"4096M", "4194305k", "4294967296", "1048577M", "1099511627777"} {
		v, err := parseTokens(s)
		if err == nil {
			// Only where int holds it, and then exactly.
			require.Equal(t, 64, strconv.IntSize, "%s parsed as %d", s, v)
			continue
		}
		assert.Contains(t, err.Error(), "at most", s)
	}
	if strconv.IntSize == 32 {
		v, err := parseTokens("2047M")
		require.NoError(t, err)
		assert.Equal(t, 2047<<20, v)
	}
	if strconv.IntSize == 64 {
		v, err := parseTokens("1048576M")
		require.NoError(t, err)
		assert.Equal(t, int64(1)<<40, int64(v))
	}
	big := strconv.FormatInt(int64(math.MaxInt32)+2, 10)
	for _, groups := range []string{"full:" + big, "full:1,window:1:" + big, "full:1,chunked:1:" + big, "full:1,shared:1:" + big, "full:1,state:1:64:" + big} {
		g, err := parseGroups(groups)
		if strconv.IntSize == 64 {
			// An int holds it: the library's range check refuses it.
			require.NoError(t, err, groups)
			continue
		}
		require.Error(t, err, "%s parsed as %+v", groups, g)
		assert.Contains(t, err.Error(), "out of range", groups)
	}
	// Either way the command refuses them with a usage error.
	for _, args := range [][]string{
		{"-model", "llama-3.1-8b", "-context", "4194305k"},
		{"-groups", "full:" + big, "-kv-heads", "8", "-head-dim", "128", "-params", "8B", "-context", "1k"},
		{"-model", "gemma-3-27b", "-groups", "full:10,window:52:" + big, "-context", "1k"},
	} {
		if strconv.IntSize == 64 && args[1] == "llama-3.1-8b" {
			continue // 2^32 + 1,024 tokens plan fine in a 64-bit int
		}
		out, _, err := runPlanOut(t, append(args, "-kv", "bf16")...)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", args)
		assert.Empty(t, out, "%v", args)
	}
}

// TestAudit24PlanSequenceBytesOverflow: a sequence whose bytes pass int64
// (kvmem's Capacity.SequenceBytes returns -1) was printed as "-1 B", a
// size as if valid; the table now says it overflows, and no sequence
// fits.
func TestAudit24PlanSequenceBytesOverflow(t *testing.T) {
	out, _, err := runPlanOut(t, "-layers", "4096", "-kv-heads", "65536", "-head-dim", "1048576", "-kv", "fp32", "-params", "1B",
		"-gpus", "1", "-gpu-mem", "1000000TB", "-context", "1M", "-block-size", "1")
	require.NoError(t, err)
	assert.NotContains(t, out, "-1 B")
	assert.Contains(t, out, "> 2^62 B")
	assert.Contains(t, out, "Not one 1,048,576-token sequence fits")
}

// TestAudit24PlanShapeFlagOverridesOneField: with -model, a shape flag
// overrides its own field (docs/plan.md); -head-dim alone used to zero the
// preset's KV heads, and -mla-rope alone its latent, and the run was
// refused as if the user had given 0.
func TestAudit24PlanShapeFlagOverridesOneField(t *testing.T) {
	rep := runPlanJSON(t, "-model", "llama-3.1-8b", "-head-dim", "64", "-kv", "bf16", "-gpus", "1")
	require.Len(t, rep.Rows, 1)
	assert.Equal(t, int64(32*8*64*2*2), rep.Rows[0].TokenBytes, "32 layers x 8 KV heads x 64 x (K+V) x 2 bytes")
	rep = runPlanJSON(t, "-model", "llama-3.1-8b", "-kv-heads", "4", "-kv", "bf16", "-gpus", "1")
	assert.Equal(t, int64(32*4*128*2*2), rep.Rows[0].TokenBytes)
	rep = runPlanJSON(t, "-model", "deepseek-v3", "-mla-rope", "0", "-kv", "bf16")
	assert.Equal(t, int64(61*512*2), rep.Rows[0].TokenBytes, "the latent stays, the rope goes")
	// Switching kinds needs the other kind's whole shape.
	for _, args := range [][]string{
		{"-model", "deepseek-v3", "-kv-heads", "8"},
		{"-model", "llama-3.1-8b", "-mla-rope", "64"},
	} {
		out, _, err := runPlanOut(t, append(args, "-kv", "bf16")...)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", args)
		assert.Empty(t, out)
	}
	out, _, err := runPlanOut(t, "-model", "llama-3.1-8b", "-kv-heads", "4", "-kv", "bf16", "-gpus", "1")
	require.NoError(t, err)
	assert.Contains(t, out, "4 KV heads x 128 (32 query heads)", "a preset keeps its query heads")
}

// TestAudit24PlanHybridPins: by default kvbench plan charges each
// sequence what paged's default mode pins for it (the window before its
// branch point, two state checkpoints), which a plan used to leave out,
// so that planned sequences sharing short prefixes did not fit
// (kvmem's TestAudit24PlannerMatchesManagerRapid). Gemma-3-27B at 128K on
// one 141 GB GPU: 6 sequences, 7 with -no-hybrid-pins (vLLM's manager, as
// issue 14 counts).
func TestAudit24PlanHybridPins(t *testing.T) {
	one := []string{"-model", "gemma-3-27b", "-weights", "bf16", "-gpus", "1", "-kv", "bf16", "-context", "128k"}
	pins := runPlanJSON(t, one...)
	none := runPlanJSON(t, append(one, "-no-hybrid-pins")...)
	assert.False(t, pins.NoHybridPins)
	assert.True(t, none.NoHybridPins)
	assert.Equal(t, int64(6), pins.Rows[0].MaxSequences)
	assert.Equal(t, int64(7), none.Rows[0].MaxSequences)
	// 52 window layers x 64 blocks of 16 tokens before the branch point,
	// 8,192 bytes per token and layer.
	assert.Equal(t, int64(52*64*16)*8192, pins.Rows[0].SequenceBytes-none.Rows[0].SequenceBytes)
	out, _, err := runPlanOut(t, append(one, "-no-hybrid-pins")...)
	require.NoError(t, err)
	assert.Contains(t, out, "no hybrid pins")
	// A model that is all full attention pins nothing either way.
	a := runPlanJSON(t, "-model", "llama-3.1-8b", "-gpus", "1", "-kv", "bf16", "-context", "128k")
	b := runPlanJSON(t, "-model", "llama-3.1-8b", "-gpus", "1", "-kv", "bf16", "-context", "128k", "-no-hybrid-pins")
	assert.Equal(t, a.Rows, b.Rows)
}
