package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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
	err := runFrag([]string{"-requests", "300", "-sharing-requests", "40", "-progress"}, &out, &errb)
	require.NoError(t, err, errb.String())
	s := out.String()
	for _, want := range []string{"Azure LLM inference trace 2023", "300 requests", "KV budget 15360",
		"max", "pow2", "oracle", "paged/1 ", "paged/16", "paged/256", "20.4%", "96.3%", "internal:", "Sharing", "parallel", "beam", "44.3-66.3%"} {
		assert.Contains(t, s, want)
	}
	assert.Contains(t, errb.String(), "frag: 12/12")
	assert.Contains(t, errb.String(), "sharing beam n=6")
}

func TestFragJSON(t *testing.T) {
	var out bytes.Buffer
	err := runFrag([]string{"-requests", "200", "-models", "paged,oracle", "-block-sizes", "8,32", "-sharing-requests", "0", "-json"}, &out, os.Stderr)
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

func TestFragPlotAndTraceFile(t *testing.T) {
	dir := t.TempDir()
	tr := filepath.Join(dir, "t.csv")
	require.NoError(t, os.WriteFile(tr, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n"+
		"2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:47.0000000,3000,10\n2023-11-16 18:15:48.0000000,900,300\n"), 0o644))
	png := filepath.Join(dir, "frag.png")
	var out bytes.Buffer
	err := runFrag([]string{"-trace", tr, "-plot", png, "-arrivals", "-sharing-requests", "0"}, &out, os.Stderr)
	require.NoError(t, err)
	assert.Contains(t, out.String(), "3 requests")
	assert.Contains(t, out.String(), "1 truncated to 2048")
	assert.Contains(t, out.String(), "arriving by timestamp")
	b, err := os.ReadFile(png)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte("\x89PNG")), "not a PNG")
}

func TestFragBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-models", "lru"},
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
	}
	err := runFrag([]string{"-h"}, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, 1, run([]string{"frag", "-models", "lru"}, &bytes.Buffer{}, &bytes.Buffer{}))
	var out bytes.Buffer
	assert.Equal(t, 0, run([]string{"frag", "-requests", "100", "-sharing-requests", "0", "-models", "max"}, &out, &bytes.Buffer{}))
	assert.True(t, strings.HasPrefix(out.String(), "Fragmentation study"))
}
