package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
)

func TestHybridJSONAndTable(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"-requests", "200", "-blocks", "1024", "-windows", "1,128", "-workers", "2"}
	require.NoError(t, runHybrid(append(args, "-json"), &out, &errb))
	sc := bufio.NewScanner(&out)
	var rows []map[string]any
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		rows = append(rows, row)
	}
	require.Len(t, rows, 5)
	assert.Equal(t, "Qwen3-Next-80B-A3B", rows[2]["state_model"])
	// The layouts of several kinds: vLLM's column says it cannot run them.
	for i, name := range []string{"full + window 128 + state 34", "full + window 128 + window 1024"} {
		row := rows[3+i]
		assert.Equal(t, name, row["layout"])
		assert.Equal(t, bench.HybridVLLMRefused, row["vllm_refused"])
		assert.NotContains(t, row, "vllm_admitted_hit_tokens", "no figure for a layout vLLM cannot run")
		assert.Positive(t, row["default_admitted_hit_tokens"])
		assert.Contains(t, row, "w1_vllm_admitted_hit_tokens")
	}
	assert.EqualValues(t, 0, rows[2]["vllm_admitted_hit_tokens"], "vLLM caches no state")
	assert.EqualValues(t, 3, rows[2]["state_groups"])
	// vLLM's own manager on W1-H, --sliding-window=1 --requests=200
	// --blocks=1024 (bench/overhead_hybrid_test.go).
	assert.EqualValues(t, 1, rows[0]["window"])
	assert.EqualValues(t, 4928, rows[0]["vllm_admitted_hit_tokens"])
	for _, k := range []string{"default_admitted_hit_tokens", "default_first_hit_tokens", "default_resume_hit_tokens",
		"default_share_of_w1_vllm", "vllm_share_of_w1_default", "w1_vllm_admitted_hit_tokens", "w1_default_admitted_hit_tokens"} {
		assert.Contains(t, rows[1], k)
	}

	out.Reset()
	require.NoError(t, runHybrid(args, &out, &errb))
	assert.Contains(t, out.String(), "vLLM v1 (compat")
	assert.Contains(t, out.String(), "    128 |")
	assert.Contains(t, out.String(), "  state |")
	assert.Contains(t, out.String(), " layout |                  n/a (below) |")
	assert.Contains(t, out.String(), "(full + window 128 + window 1024; vLLM v1 at f20c3b0: n/a: one kind besides full attention)")
	out.Reset()
	require.NoError(t, runHybrid([]string{"-requests", "50", "-windows", "", "-json", "-multikind=false"}, &out, &errb))
	assert.Equal(t, 1, strings.Count(out.String(), "\n"), "the state row only")
	out.Reset()
	require.NoError(t, runHybrid([]string{"-requests", "50", "-windows", "", "-state-models", "", "-json"}, &out, &errb))
	assert.Equal(t, 2, strings.Count(out.String(), "\n"), "the layouts only")
}

func TestHybridFlagErrors(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{
		{"-windows", "0"}, {"-windows", "a,8"}, {"-windows", "", "-state-models", "", "-multikind=false"}, {"-multikind=maybe"},
		{"-requests", "0"}, {"-blocks", "-1"}, {"-workers", "0"}, {"extra"}, {"-plot", "x.png"},
	} {
		var ue *usageError
		assert.ErrorAs(t, runHybrid(args, &out, &errb), &ue, "%v: a usage error (exit code 2)", args)
	}
	assert.Error(t, runHybrid([]string{"-state-models", "nope"}, &out, &errb))
	assert.ErrorIs(t, runHybrid([]string{"-h"}, &out, &errb), flag.ErrHelp)
}
