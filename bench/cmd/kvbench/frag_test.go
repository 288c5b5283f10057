package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFragTable(t *testing.T) {
	var out, errb bytes.Buffer
	err := runFrag([]string{"-requests", "300", "-sharing-requests", "40"}, &out, &errb)
	require.NoError(t, err, errb.String())
	s := out.String()
	for _, want := range []string{"Azure LLM inference trace 2023", "300 requests", "KV budget 15360",
		"max", "pow2", "oracle", "buddy", "first-fit", "compact", "paged/1 ", "paged/16", "paged/256", "20.4%", "96.3%",
		"internal:", "Sharing", "parallel", "beam", "44.3-66.3%",
		"Strongest contiguous reservation: ", "On buddy: ", "On first-fit: ", "On compact: "} {
		assert.Contains(t, s, want)
	}
	// The paper's figures sit beside the buddy rows only.
	assert.Equal(t, [3]int{1, 1, 1}, [3]int{strings.Count(s, "20.4%"), strings.Count(s, "26.8%"), strings.Count(s, "38.2%")}, s)
	// Not a terminal: no progress.
	assert.Empty(t, errb.String())
}

// TestFragFooterFollowsTrace: the footer's lengths are the trace's own.
func TestFragFooterFollowsTrace(t *testing.T) {
	tr := filepath.Join(t.TempDir(), "t.csv")
	require.NoError(t, os.WriteFile(tr, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n0,100,300\n1,300,100\n"), 0o644))
	var out bytes.Buffer
	require.NoError(t, runFrag([]string{"-trace", tr, "-sharing-requests", "0", "-block-sizes", "16"}, &out, &bytes.Buffer{}))
	s := out.String()
	assert.Contains(t, s, "This trace: mean prompt 200 tokens, mean output 200")
	assert.Contains(t, s, "the prompt is 50% of a request's final length")
	assert.NotContains(t, s, "1,155")
}

func TestFragJSON(t *testing.T) {
	var out bytes.Buffer
	err := runFrag([]string{"-requests", "200", "-models", "paged,oracle", "-allocators", "buddy", "-block-sizes", "8,32", "-sharing-requests", "0", "-json"}, &out, os.Stderr)
	require.NoError(t, err)
	var got []map[string]any
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		got = append(got, m)
	}
	require.Len(t, got, 3)
	for i, want := range []struct {
		model string
		bs    float64
	}{{"paged", 8}, {"paged", 32}, {"oracle", 0}} {
		assert.Equal(t, want.model, got[i]["model"])
		assert.Equal(t, want.bs, got[i]["block_size"])
		sum := 0.0
		for _, k := range []string{"token_states", "reserved", "internal", "external", "free"} {
			require.Contains(t, got[i], k)
			sum += got[i][k].(float64)
		}
		assert.InDelta(t, 1, sum, 1e-9)
		assert.Positive(t, got[i]["avg_running"])
	}
}

func TestFragTraceFile(t *testing.T) {
	dir := t.TempDir()
	tr := filepath.Join(dir, "t.csv")
	require.NoError(t, os.WriteFile(tr, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n"+
		"2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:47.0000000,3000,10\n2023-11-16 18:15:48.0000000,900,300\n"), 0o644))
	var out bytes.Buffer
	err := runFrag([]string{"-trace", tr, "-arrivals", "-sharing-requests", "0"}, &out, os.Stderr)
	require.NoError(t, err)
	assert.Contains(t, out.String(), "3 requests")
	assert.Contains(t, out.String(), "1 truncated to 2048")
	assert.Contains(t, out.String(), "arriving by timestamp")
}

func TestFragBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-models", "lru"},
		{"-allocators", "best-fit"},
		{"-format", "parquet"},
		{"-block-sizes", "16,0"},
		{"-block-sizes", "x"},
		{"-requests", "-1"},
		{"-kv-tokens", "1000"},
		{"-max-len", "0"},
		{"-step", "0s", "-arrivals"},
		{"-trace", "/nonexistent.csv"},
		{"extra"},
	} {
		var errb bytes.Buffer
		err := runFrag(append(args, "-sharing-requests", "0", "-requests", "50"), &bytes.Buffer{}, &errb)
		if args[0] == "-requests" {
			err = runFrag(args, &bytes.Buffer{}, &errb)
		}
		assert.Error(t, err, "%v", args)
		if args[0] != "-trace" {
			assert.Equal(t, 2, run(append([]string{"frag"}, args...), &bytes.Buffer{}, &bytes.Buffer{}), "%v", args)
		}
	}
	err := runFrag([]string{"-h"}, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, 2, run([]string{"frag", "-models", "lru"}, &bytes.Buffer{}, &bytes.Buffer{}))
	assert.Equal(t, 2, run([]string{"frag", "-no-such-flag"}, &bytes.Buffer{}, &bytes.Buffer{}))
	assert.Equal(t, 1, run([]string{"frag", "-trace", "/nonexistent.csv"}, &bytes.Buffer{}, &bytes.Buffer{}))
	var out bytes.Buffer
	assert.Equal(t, 0, run([]string{"frag", "-requests", "100", "-sharing-requests", "0", "-models", "max"}, &out, &bytes.Buffer{}))
	assert.True(t, strings.HasPrefix(out.String(), "Fragmentation study"))
}

// A budget too small for a sharing group says which study and what to do.
func TestFragSharingTooSmall(t *testing.T) {
	err := runFrag([]string{"-requests", "200", "-models", "paged", "-block-sizes", "16", "-kv-tokens", "4096", "-widths", "6"}, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	for _, want := range []string{"sharing study", "-sharing-requests 0", "-kv-tokens", "parallel sampling of width 6: request 143", "needs 268 blocks"} {
		assert.Contains(t, err.Error(), want)
	}
	// Without the sharing study the same budget runs.
	require.NoError(t, runFrag([]string{"-requests", "200", "-models", "paged", "-block-sizes", "16", "-kv-tokens", "4096", "-sharing-requests", "0"}, &bytes.Buffer{}, &bytes.Buffer{}))
}

// TestBadInputFragWidths: a -widths above sched.MaxSamples is a usage
// error before any run; it used to be found by the sharing study only
// after the whole fragmentation study ran.
func TestBadInputFragWidths(t *testing.T) {
	var out, errb bytes.Buffer
	err := runFrag([]string{"-trace", "/nonexistent.csv", "-widths", "2,65"}, &out, &errb)
	var ue *usageError
	require.True(t, errors.As(err, &ue), "%v", err)
	assert.Contains(t, err.Error(), "65")
	// Without the sharing study the widths do not matter.
	err = runFrag([]string{"-trace", "/nonexistent.csv", "-widths", "65", "-sharing-requests", "0"}, &out, &errb)
	assert.False(t, errors.As(err, &ue), "%v", err)
}
