package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/sched"
)

// audit100Lines decodes JSON lines.
func audit100Lines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var rows []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		rows = append(rows, m)
	}
	return rows
}

// audit100File writes content to name in a temporary directory.
func audit100File(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// audit100Usage tells whether err is a usage error (exit code 2).
func audit100Usage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

const audit100Azure = "TIMESTAMP,ContextTokens,GeneratedTokens\n0,100,300\n1,300,100\n2,3000,10\n"

// TestAudit100FragFlagBounds: parseFrag's bounds, each at its edge.
func TestAudit100FragFlagBounds(t *testing.T) {
	ok := func(args ...string) fragOptions {
		t.Helper()
		o, err := parseFrag(args, &bytes.Buffer{})
		require.NoError(t, err, "%v", args)
		return o
	}
	bad := func(args ...string) {
		t.Helper()
		_, err := parseFrag(args, &bytes.Buffer{})
		assert.True(t, audit100Usage(err), "%v: %v", args, err)
	}
	// The most samples a request may have is a width, one more is not.
	assert.Equal(t, []int{sched.MaxSamples}, ok("-widths", strconv.Itoa(sched.MaxSamples)).widths)
	bad("-widths", strconv.Itoa(sched.MaxSamples+1))
	// Bad widths matter as soon as the sharing study runs a request.
	bad("-widths", "x", "-sharing-requests", "1")
	bad("-widths", "0", "-sharing-requests", "1")
	ok("-widths", "x", "-sharing-requests", "0")
	bad("-sharing-requests", "-1")
	ok("-max-len", "2048", "-kv-tokens", "2048")
	bad("-max-len", "2048", "-kv-tokens", "2047")
	ok("-block-sizes", "16,15360", "-kv-tokens", "15360")
	bad("-block-sizes", "16,15361", "-kv-tokens", "15360")
	bad("-block-sizes", "16,30720", "-kv-tokens", "15360")
	// A zero step is refused with or without -arrivals.
	bad("-step", "0s")
	ok("-step", "1ns")
}

// TestAudit100FragOnTraceFile: -requests 1 is one request; the sharing
// study runs on the requests the trace has, says so, and its prompt share
// is over its own requests; the footer's prompt share is after
// truncation; JSON rows carry the right fields.
func TestAudit100FragOnTraceFile(t *testing.T) {
	tr := audit100File(t, "t.csv", audit100Azure)
	var out bytes.Buffer
	require.NoError(t, runFrag([]string{"-trace", tr, "-requests", "1", "-models", "oracle,paged", "-allocators", "buddy", "-block-sizes", "16",
		"-sharing-requests", "0", "-json"}, &out, &bytes.Buffer{}))
	rows := audit100Lines(t, out.Bytes())
	require.Len(t, rows, 2)
	for _, r := range rows {
		assert.EqualValues(t, 1, r["requests"], "%v", r)
	}
	assert.Equal(t, "buddy", rows[0]["allocator"])
	assert.NotContains(t, rows[1], "allocator", "a paged row has no allocator")

	// The default -sharing-requests (1000) on a trace of three requests.
	out.Reset()
	args := []string{"-trace", tr, "-models", "oracle,paged", "-allocators", "buddy", "-block-sizes", "16", "-widths", "2"}
	require.NoError(t, runFrag(args, &out, &bytes.Buffer{}))
	s := out.String()
	assert.Contains(t, s, "first 3 requests;")
	assert.Regexp(t, regexp.MustCompile(`paged/16\s+blocks\s`), s)
	// Prompts after truncation to 2,048: (100+300+2047)/(400+400+2048).
	assert.Contains(t, s, "the prompt is 86% of a request's final length")
	out.Reset()
	require.NoError(t, runFrag(append(args, "-json"), &out, &bytes.Buffer{}))
	var sharing int
	for _, r := range audit100Lines(t, out.Bytes()) {
		if r["study"] == "sharing" {
			sharing++
			assert.EqualValues(t, 3, r["requests"], "%v", r)
			assert.EqualValues(t, 2, r["width"], "%v", r)
		}
	}
	assert.Equal(t, 2, sharing)

	// The sharing footer's prompt share is its first request's, 100/400.
	out.Reset()
	require.NoError(t, runFrag(append(args, "-sharing-requests", "1"), &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "first 1 requests;")
	assert.Contains(t, out.String(), "Every output shares its prompt, 25% of a request's final length")
}

// TestAudit100FragVerdict: the verdict's paged run (16-token blocks over a
// better other size), the strongest contiguous run, the order lines and
// which allocators get one.
func TestAudit100FragVerdict(t *testing.T) {
	res := []bench.FragResult{
		{Model: bench.ModelPaged, BlockSize: 8, TokenStates: 0.9},
		{Model: bench.ModelPaged, BlockSize: 16, TokenStates: 0.8},
		{Model: bench.ModelPaged, BlockSize: 32, TokenStates: 0.85},
		{Model: bench.ModelMax, Allocator: bench.AllocBuddy, TokenStates: 0.2},
		{Model: bench.ModelPow2, Allocator: bench.AllocBuddy, TokenStates: 0.3},
		{Model: bench.ModelOracle, Allocator: bench.AllocBuddy, TokenStates: 0.6},
		{Model: bench.ModelMax, Allocator: bench.AllocFirstFit, TokenStates: 0.5},
		{Model: bench.ModelOracle, Allocator: bench.AllocFirstFit, TokenStates: 0.4},
		{Model: bench.ModelOracle, Allocator: bench.AllocCompact, TokenStates: 0.1},
	}
	got := strings.Join(fragVerdict(res), "\n")
	assert.Contains(t, got, "Strongest contiguous reservation: oracle/buddy, 60.0% token states")
	assert.Contains(t, got, "paged/16: 80.0%")
	assert.Contains(t, got, "holds here, by 20.0 points")
	assert.Contains(t, got, "On buddy: max 20.0% < pow2 30.0% < oracle 60.0% (the paper's order).")
	assert.Contains(t, got, "On first-fit: oracle 40.0% < max 50.0% (not the paper's Max < Pow2 < Oracle).")
	assert.NotContains(t, got, "On compact", "one model is no order")

	// Without a 16-token run the best paged size stands for paged.
	got = strings.Join(fragVerdict([]bench.FragResult{res[0], res[2], res[5]}), "\n")
	assert.Contains(t, got, "paged/8: 90.0%")
	assert.Contains(t, got, "holds here, by 30.0 points")
	got = strings.Join(fragVerdict([]bench.FragResult{res[8], res[5], res[1]}), "\n")
	assert.Contains(t, got, "oracle/buddy, 60.0%")
}

// TestAudit100CacheFlags: bounds and spellings of kvbench cache's flags.
func TestAudit100CacheFlags(t *testing.T) {
	usage := func(args ...string) error {
		var out bytes.Buffer
		return runCache(append([]string{"-trace", "/nonexistent/x.jsonl", "-policies", "lru", "-capacity-tokens", "51200"}, args...), &out, &bytes.Buffer{})
	}
	for _, bad := range [][]string{{"-queue-load", "1e7"}, {"-host-tokens", "0x"}} {
		err := usage(bad...)
		assert.True(t, audit100Usage(err), "%v: %v", bad, err)
		assert.Contains(t, err.Error(), bad[0])
	}
	moon := audit100File(t, "t.jsonl", `{"timestamp": 0, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 5, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 9, "input_length": 1536, "output_length": 5, "hash_ids": [1, 2, 3]}
`)
	// A pin share of the whole pool, host tokens with underscores, a
	// trailing comma in the capacities.
	row := lruRow(t, "-trace", moon, "-queue-load", "1", "-pin-share", "1")
	assert.Equal(t, 3.0, row["requests"])
	row = lruRow(t, "-trace", moon, "-host-tokens", "1_024")
	assert.Equal(t, 1024.0, row["host_tokens"])
	var out bytes.Buffer
	require.NoError(t, runCache([]string{"-trace", moon, "-policies", "lru", "-capacity-tokens", "51200,", "-json"}, &out, &bytes.Buffer{}))
	assert.Len(t, audit100Lines(t, out.Bytes()), 1)
	// -limit 1 replays one request.
	row = lruRow(t, "-trace", moon, "-skip", "1", "-limit", "1")
	assert.Equal(t, 1.0, row["requests"])
}

// TestAudit100CacheTable: the table's header names the requests replayed
// (1-based), the host tier of a fixed -host-tokens, and the largest count
// of oversize requests over the capacities.
func TestAudit100CacheTable(t *testing.T) {
	moon := audit100File(t, "t.jsonl", `{"timestamp": 0, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 5, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 9, "input_length": 1536, "output_length": 5, "hash_ids": [1, 2, 3]}
`)
	var out bytes.Buffer
	require.NoError(t, runCache([]string{"-trace", moon, "-policies", "lru", "-capacity-tokens", "51200", "-skip", "1", "-limit", "2", "-host-tokens", "4096"}, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), ", requests 2-3\n")
	assert.Contains(t, out.String(), "host tier: evicted device blocks are offloaded")
	out.Reset()
	require.NoError(t, runCache([]string{"-trace", moon, "-policies", "lru", "-capacity-tokens", "512,51200"}, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "up to 3 requests were longer than the cache")
}

// TestAudit100CacheTraceExtensions: the format follows the extension,
// whatever its case, and .json is Mooncake as .jsonl is.
func TestAudit100CacheTraceExtensions(t *testing.T) {
	azure := audit100File(t, "T.CSV", "TIMESTAMP,ContextTokens,GeneratedTokens\n0,300,10\n4,40,10\n")
	row := lruRow(t, "-trace", azure)
	assert.Equal(t, 16.0, row["block_size"])
	moon := audit100File(t, "t.json", `{"timestamp": 0, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}`+"\n")
	row = lruRow(t, "-trace", moon)
	assert.Equal(t, 512.0, row["block_size"])
}

// TestAudit100HybridJSON: a row's shares are its hits over the two W1
// bases, rounded to 4 places; first and resume hits add up to the
// admitted ones; state_pages is the table's state size.
func TestAudit100HybridJSON(t *testing.T) {
	args := []string{"-requests", "200", "-blocks", "1024", "-windows", "128", "-multikind=false", "-workers", "2"}
	var out bytes.Buffer
	require.NoError(t, runHybrid(append(args, "-json"), &out, &bytes.Buffer{}))
	rows := audit100Lines(t, out.Bytes())
	require.Len(t, rows, 2)
	num := func(r map[string]any, k string) float64 {
		t.Helper()
		require.Contains(t, r, k)
		return r[k].(float64)
	}
	resumed := false
	for _, r := range rows {
		for _, p := range []string{"vllm_", "default_"} {
			hits := num(r, p+"admitted_hit_tokens")
			assert.Equal(t, hits, num(r, p+"first_hit_tokens")+num(r, p+"resume_hit_tokens"), "%s %v", p, r)
			resumed = resumed || num(r, p+"resume_hit_tokens") > 0
			for base, k := range map[string]string{"w1_vllm_admitted_hit_tokens": "share_of_w1_vllm", "w1_default_admitted_hit_tokens": "share_of_w1_default"} {
				want := hits / num(r, base)
				got := num(r, p+k)
				assert.InDelta(t, want, got, 0.00005+1e-12, "%s%s", p, k)
				assert.Equal(t, got, math.Round(got*1e4)/1e4, "%s%s: 4 places", p, k)
			}
		}
	}
	assert.True(t, resumed, "the test needs resumed hits to tell first from resume")
	out.Reset()
	require.NoError(t, runHybrid(args, &out, &bytes.Buffer{}))
	m := regexp.MustCompile(`a state of (\d+) blocks`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	assert.Equal(t, m[1], strconv.Itoa(int(num(rows[1], "state_pages"))))
	assert.NotEqual(t, num(rows[1], "state_groups"), num(rows[1], "state_pages"))
}

// TestAudit100HybridFlags: blank -windows are none; windows alone are
// something to replay; -trace is an Azure CSV; a model without state
// layers is refused as a state model.
func TestAudit100HybridFlags(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, runHybrid([]string{"-requests", "50", "-windows", " ", "-multikind=false", "-json"}, &out, &bytes.Buffer{}))
	assert.Equal(t, 1, strings.Count(out.String(), "\n"), "the state row only")
	out.Reset()
	require.NoError(t, runHybrid([]string{"-requests", "50", "-windows", "8", "-state-models", "", "-multikind=false", "-json"}, &out, &bytes.Buffer{}))
	rows := audit100Lines(t, out.Bytes())
	require.Len(t, rows, 1)
	assert.EqualValues(t, 8, rows[0]["window"])

	tr := audit100File(t, "t.csv", audit100Azure)
	out.Reset()
	require.NoError(t, runHybrid([]string{"-trace", tr, "-requests", "3", "-windows", "8", "-state-models", "", "-multikind=false", "-json"}, &out, &bytes.Buffer{}))
	rows = audit100Lines(t, out.Bytes())
	require.Len(t, rows, 1)

	err := runHybrid([]string{"-requests", "20", "-windows", "", "-state-models", "gpt-oss-20b", "-multikind=false", "-json"}, &out, &bytes.Buffer{})
	assert.True(t, audit100Usage(err), "%v", err)
	assert.ErrorContains(t, err, "not a model of full-attention and state layers only")
}

// TestAudit100Commas: thousands separators, never a leading one.
func TestAudit100Commas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 123456: "123,456", 1234567: "1,234,567", -123456: "-123,456"} {
		assert.Equal(t, want, commas(n), "%d", n)
	}
}
