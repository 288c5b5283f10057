package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smallQuant is a shape small enough for a test run.
var smallQuant = []string{"-q-heads", "4", "-kv-heads", "2", "-head-dim", "64", "-layers", "2",
	"-lengths", "64,200", "-seqs", "2", "-queries", "2", "-units", "8", "-min-chunk", "32"}

func TestQuantTable(t *testing.T) {
	var out, errOut bytes.Buffer
	args := append(append([]string(nil), smallQuant...), "-types", "fp16,int8,int4-g32,kivi-int4-g32,int2-g32,q8_0/q4_0")
	require.NoError(t, runQuant(args, &out, &errOut), errOut.String())
	for _, want := range []string{"err @64", "err @200", "kivi-int4-g32", "int4-ch", "q8_0/q4_0"} {
		assert.Contains(t, out.String(), want)
	}
}

// TestQuantJSON: fewer bits cost accuracy, and the bytes follow the layout.
func TestQuantJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	args := append(append([]string(nil), smallQuant...), "-json",
		"-types", "fp16,fp8_e4m3,int8,int4-g32,int2-g32,kivi-int2-g32")
	require.NoError(t, runQuant(args, &out, &errOut), errOut.String())
	var res []quantResult
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	require.Len(t, res, 6)
	byType := map[string]quantResult{}
	for _, r := range res {
		byType[r.Type] = r
		require.Len(t, r.Errors, 2)
		for _, e := range r.Errors {
			assert.Positive(t, e.Mean, r.Type)
			assert.LessOrEqual(t, e.Mean, e.P99, r.Type)
			assert.LessOrEqual(t, e.P99, e.Max, r.Type)
		}
	}
	// 2 layers x 2 heads x (K + V) x 64 values.
	assert.Equal(t, int64(2*2*2*64*2), byType["fp16"].BytesPerToken)
	assert.Equal(t, int64(2*2*2*(64+2)), byType["int8"].BytesPerToken)
	assert.Equal(t, int64(2*2*2*2*(16+4)), byType["int4-g32"].BytesPerToken)
	assert.InDelta(t, 0.5, byType["fp8_e4m3"].SavedVsFP16, 1e-12)
	for i := range 2 {
		e := func(name string) float64 { return byType[name].Errors[i].Mean }
		assert.Less(t, e("fp16"), e("int8"))
		assert.Less(t, e("int8"), e("int4-g32"))
		assert.Less(t, e("int4-g32"), e("int2-g32"))
		// Keys with outlier channels: per-channel keys (KIVI) beat per-token.
		assert.Less(t, e("kivi-int2-g32"), e("int2-g32"))
	}
}

func TestQuantBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-lengths", "0"},
		{"-types", "int3-g32"},
		{"-types", "kivi-int4"},
		{"-types", "kivi-int4-g9999"},
		{"-q-heads", "6", "-kv-heads", "4"},
		{"-seqs", "0"},
		{"-outliers", "none"},
		{"-types", "q8_0", "-head-dim", "48"},
	} {
		var out, errOut bytes.Buffer
		err := runQuant(args, &out, &errOut)
		require.Error(t, err, strings.Join(args, " "))
		require.Equal(t, 2, run(append([]string{"quant"}, args...), &out, &errOut), "bad flags exit 2: %s", strings.Join(args, " "))
	}
}

var updateGolden = flag.Bool("update-quant", false, "rewrite the quant golden files in testdata")

// TestQuantGolden pins every figure of the quant study, at a small shape
// with every default type, to the bit: the JSON carries each float in full,
// the table is what users read. Speed work on the codecs, the attention or
// the study's scheduling must leave both unchanged; a deliberate change of
// the numerics regenerates them with -update-quant and says why in its commit.
func TestQuantGolden(t *testing.T) {
	// A group of 5 query heads takes both paths of the attention's
	// four-head kernels; 200 tokens end in a partial block.
	small := []string{"-q-heads", "10", "-kv-heads", "2", "-head-dim", "128", "-layers", "2",
		"-lengths", "64,200", "-seqs", "2", "-queries", "2", "-units", "8", "-min-chunk", "32"}
	for _, tc := range []struct {
		file string
		args []string
	}{
		{"quant_small.txt", nil},
		{"quant_small.json", []string{"-json"}},
		{"quant_small_spread.json", []string{"-json", "-outliers", "spread", "-seqs", "3", "-queries", "1"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.NoError(t, runQuant(append(append([]string(nil), small...), tc.args...), &out, &errOut), errOut.String())
			path := filepath.Join("testdata", tc.file)
			if *updateGolden {
				require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), out.String())
		})
	}
}

// TestQuantHugeMinChunk: a -min-chunk longer than any context means one
// chunk, whatever its size. Rounding it up to blocks used to overflow for
// values near MaxInt, and the study failed with "minChunkBlocks
// -576460752303423487 must be at least 1".
func TestQuantHugeMinChunk(t *testing.T) {
	args := []string{"-lengths", "1024", "-seqs", "1", "-queries", "1", "-types", "q8_0", "-json", "-min-chunk"}
	var want, got, errOut bytes.Buffer
	require.NoError(t, runQuant(append(args, "100000000"), &want, &errOut))
	require.NoError(t, runQuant(append(args, strconv.Itoa(math.MaxInt)), &got, &errOut))
	require.Equal(t, want.String(), got.String())
}

// TestQuantHugeShapesAreUsageErrors: -q-heads, -seqs and -queries so large
// that the study's buffer sizes overflow are usage errors. -q-heads 2^62
// used to wrap queries x group x head dim to 0 and panic in
// attention.Dense ("slice bounds out of range").
func TestQuantHugeShapesAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-q-heads", "4611686018427387904", "-kv-heads", "8"},
		{"-q-heads", "131072", "-kv-heads", "8"},
		{"-queries", "4611686018427387904"},
		{"-seqs", "4611686018427387904"},
	} {
		var errb bytes.Buffer
		args = append([]string{"quant", "-lengths", "64", "-types", "q8_0"}, args...)
		assert.NotPanics(t, func() {
			assert.Equal(t, 2, run(args, &bytes.Buffer{}, &errb), "%v: %s", args, errb.String())
		}, "%v", args)
	}
}
