package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// audit97Weights returns a preset's weight bytes.
func audit97Weights(t *testing.T, model string, wt kvmem.Type) (kvmem.Model, int64) {
	t.Helper()
	m, err := kvmem.LookupModel(model)
	require.NoError(t, err)
	w, err := m.WeightBytes(wt)
	require.NoError(t, err)
	return m, w
}

// TestAudit97SpecTokensCLI: -spec-tokens reaches the plan (each row is
// the library's with Deployment.SpecTokens), the JSON's spec_tokens and
// the header; no test ran the flag.
func TestAudit97SpecTokensCLI(t *testing.T) {
	args := []string{"-model", "llama-3.1-8b", "-gpus", "1", "-gpu-mem", "80GB", "-weights", "bf16", "-kv", "bf16", "-context", "8192", "-block-size", "16"}
	m, w := audit97Weights(t, "llama-3.1-8b", kvmem.BF16)
	none := runPlanJSON(t, args...)
	rep := runPlanJSON(t, append(args, "-spec-tokens", "4")...)
	assert.Equal(t, 4, rep.SpecTokens)
	assert.Zero(t, none.SpecTokens)
	c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w, kvmem.Deployment{GPUs: 1, GPUMemory: 80e9, Reserve: 0.05, SpecTokens: 4})
	require.NoError(t, err)
	require.Len(t, rep.Rows, 1)
	assert.Equal(t, c.SequenceBytes(8192), rep.Rows[0].SequenceBytes)
	assert.Equal(t, c.MaxSequences(8192), rep.Rows[0].MaxSequences)
	// Four drafts past 8,192 tokens take one more block of 16 tokens.
	assert.Equal(t, none.Rows[0].SequenceBytes+16*rep.Rows[0].DeviceBytes, rep.Rows[0].SequenceBytes)

	out, _, err := runPlanOut(t, append(args, "-spec-tokens", "4")...)
	require.NoError(t, err)
	assert.Contains(t, out, "block size 16, 4 draft tokens\n")
	out, _, err = runPlanOut(t, args...)
	require.NoError(t, err)
	assert.NotContains(t, out, "draft tokens")
}

// TestAudit97HeaderFigures: the KV budget, reserve and replicas of a
// planned deployment are the library's, in the JSON and the header; the
// tests had read only the rows and TP/CP.
func TestAudit97HeaderFigures(t *testing.T) {
	args := []string{"-model", "llama-3.1-8b", "-gpus", "8", "-tp", "2", "-gpu-mem", "80GB", "-weights", "bf16", "-kv", "bf16", "-context", "8192"}
	m, w := audit97Weights(t, "llama-3.1-8b", kvmem.BF16)
	d := kvmem.Deployment{GPUs: 8, TP: 2, GPUMemory: 80e9, Reserve: 0.05}
	c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w, d)
	require.NoError(t, err)
	budget, err := d.KVBudget(w)
	require.NoError(t, err)

	rep := runPlanJSON(t, args...)
	assert.Equal(t, 2, rep.TP)
	assert.Equal(t, 1, rep.CP)
	assert.Equal(t, 4, rep.Replicas)
	assert.Equal(t, budget, rep.KVBudget)
	assert.Equal(t, c.ReserveBytes, rep.Reserve)
	assert.Equal(t, int64(4e9), rep.Reserve, "5% of 80 GB")
	assert.Equal(t, c.WeightBytes, rep.DeviceWeights)

	out, _, err := runPlanOut(t, args...)
	require.NoError(t, err)
	assert.Contains(t, out, "devices  8 x 80.0 GB, TP 2, CP 1, 4 replica(s)\n")
	assert.Contains(t, out, "reserve 4.00 GB per device\n")
	assert.Contains(t, out, "KV       "+humanBytes(budget)+" per device;")
}

// TestAudit97WeightsDoNotFitHeader: the header of a deployment whose
// weights do not fit repeats kvmem's defaults (fillDeployment): TP from
// -tp or GPUs/CP, CP, the replicas over TP x CP, the weights rounded up
// per device, the reserve with its bytes. TestPlanWeightsDoNotFit had only
// the default 8 GPUs at TP 8, CP 1 and a weight size that 8 divides.
func TestAudit97WeightsDoNotFitHeader(t *testing.T) {
	_, w := audit97Weights(t, "Kimi-K2", kvmem.BF16)
	for _, tt := range []struct {
		args             []string
		tp, cp, replicas int
		reserve          int64
	}{
		{[]string{"-gpus", "16", "-cp", "2"}, 8, 2, 1, 7_050_000_000},
		{[]string{"-gpus", "8", "-tp", "4"}, 4, 1, 2, 7_050_000_000},
		{[]string{"-gpus", "3"}, 3, 1, 1, 7_050_000_000},
		{[]string{"-gpus", "12", "-tp", "3", "-cp", "2", "-reserve", "4GiB"}, 3, 2, 2, 4 << 30},
	} {
		args := append([]string{"-weights", "bf16", "-kv", "bf16"}, tt.args...)
		out, _, err := runPlanOut(t, append(args, "-json")...)
		require.Error(t, err, "%v", tt.args)
		var rep planReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep), "%v", tt.args)
		assert.False(t, rep.WeightsFit, "%v", tt.args)
		assert.Equal(t, tt.tp, rep.TP, "%v", tt.args)
		assert.Equal(t, tt.cp, rep.CP, "%v", tt.args)
		assert.Equal(t, tt.replicas, rep.Replicas, "%v", tt.args)
		assert.Equal(t, (w+int64(tt.tp)-1)/int64(tt.tp), rep.DeviceWeights, "%v: ceil(weights/TP)", tt.args)
		assert.Equal(t, tt.reserve, rep.Reserve, "%v", tt.args)

		out, _, err = runPlanOut(t, args...)
		require.Error(t, err)
		assert.Contains(t, out, "TP "+strconv.Itoa(tt.tp)+", CP "+strconv.Itoa(tt.cp)+", "+strconv.Itoa(tt.replicas)+" replica(s)", "%v", tt.args)
		assert.Contains(t, err.Error(), "over TP "+strconv.Itoa(tt.tp), "%v", tt.args)
	}
	// 3 does not divide the weights: a device holds the odd byte.
	require.NotZero(t, w%3)
}

// TestAudit97WeightsExactlyFillADevice: weights exactly as large as a
// device fit, so a reserve beside them is what does not: the message
// names -reserve, not -gpu-mem (kvmem refuses weights only past the
// memory).
func TestAudit97WeightsExactlyFillADevice(t *testing.T) {
	_, w := audit97Weights(t, "llama-3.1-8b", kvmem.BF16)
	out, _, err := runPlanOut(t, "-model", "llama-3.1-8b", "-gpus", "1", "-weights", "bf16", "-kv", "bf16",
		"-gpu-mem", strconv.FormatInt(w, 10), "-reserve", "1GB")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fit, but with the reserve (1.00 GB)")
	assert.Contains(t, err.Error(), "lower -reserve")
	assert.Contains(t, out, "DOES NOT FIT")
	// A byte less and the weights themselves do not fit.
	_, _, err = runPlanOut(t, "-model", "llama-3.1-8b", "-gpus", "1", "-weights", "bf16", "-kv", "bf16",
		"-gpu-mem", strconv.FormatInt(w-1, 10), "-reserve", "1GB")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(-gpu-mem): add -gpus")
}

// TestAudit97BadKVWhenWeightsDoNotFit: a -kv type that cannot pack the
// model is an error even when the weights do not fit (buildPlan's
// comment); TestPlanBadInput had it only beside weights that fit, where
// the row's plan fails anyway.
func TestAudit97BadKVWhenWeightsDoNotFit(t *testing.T) {
	out, _, err := runPlanOut(t, "-weights", "bf16", "-kv", "int4-g128")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-kv int4-g128")
	assert.Contains(t, err.Error(), "MLALatent")
	assert.Empty(t, out)
}

// TestAudit97EveryRowTooSmall: when the weights fit but no KV type gets
// two blocks, the header still has the deployment (TP, replicas, the
// weights and reserve per device), the rows show dashes for their
// figures and the reasons follow the table.
func TestAudit97EveryRowTooSmall(t *testing.T) {
	// TestPlanTooFewBlocks' deployment: about 10 MB of KV per device.
	args := []string{"-reserve", "12.69GB", "-kv", "fp32,bf16", "-block-size", "64"}
	_, w := audit97Weights(t, "Kimi-K2", kvmem.FP8E4M3)
	rep := runPlanJSON(t, args...)
	require.Len(t, rep.Rows, 2)
	for _, row := range rep.Rows {
		require.Contains(t, row.Error, "a pool needs 2", row.KV)
	}
	assert.True(t, rep.WeightsFit)
	assert.Equal(t, 8, rep.TP)
	assert.Equal(t, 1, rep.CP)
	assert.Equal(t, 1, rep.Replicas)
	assert.Equal(t, (w+7)/8, rep.DeviceWeights)
	assert.Equal(t, int64(12_690_000_000), rep.Reserve)

	out, _, err := runPlanOut(t, args...)
	require.NoError(t, err)
	assert.Contains(t, out, "TP 8, CP 1, 1 replica(s)")
	assert.Contains(t, out, "reserve 12.7 GB per device")
	var fp32 []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "fp32 ") {
			fp32 = strings.Fields(l)
		}
	}
	assert.Equal(t, []string{"fp32", "140,544", "-", "-", "0", "0", "0", "0"}, fp32)
	assert.Contains(t, out, "\nfp32: "+rep.Rows[0].Error+"\n")
	assert.Contains(t, out, "\nbf16: "+rep.Rows[1].Error+"\n")
	assert.Contains(t, out, "Not one 262,144-token sequence fits")
}

// TestAudit97Summary: the note on the model's context appears only past
// it, and the last line lists whichever side is shorter, the types that
// fit on a tie, and says so when every type fits.
func TestAudit97Summary(t *testing.T) {
	out, _, err := runPlanOut(t, "-model", "opt-13b", "-gpus", "1", "-gpu-mem", "80GB", "-weights", "fp16", "-kv", "fp16", "-context", "2048")
	require.NoError(t, err)
	assert.NotContains(t, out, "Note:")
	assert.Contains(t, out, "Every KV type holds at least one 2,048-token sequence.\n")

	// Kimi K2's default deployment at 256K: int4-g64 fits, bf16 does not.
	out, _, err = runPlanOut(t, "-kv", "bf16,int4-g64")
	require.NoError(t, err)
	assert.Contains(t, out, "A 262,144-token sequence fits only with int4-g64 KV.\n")
	out, _, err = runPlanOut(t, "-kv", "bf16,fp8,int4-g64")
	require.NoError(t, err)
	assert.Contains(t, out, "A 262,144-token sequence fits only with int4-g64 KV.\n")
	out, _, err = runPlanOut(t, "-kv", "bf16,int4-g64,q4_0")
	require.NoError(t, err)
	assert.Contains(t, out, "A 262,144-token sequence fits with every KV type but bf16.\n")
}

// TestAudit97HeaderOptions: the KV line shows a prefill chunk from 2 up,
// and "no hybrid pins" only for a hybrid model (a model that is all full
// attention pins nothing either way).
func TestAudit97HeaderOptions(t *testing.T) {
	args := []string{"-model", "llama-3.1-8b", "-gpus", "1", "-kv", "bf16", "-context", "8192"}
	out, _, err := runPlanOut(t, append(args, "-prefill-chunk", "2")...)
	require.NoError(t, err)
	assert.Contains(t, out, "block size 16, prefill chunk 2\n")
	out, _, err = runPlanOut(t, append(args, "-no-hybrid-pins")...)
	require.NoError(t, err)
	assert.Contains(t, out, "block size 16\n")
	assert.NotContains(t, out, "hybrid pins")
}

// TestAudit97PresetOverrides: -params alone is a custom shape flag (a
// custom model needs the rest of its shape), and with -model it marks the
// preset modified and describes a dense model (active = total);
// -layers replaces a hybrid preset's groups; -kv-heads above a preset's
// query heads raises them; -mla-latent and -mla-rope turn a standard
// preset into MLA. A MoE preset's header shows its active parameters.
func TestAudit97PresetOverrides(t *testing.T) {
	_, _, err := runPlanOut(t, "-params", "8B")
	var ue *usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "-layers 0 must be positive")

	out, _, err := runPlanOut(t, "-model", "mixtral-8x7b", "-gpus", "1", "-gpu-mem", "141GB", "-weights", "bf16", "-kv", "bf16", "-context", "8192")
	require.NoError(t, err)
	assert.Contains(t, out, "params   46.70B, 12.88B active (8 experts, all resident)\n")
	rep := runPlanJSON(t, "-model", "mixtral-8x7b", "-params", "50B", "-gpus", "1", "-gpu-mem", "141GB", "-weights", "bf16", "-kv", "bf16", "-context", "8192")
	assert.Equal(t, "Mixtral-8x7B (modified)", rep.Model)
	assert.Equal(t, int64(50e9), rep.Params)
	assert.Equal(t, int64(50e9), rep.ActiveParams)
	assert.Equal(t, int64(100e9), rep.WeightBytes)
	out, _, err = runPlanOut(t, "-model", "mixtral-8x7b", "-params", "50B", "-gpus", "1", "-gpu-mem", "141GB", "-weights", "bf16", "-kv", "bf16", "-context", "8192")
	require.NoError(t, err)
	assert.Contains(t, out, "params   50.00B\n")

	one := []string{"-model", "gemma-3-27b", "-weights", "bf16", "-gpus", "1", "-kv", "bf16", "-context", "128k"}
	layers := runPlanJSON(t, append(one, "-layers", "62")...)
	groups := runPlanJSON(t, append(one, "-groups", "full:62")...)
	assert.Equal(t, 62, layers.LayersPerBlock)
	assert.Equal(t, groups.Rows, layers.Rows)
	out, _, err = runPlanOut(t, append(one, "-layers", "62")...)
	require.NoError(t, err)
	assert.Contains(t, out, "Gemma-3-27B (modified): 62 layers x 16 KV heads x 128 (32 query heads)")

	out, _, err = runPlanOut(t, "-model", "llama-3.1-8b", "-kv-heads", "64", "-gpus", "1", "-kv", "bf16", "-context", "8192")
	require.NoError(t, err)
	assert.Contains(t, out, "32 layers x 64 KV heads x 128 (64 query heads)")

	mla := []string{"-model", "llama-3.1-8b", "-mla-latent", "512", "-mla-rope", "64", "-gpus", "1", "-kv", "bf16", "-context", "8192"}
	rep = runPlanJSON(t, mla...)
	require.Len(t, rep.Rows, 1)
	assert.Equal(t, int64(32*(512+64)*2), rep.Rows[0].TokenBytes)
	out, _, err = runPlanOut(t, mla...)
	require.NoError(t, err)
	assert.Contains(t, out, "Llama-3.1-8B (modified): MLA, 32 layers x (latent 512 + rope 64)")
}

// TestAudit97ParseEdges: the parsers' bounds and spellings that no test
// reached: a parameter count from 2^62, a capital exponent, "ALL", exactly
// 2^60 bytes, a half byte rounded, a reserve of exactly 1, and a token
// count past 2^40 only once its unit is applied.
func TestAudit97ParseEdges(t *testing.T) {
	for _, bad := range []string{"5e18", "4.7e18"} {
		_, err := parseCount(bad)
		assert.Error(t, err, bad)
	}
	n, err := parseCount("4.6e18")
	require.NoError(t, err)
	assert.Equal(t, int64(4.6e18), n)
	n, err = parseCount("405E9")
	require.NoError(t, err)
	assert.Equal(t, int64(405e9), n)
	b, err := parseBytes("1.5E9")
	require.NoError(t, err)
	assert.Equal(t, int64(1.5e9), b)

	for _, all := range []string{"ALL", " all ", "All"} {
		kv, err := parseKVList(all)
		require.NoError(t, err, all)
		assert.Len(t, kv, len(kvmem.Types()), all)
	}
	rep := runPlanJSON(t, "-kv", "ALL")
	assert.Len(t, rep.Rows, len(kvmem.Types()))

	_, err = parseBytes("1048576TiB") // 2^60
	assert.Error(t, err)
	b, err = parseBytes("1048575TiB")
	require.NoError(t, err)
	assert.Equal(t, int64(1048575)<<40, b)
	for in, want := range map[string]int64{"1.5": 2, "2.5": 3, "0.6": 1, "1.0005kB": 1001} {
		b, err := parseBytes(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, b, in)
	}

	_, _, err = parseReserve("1")
	assert.Error(t, err)
	f, _, err := parseReserve("0.99")
	require.NoError(t, err)
	assert.Equal(t, 0.99, f)

	// 2^40 + 2^20 tokens: past the limit on every platform.
	for _, s := range []string{"1048577M", "1073741825k"} {
		_, err := parseTokens(s)
		assert.Error(t, err, s)
	}
}

// TestAudit97Formatting: humanTokens at exactly 1K, humanCount at exactly
// a million, and a chunked group's chunk in the model line.
func TestAudit97Formatting(t *testing.T) {
	assert.Equal(t, "1K", humanTokens(1024))
	assert.Equal(t, "1,023", humanTokens(1023))
	assert.Equal(t, "1.00M", humanCount(1_000_000))
	assert.Equal(t, "999999", humanCount(999_999))
	out, _, err := runPlanOut(t, "-model", "llama-4-scout", "-gpus", "8", "-gpu-mem", "80GB", "-weights", "bf16", "-kv", "bf16", "-context", "128k")
	require.NoError(t, err)
	assert.Contains(t, out, "48 layers (12 full, 36 chunked 8,192)")
}

// TestAudit97ThreeSignificantDigits: sizes and counts keep three
// significant digits where a value rounds up to the next power of ten
// (a defect found in this round): humanBytes printed 9,996,000,000
// bytes as "10.00 GB" and 999,600 as "1.000 MB", humanCount 999,995,000
// parameters as "1000.00M".
func TestAudit97ThreeSignificantDigits(t *testing.T) {
	for n, want := range map[int64]string{
		999: "999 B", 999_499: "999 kB", 999_500: "1.00 MB", 999_600: "1.00 MB", 999_999_999: "1.00 GB",
		9_994_000_000: "9.99 GB", 9_996_000_000: "10.0 GB", 99_940_000_000: "99.9 GB", 99_960_000_000: "100 GB",
		1_000_000: "1.00 MB", 10e9: "10.0 GB", 100e9: "100 GB",
	} {
		assert.Equal(t, want, humanBytes(n), n)
	}
	for n, want := range map[int64]string{
		999_994_999: "999.99M", 999_995_000: "1.00B", 999_999_999: "1.00B", 1e9: "1.00B",
		999_994_999_999: "999.99B", 999_995_000_000: "1.00T", 999_999_999_999: "1.00T",
	} {
		assert.Equal(t, want, humanCount(n), n)
	}
	// Through the command: a 9.996 GB device is "10.0 GB".
	out, _, err := runPlanOut(t, "-model", "llama-3.1-8b", "-gpus", "1", "-gpu-mem", "9.996GB", "-weights", "int4-g128", "-kv", "bf16", "-context", "8192")
	require.NoError(t, err)
	assert.Contains(t, out, "devices  1 x 10.0 GB, TP 1")
}
