package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOverheadJSONMatchesVLLM(t *testing.T) {
	var out, errb bytes.Buffer
	require.NoError(t, runOverhead([]string{"-compat", "vllm", "-digest", "-json"}, &out, &errb))
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	want := map[string]float64{
		"steps": 4440, "preemptions": 351, "admissions": 2351, "tokens_processed": 2393192,
		"prefill_tokens": 1865736, "resumed_prefill_tokens": 137515, "decode_tokens": 527456,
		"prefix_hit_tokens": 2607936, "prefix_query_tokens": 10855911, "prefix_lookups": 6193,
		"admitted_hit_tokens": 756976, "admitted_query_tokens": 2622712,
		"peak_blocks_in_use": 8191, "peak_running": 207,
		"calls.allocate_slots_decode": 527807, "calls.allocate_slots_admit": 6193,
	}
	for k, v := range want {
		assert.EqualValues(t, v, got[k], k)
	}
	assert.Equal(t, vllmDigest, got["alloc_digest_sha256"])
	for _, k := range []string{"manager_ns", "manager_ns_per_token", "manager_us_per_step", "wall_ns_per_token", "timer_overhead_ns_per_call"} {
		assert.Contains(t, got, k)
	}
}

func TestOverheadSummaryAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	require.NoError(t, runOverhead([]string{"-requests", "50", "-digest"}, &out, &errb))
	assert.Contains(t, out.String(), "workload W1: 50 requests")
	assert.Contains(t, out.String(), "differs from vLLM's")
	last := out.String()[strings.LastIndex(strings.TrimRight(out.String(), "\n"), "\n")+1:]
	var row map[string]any
	require.NoError(t, json.Unmarshal([]byte(last), &row), "the summary ends with the JSON line")
	assert.EqualValues(t, 50, row["finished"])
	assert.Error(t, runOverhead([]string{"-requests", "0"}, &out, &errb))
	assert.Error(t, runOverhead([]string{"-compat", "x"}, &out, &errb))
	assert.Error(t, runOverhead([]string{"-repeat", "0"}, &out, &errb))
	assert.Error(t, runOverhead([]string{"-policy", "nope"}, &out, &errb))
	assert.Error(t, runOverhead([]string{"-compat", "vllm", "-policy", "arc"}, &out, &errb))
	out.Reset()
	require.NoError(t, runOverhead([]string{"-requests", "50", "-policy", "leaflru"}, &out, &errb))
	assert.Contains(t, out.String(), "policy leaflru")
	assert.ErrorIs(t, runOverhead([]string{"-h"}, &out, &errb), flag.ErrHelp)
}

// TestOverheadCombinedKinds: -window, -chunk and -state combine in the
// default mode, with the same JSON keys as W1; -compat vllm refuses a
// combination with a usage error (exit code 2), as vLLM v1 at f20c3b0
// takes one kind besides full attention, and still runs one.
func TestOverheadCombinedKinds(t *testing.T) {
	var out, errb bytes.Buffer
	base := []string{"overhead", "-requests", "100", "-blocks", "1024"}
	require.Equal(t, 0, run(append(base, "-json"), &out, &errb), errb.String())
	var w1 map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &w1))
	for _, combo := range [][]string{
		{"-window", "128", "-state", "34"},
		{"-window", "128", "-chunk", "512"},
		{"-chunk", "512", "-state", "34"},
		{"-window", "128", "-chunk", "512", "-state", "34"},
	} {
		out.Reset()
		errb.Reset()
		require.Equal(t, 0, run(append(append(base, combo...), "-json"), &out, &errb), "%v: %s", combo, errb.String())
		var got map[string]any
		require.NoError(t, json.Unmarshal(out.Bytes(), &got), "%v", combo)
		assert.Len(t, got, len(w1), "%v: W1's keys", combo)
		for k := range w1 {
			assert.Contains(t, got, k, "%v", combo)
		}
		assert.EqualValues(t, 100, got["finished"], "%v", combo)

		errb.Reset()
		assert.Equal(t, 2, run(append(append(base, "-compat", "vllm"), combo...), &out, &errb), "%v with -compat vllm", combo)
		assert.Contains(t, errb.String(), "one kind besides full attention", "%v", combo)
	}
	out.Reset()
	require.Equal(t, 0, run(append(base, "-window", "128", "-state", "34"), &out, &errb), errb.String())
	assert.Contains(t, out.String(), "W1-H (a full-attention group, a 128-token sliding-window group, a state group of 34 blocks per sequence)")
	for _, one := range [][]string{{"-window", "128"}, {"-chunk", "512"}, {"-state", "34"}} {
		out.Reset()
		assert.Equal(t, 0, run(append(append(base, "-compat", "vllm", "-json"), one...), &out, &errb), "%v with -compat vllm", one)
	}
	for _, bad := range [][]string{{"-window", "-1", "-state", "34"}, {"-state", "1024"}, {"-chunk", "-5"}} {
		assert.Equal(t, 2, run(append(base, bad...), &out, &errb), "%v", bad)
	}
}
