package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

func runPlanOut(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runPlan(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func runPlanJSON(t *testing.T, args ...string) planReport {
	t.Helper()
	out, _, err := runPlanOut(t, append(args, "-json")...)
	require.NoError(t, err)
	var rep planReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	return rep
}

// TestPlanDefault checks the no-flag run: Kimi K2, FP8 weights, 8 x 141 GB,
// 256K context, every KV type, each row equal to the library's plan.
func TestPlanDefault(t *testing.T) {
	out, _, err := runPlanOut(t)
	require.NoError(t, err)
	assert.Contains(t, out, "Kimi-K2: MLA, 61 layers x (latent 512 + rope 64)")
	assert.Contains(t, out, "8 x 141 GB, TP 8, CP 1")
	assert.Contains(t, out, "context 262,144 tokens")
	assert.Contains(t, out, "A 262,144-token sequence fits only with int4-g64, q4_0, nvfp4, mxfp4, int2-g32 KV.")
	lines := strings.Split(out, "\n")
	var bf16 string
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "bf16 ") {
			bf16 = l
		}
	}
	// 256K tokens of 70,272 bytes: 18.4 GB per device.
	assert.Equal(t, []string{"bf16", "70,272", "70,272", "18.4", "GB", "5,024", "80,368", "0", "80,368"}, strings.Fields(bf16))

	rep := runPlanJSON(t)
	m, err := kvmem.LookupModel("Kimi-K2")
	require.NoError(t, err)
	w, err := m.WeightBytes(kvmem.FP8E4M3)
	require.NoError(t, err)
	assert.True(t, rep.WeightsFit)
	assert.Equal(t, "fp8_e4m3", rep.Weights)
	assert.Equal(t, 262144, rep.Context)
	assert.Equal(t, int64(141e9), rep.GPUMemory)
	require.Len(t, rep.Rows, len(kvmem.Types()))
	for i, typ := range kvmem.Types() {
		c, err := kvmem.Plan(m.Spec(typ, kvmem.Type{}), w,
			kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: 0.05})
		require.NoError(t, err)
		row := rep.Rows[i]
		assert.Equal(t, typ.String(), row.KV)
		assert.Equal(t, c.TokenBytes, row.TokenBytes, row.KV)
		assert.Equal(t, c.NumBlocks, row.NumBlocks, row.KV)
		assert.Equal(t, c.Tokens(), row.KVTokens, row.KV)
		assert.Equal(t, c.MaxSequences(262144), row.MaxSequences, row.KV)
		assert.Equal(t, c.SequenceBytes(262144), row.SequenceBytes, row.KV)
		assert.Equal(t, c.MaxContext(1), row.LongestContext, row.KV)
	}
}

func TestPlanPresetsAndCustom(t *testing.T) {
	// Llama-3.1-70B on 8 x 80 GB: one KV head per device.
	rep := runPlanJSON(t, "-model", "llama-3.1-70b", "-gpu-mem", "80GB", "-weights", "bf16", "-kv", "bf16", "-context", "128k")
	require.Len(t, rep.Rows, 1)
	assert.Equal(t, int64(327_680), rep.Rows[0].TokenBytes)
	assert.Equal(t, int64(40_960), rep.Rows[0].DeviceBytes)
	assert.Equal(t, 131072, rep.Context)

	// A custom spec equal to Llama-3.1-8B gives the preset's numbers.
	custom := runPlanJSON(t, "-layers", "32", "-kv-heads", "8", "-head-dim", "128", "-params", "8030261248",
		"-gpus", "1", "-gpu-mem", "24GB", "-weights", "bf16", "-kv", "fp16,q8_0", "-context", "8192")
	preset := runPlanJSON(t, "-model", "Llama-3.1-8B",
		"-gpus", "1", "-gpu-mem", "24GB", "-weights", "bf16", "-kv", "fp16,q8_0", "-context", "8192")
	assert.Equal(t, "custom", custom.Model)
	assert.Equal(t, preset.Rows, custom.Rows)
	assert.Equal(t, int64(131_072), custom.Rows[0].TokenBytes)
	assert.Equal(t, int64(32*8*2*4*34), custom.Rows[1].TokenBytes)

	// Different key and value types.
	kv := runPlanJSON(t, "-model", "Llama-3.1-8B", "-gpus", "1", "-gpu-mem", "24GB", "-weights", "bf16",
		"-kv", "q8_0:q4_0,fp16:fp16", "-context", "8192")
	require.Len(t, kv.Rows, 2)
	assert.Equal(t, "q8_0:q4_0", kv.Rows[0].KV)
	assert.Equal(t, int64(32*8*(4*34+4*18)), kv.Rows[0].TokenBytes)
	assert.Equal(t, "fp16", kv.Rows[1].KV)

	// A custom MLA spec.
	mla := runPlanJSON(t, "-layers", "61", "-mla-latent", "512", "-mla-rope", "64", "-params", "671B",
		"-gpus", "8", "-gpu-mem", "141GB", "-kv", "bf16", "-context", "4096")
	assert.Equal(t, int64(70_272), mla.Rows[0].TokenBytes)
	assert.Equal(t, int64(70_272), mla.Rows[0].DeviceBytes)

	// Overriding a preset's shape names it as modified.
	mod := runPlanJSON(t, "-model", "opt-13b", "-layers", "20", "-gpus", "1", "-gpu-mem", "80GB", "-weights", "fp16", "-kv", "fp16")
	assert.Equal(t, "OPT-13B (modified)", mod.Model)
	assert.Equal(t, int64(409_600), mod.Rows[0].TokenBytes)
	assert.Equal(t, 2048, mod.Context)

	// Planning past the model's own limit says so.
	out, _, err := runPlanOut(t, "-model", "opt-13b", "-gpus", "1", "-gpu-mem", "80GB", "-weights", "fp16", "-kv", "fp16", "-context", "4k")
	require.NoError(t, err)
	assert.Contains(t, out, "OPT-13B's config allows 2,048 tokens")
}

// TestPlanContextParallelCLI: CP 2 over 16 GPUs doubles the longest single
// context of 8 GPUs, with the same blocks per device.
func TestPlanContextParallelCLI(t *testing.T) {
	one := runPlanJSON(t, "-kv", "fp8_e4m3")
	cp := runPlanJSON(t, "-kv", "fp8_e4m3", "-gpus", "16", "-cp", "2")
	assert.Equal(t, 8, cp.TP)
	assert.Equal(t, 2, cp.CP)
	assert.Equal(t, one.Rows[0].NumBlocks, cp.Rows[0].NumBlocks)
	assert.Equal(t, 2*one.Rows[0].LongestContext, cp.Rows[0].LongestContext)
	assert.Equal(t, int64(0), one.Rows[0].MaxSequences)
	assert.Equal(t, int64(1), cp.Rows[0].MaxSequences)
}

func TestPlanWeightsDoNotFit(t *testing.T) {
	out, _, err := runPlanOut(t, "-weights", "bf16")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-gpu-mem")
	assert.Contains(t, out, "DOES NOT FIT")
	assert.NotContains(t, out, "bytes/token")

	var buf bytes.Buffer
	err = runPlan([]string{"-weights", "bf16", "-json"}, &buf, &bytes.Buffer{})
	require.Error(t, err)
	var rep planReport
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rep))
	assert.False(t, rep.WeightsFit)
	assert.Empty(t, rep.Rows)
	assert.Equal(t, (rep.WeightBytes+7)/8, rep.DeviceWeights)

	_, _, err = runPlanOut(t, "-reserve", "0.2")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-reserve")
}

// TestPlanTooFewBlocks: the weights fit but a KV type leaves fewer than two
// blocks: that row says so, the others are planned.
func TestPlanTooFewBlocks(t *testing.T) {
	// 128.3 GB of weights per device + 12.69 GB reserve on 141 GB leaves
	// about 10 MB: 9 fp32 blocks of 2.25 MB, under 2 blocks of 64 tokens.
	rep := runPlanJSON(t, "-reserve", "12.69GB", "-kv", "fp32,int2-g32", "-block-size", "64")
	require.Len(t, rep.Rows, 2)
	assert.Contains(t, rep.Rows[0].Error, "a pool needs 2")
	assert.Zero(t, rep.Rows[0].KVTokens)
	assert.Empty(t, rep.Rows[1].Error)
	assert.Positive(t, rep.Rows[1].KVTokens)
}

func TestPlanBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-layers", "0", "-kv-heads", "8", "-head-dim", "128", "-params", "8B"}, "-layers"},
		{[]string{"-layers", "32", "-kv-heads", "8", "-head-dim", "128"}, "-params"},
		{[]string{"-layers", "32", "-kv-heads", "0", "-head-dim", "128", "-params", "8B"}, "-kv-heads"},
		{[]string{"-layers", "32", "-kv-heads", "8", "-head-dim", "100", "-params", "8B", "-kv", "int4-g64", "-context", "4096"}, "HeadDim"},
		{[]string{"-layers", "32", "-kv-heads", "8", "-head-dim", "128", "-params", "8B"}, "-context"},
		{[]string{"-kv", "int4-g128"}, "MLALatent"},
		{[]string{"-kv", "fp5"}, "-kv"},
		{[]string{"-kv", "fp16:fp5"}, "-kv"},
		{[]string{"-kv", "bf16:fp8"}, "Value"}, // MLA stores one row in one type
		{[]string{"-weights", "int3"}, "-weights"},
		{[]string{"-model", "gpt-5"}, "-model"},
		{[]string{"-gpu-mem", "10"}, "-gpu-mem"},
		{[]string{"-gpu-mem", "80XB"}, "-gpu-mem"},
		{[]string{"-gpu-mem", "-80GB"}, "-gpu-mem"},
		{[]string{"-gpu-mem", "10GB"}, "-gpu-mem"}, // weights do not fit
		{[]string{"-reserve", "4"}, "-reserve"},
		{[]string{"-reserve", "1.5"}, "-reserve"},
		{[]string{"-reserve", "-0.1"}, "-reserve"},
		{[]string{"-context", "0"}, "-context"},
		{[]string{"-context", "1.5K"}, "-context"},
		{[]string{"-context", "12x"}, "-context"},
		{[]string{"-gpus", "0"}, "-gpus"},
		{[]string{"-gpus", "8", "-tp", "3"}, "GPUs"},
		{[]string{"-tp", "-1"}, "-tp"},
		{[]string{"-cp", "0"}, "-cp"},
		{[]string{"-block-size", "0"}, "-block-size"},
		{[]string{"-model", "llama-3.1-8b", "-gpus", "6", "-gpu-mem", "80GB"}, "KVHeads"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		out, _, err := runPlanOut(t, tt.args...)
		require.Error(t, err, "%v", tt.args)
		assert.Contains(t, err.Error(), tt.want, "%v", tt.args)
		assert.NotContains(t, out, "bytes/token", "%v printed a table", tt.args)
	}
	_, stderr, err := runPlanOut(t, "-no-such-flag")
	require.Error(t, err)
	assert.Contains(t, stderr, "no-such-flag")
	_, stderr, err = runPlanOut(t, "-h")
	require.True(t, errors.Is(err, flag.ErrHelp))
	assert.Contains(t, stderr, "-gpu-mem")
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"80GB": 80e9, "141GB": 141e9, "141gb": 141e9, "192GiB": 192 << 30, "79.6GiB": 85_469_849_190,
		"1.5TB": 1.5e12, "4Gi": 4 << 30, "512MiB": 512 << 20, "1000": 1000, "2 GB": 2e9,
	} {
		got, err := parseBytes(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "GB", "abc", "0", "-1GB", "80XB", "1e30", "NaNGB"} {
		_, err := parseBytes(bad)
		require.Error(t, err, bad)
	}
}

func TestParseTokensReserveCount(t *testing.T) {
	for in, want := range map[string]int{"262144": 262144, "256K": 262144, "128k": 131072, "1M": 1 << 20, "2048": 2048} {
		got, err := parseTokens(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "0", "-5", "1.5K", "3G", "k"} {
		_, err := parseTokens(bad)
		require.Error(t, err, bad)
	}

	frac, b, err := parseReserve("0.1")
	require.NoError(t, err)
	assert.Equal(t, 0.1, frac)
	assert.Zero(t, b)
	frac, b, err = parseReserve("4GiB")
	require.NoError(t, err)
	assert.Zero(t, frac)
	assert.Equal(t, int64(4<<30), b)
	frac, b, err = parseReserve("0")
	require.NoError(t, err)
	assert.Zero(t, frac+float64(b))

	for in, want := range map[string]int64{"8030261248": 8_030_261_248, "70.6B": 70_600_000_000, "1.03T": 1_030_000_000_000, "405e9": 405e9} {
		got, err := parseCount(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "0", "-1B", "5Q"} {
		_, err := parseCount(bad)
		require.Error(t, err, bad)
	}
}

func TestFormatting(t *testing.T) {
	assert.Equal(t, "141 GB", humanBytes(141e9))
	assert.Equal(t, "7.05 GB", humanBytes(7_050_000_000))
	assert.Equal(t, "1.03 TB", humanBytes(1_026_408_232_448))
	assert.Equal(t, "512 B", humanBytes(512))
	assert.Equal(t, "1.00 kB", humanBytes(1000))
	assert.Equal(t, "1.03T", humanCount(1_026_408_232_448))
	assert.Equal(t, "256K", humanTokens(262144))
	assert.Equal(t, "1,000", humanTokens(1000))
}

// TestPlanHybridCLI checks the targets through the command:
// Gemma-3-27B bf16 on one 141 GB GPU at 128K holds 7 sequences, not the 1
// that counting every layer as full attention gives (-groups full:62), and
// gpt-oss-120b (MXFP4 weights) about twice its all-full count. Each row is
// the library's plan.
func TestPlanHybridCLI(t *testing.T) {
	// The figures, for a manager that pins nothing for hybrid
	// hits (vLLM's); TestAudit24PlanHybridPins has paged's default mode.
	one := []string{"-gpus", "1", "-kv", "bf16", "-context", "128k", "-no-hybrid-pins"}
	gemma := runPlanJSON(t, append([]string{"-model", "gemma-3-27b", "-weights", "bf16"}, one...)...)
	gemmaFull := runPlanJSON(t, append([]string{"-model", "gemma-3-27b", "-weights", "bf16", "-groups", "full:62"}, one...)...)
	require.Len(t, gemma.Rows, 1)
	require.Len(t, gemmaFull.Rows, 1)
	assert.Equal(t, "Gemma-3-27B (modified)", gemmaFull.Model)

	m, err := kvmem.LookupModel("gemma-3-27b")
	require.NoError(t, err)
	w, err := m.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w, kvmem.Deployment{GPUMemory: 141e9, Reserve: 0.05, NoHybridPins: true})
	require.NoError(t, err)
	assert.Equal(t, c.MaxSequences(131072), gemma.Rows[0].MaxSequences)
	assert.Equal(t, c.SequenceBytes(131072), gemma.Rows[0].SequenceBytes)
	assert.Equal(t, c.NumBlocks, gemma.Rows[0].NumBlocks)
	assert.Equal(t, int64(7), gemma.Rows[0].MaxSequences)
	assert.Equal(t, int64(1), gemmaFull.Rows[0].MaxSequences)
	// 10 full layers x 128K + 52 window layers x 65 blocks of 16 tokens,
	// at 8,192 bytes per token and layer; 62 full layers before.
	assert.Equal(t, int64(10*131072+52*65*16)*8192, gemma.Rows[0].SequenceBytes)
	assert.Equal(t, int64(62*131072)*8192, gemmaFull.Rows[0].SequenceBytes)

	oss := runPlanJSON(t, append([]string{"-model", "gpt-oss-120b", "-weights", "mxfp4"}, one...)...)
	ossFull := runPlanJSON(t, append([]string{"-model", "gpt-oss-120b", "-weights", "mxfp4", "-groups", "full:36"}, one...)...)
	ratio := float64(oss.Rows[0].MaxSequences) / float64(ossFull.Rows[0].MaxSequences)
	assert.InDelta(t, 2.0, ratio, 0.2, "%d vs %d", oss.Rows[0].MaxSequences, ossFull.Rows[0].MaxSequences)

	out, _, err := runPlanOut(t, append([]string{"-model", "gemma-3-27b", "-weights", "bf16"}, one...)...)
	require.NoError(t, err)
	assert.Contains(t, out, "Gemma-3-27B: 62 layers (10 full, 52 window 1,024) x 16 KV heads x 128")
	assert.Contains(t, out, "11.2 GB")
	assert.Contains(t, out, "block size 16 tokens x 2 layers")
	assert.Equal(t, 2, gemma.LayersPerBlock, "gcd(10, 52)")
	assert.Equal(t, 62, gemmaFull.LayersPerBlock)
	out, _, err = runPlanOut(t, "-model", "qwen3-next-80b-a3b", "-gpus", "1", "-kv", "fp8", "-context", "128k")
	require.NoError(t, err)
	assert.Contains(t, out, "48 layers (12 full, 36 state of 1.10 MB)")

	// A custom hybrid: a window-only model holds any length.
	win := runPlanJSON(t, "-groups", "window:32:4096", "-kv-heads", "8", "-head-dim", "128", "-params", "7B",
		"-gpus", "1", "-gpu-mem", "80GB", "-weights", "bf16", "-kv", "bf16", "-context", "1M")
	assert.Equal(t, kvmem.Unbounded, win.Rows[0].LongestContext)
	out, _, err = runPlanOut(t, "-groups", "window:32:4096", "-kv-heads", "8", "-head-dim", "128", "-params", "7B",
		"-gpus", "1", "-gpu-mem", "80GB", "-weights", "bf16", "-kv", "bf16", "-context", "1M")
	require.NoError(t, err)
	assert.Contains(t, out, "unbounded")
}

func TestParseGroups(t *testing.T) {
	g, err := parseGroups("full:10, window:52:1024,chunked:36:8192,state:36:1097728:16,shared:4:0,STATE:2:64")
	require.NoError(t, err)
	assert.Equal(t, []kvmem.Group{
		{Kind: kvmem.Full, Layers: 10},
		{Kind: kvmem.Window, Layers: 52, Window: 1024},
		{Kind: kvmem.Chunked, Layers: 36, Chunk: 8192},
		{Kind: kvmem.State, Layers: 36, StateBytes: 1097728, StateHeads: 16},
		{Kind: kvmem.Shared, Layers: 4, Of: 0},
		{Kind: kvmem.State, Layers: 2, StateBytes: 64},
	}, g)
	for _, bad := range []string{"", "full", "full:1:2", "window:4", "window:4:8:1", "mamba:4", "full:x", "state:1:2:3:4", "shared:1"} {
		_, err := parseGroups(bad)
		require.Error(t, err, bad)
	}
	// Range errors are the library's, naming the field.
	for args, want := range map[string]string{
		"window:4:0":        "Window",
		"full:0":            "Layers",
		"state:4:100":       "no full, window or chunked",
		"full:2,shared:1:1": "Of",
	} {
		_, _, err := runPlanOut(t, "-groups", args, "-kv-heads", "8", "-head-dim", "128", "-params", "7B", "-gpus", "1", "-context", "4096")
		require.Error(t, err, args)
		assert.Contains(t, err.Error(), want, args)
	}
	_, _, err = runPlanOut(t, "-model", "gemma-3-27b", "-layers", "4", "-groups", "full:4")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-layers and -groups")
}

// TestPlanModelFlagsExit2: a bad model flag is a usage error (exit code
// 2) like any other bad flag value; the model's flags used to exit 1
// while -gpus 0 or -block-size 0 exited 2.
func TestPlanModelFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-model", "gpt-5"},
		{"-layers", "-1"},
		{"-layers", "8", "-groups", "full:8"},
		{"-groups", "bogus:1"},
		{"-layers", "32", "-kv-heads", "0", "-head-dim", "128", "-params", "8B"},
		{"-mla-latent", "-1", "-layers", "4", "-params", "8B"},
		{"-mla-latent", "512", "-mla-rope", "-1", "-layers", "4", "-params", "8B"},
		{"-layers", "32", "-kv-heads", "8", "-head-dim", "128"},
		{"-params", "0"},
		{"-gpus", "8", "-tp", "16"},
		{"-gpus", "8", "-cp", "16"},
	} {
		var errb bytes.Buffer
		assert.Equal(t, 2, run(append([]string{"plan"}, args...), &bytes.Buffer{}, &errb), "%v: %s", args, errb.String())
	}
}

// TestPlanPrefillChunkCLI checks -prefill-chunk: the figures are the
// library's with Deployment.PrefillChunk, a larger chunk never fits more,
// a whole-prompt chunk counts every window block, and bad values are
// usage errors.
func TestPlanPrefillChunkCLI(t *testing.T) {
	one := []string{"-model", "gemma-3-27b", "-weights", "bf16", "-gpus", "1", "-kv", "bf16", "-context", "128k", "-no-hybrid-pins"}
	m, err := kvmem.LookupModel("gemma-3-27b")
	require.NoError(t, err)
	w, err := m.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	prev := int64(1 << 62)
	for _, chunk := range []string{"1", "2048", "8K", "128k"} {
		rep := runPlanJSON(t, append(one, "-prefill-chunk", chunk)...)
		c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w, kvmem.Deployment{GPUMemory: 141e9, Reserve: 0.05, PrefillChunk: rep.PrefillChunk, NoHybridPins: true})
		require.NoError(t, err)
		assert.Equal(t, c.MaxSequences(131072), rep.Rows[0].MaxSequences, chunk)
		assert.Equal(t, c.SequenceBytes(131072), rep.Rows[0].SequenceBytes, chunk)
		assert.LessOrEqual(t, rep.Rows[0].MaxSequences, prev, chunk)
		prev = rep.Rows[0].MaxSequences
	}
	// A prompt admitted whole holds all of its window blocks: 62 layers x
	// 128K tokens x 8,192 bytes, as if every layer were full attention.
	whole := runPlanJSON(t, append(one, "-prefill-chunk", "128k")...)
	assert.Equal(t, 131072, whole.PrefillChunk)
	assert.Equal(t, int64(62*131072)*8192, whole.Rows[0].SequenceBytes)
	assert.Equal(t, int64(1), whole.Rows[0].MaxSequences)
	// 8,192 tokens a step: 52 window layers x ceil((1024+8192-2)/16)+1 =
	// 577 blocks.
	c8k := runPlanJSON(t, append(one, "-prefill-chunk", "8192")...)
	assert.Equal(t, int64(10*131072+52*577*16)*8192, c8k.Rows[0].SequenceBytes)
	assert.Equal(t, int64(5), c8k.Rows[0].MaxSequences)
	out, _, err := runPlanOut(t, append(one, "-prefill-chunk", "8192")...)
	require.NoError(t, err)
	assert.Contains(t, out, "prefill chunk 8,192")

	for _, bad := range []string{"0", "-5", "x", "2048M"} {
		_, _, err := runPlanOut(t, append(one, "-prefill-chunk", bad)...)
		var ue *usageError
		assert.ErrorAs(t, err, &ue, bad)
	}
}
