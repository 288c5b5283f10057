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
