package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit168QuantRefusals: more of kvbench quant's refusals, each a
// usage error naming its own check, over audit 98's one-value study: a
// key type the codecs cannot store though kvmem lays it out (mxfp4,
// which the study would store as float32 and size as mxfp4), and -seqs
// past 2^16 (its query values alone are few). And the two memory bounds
// take exactly 2^30 values, keys of 2^10 tokens x 2^10 KV heads x 2^10
// values and query values of 2^15 queries x 2^15 sequences of one head
// of one value: what refuses those runs is the unknown row named after
// them, before anything is drawn.
func TestAudit168QuantRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-types", "mxfp4/fp16"}, `"mxfp4/fp16"`},
		{[]string{"-seqs", "65537"}, "-seqs 65537"},
		{[]string{"-kv-heads", "1024", "-q-heads", "1024", "-head-dim", "1024", "-lengths", "1024", "-types", "nope"}, `"nope"`},
		{[]string{"-queries", "32768", "-seqs", "32768", "-types", "nope"}, `"nope"`},
	} {
		quantRefused(t, tc.args, tc.want)
	}
}

// TestAudit168QuantPerChannelBlock: a per-channel codec outside KIVI is
// laid out as a group of one block's tokens, whatever -block-size is:
// int4-ch in blocks of 32 costs int4-g32, int2-ch in blocks of 64 int2-g64.
func TestAudit168QuantPerChannelBlock(t *testing.T) {
	r, err := parseQuantRow("int4-ch", 32)
	require.NoError(t, err)
	assert.Equal(t, [2]string{"int4-g32", "int4-g32"}, [2]string{r.keyType, r.valueType})
	r, err = parseQuantRow("int2-ch/fp16", 64)
	require.NoError(t, err)
	assert.Equal(t, [2]string{"int2-g64", "fp16"}, [2]string{r.keyType, r.valueType})
	assert.Equal(t, 64, r.blockSize)
}

// TestAudit168QuantSeed: -seed chooses the draw. Audit 98's one-value
// study gives the same figures for the same seed and others for another.
func TestAudit168QuantSeed(t *testing.T) {
	get := func(seed string) []quantResult {
		var out, errOut bytes.Buffer
		args := append(append([]string(nil), tinyQuant...), "-json", "-seed", seed)
		require.NoError(t, runQuant(args, &out, &errOut), errOut.String())
		var res []quantResult
		require.NoError(t, json.Unmarshal(out.Bytes(), &res))
		require.Len(t, res, 1)
		return res
	}
	one := get("1")
	assert.Equal(t, one, get("1"))
	assert.NotEqual(t, one[0].Errors, get("2")[0].Errors)
}

// TestAudit168TokensLabel: a length is labelled in units of 1,024 tokens
// when it is a multiple of 1,024: 2^20 tokens are 1024K, 43,008 are 42K.
func TestAudit168TokensLabel(t *testing.T) {
	for n, want := range map[int]string{1 << 20: "1024K", 43008: "42K", 1024: "1K", 1000: "1000", 64: "64"} {
		assert.Equal(t, want, tokensLabel(n), "%d", n)
	}
}

// TestAudit168DrawSequences: a draw gives each sequence's K/V whenever it
// is asked, in any order: the last sequence, there already from the
// draw, again after another was drawn over it, and each of the others
// as it was.
func TestAudit168DrawSequences(t *testing.T) {
	cfg := quantConfig{layers: 1, seqs: 3, queries: 1, seed: 5, outliers: "bias"}
	cfg.shape.KVHeads, cfg.shape.QueryHeads, cfg.shape.HeadDim = 2, 2, 8
	d, err := newQuantDraw(cfg, 16)
	require.NoError(t, err)
	type kv struct{ k, v []float32 }
	get := func(s int) kv {
		require.NoError(t, d.seq(s))
		return kv{slices.Clone(d.k), slices.Clone(d.v)}
	}
	first := []kv{2: get(2)}
	first[1], first[0] = get(1), get(0)
	assert.NotEqual(t, first[0], first[1])
	assert.NotEqual(t, first[1], first[2])
	for _, s := range []int{2, 0, 1, 2} {
		assert.Equal(t, first[s], get(s), "sequence %d", s)
	}
}
