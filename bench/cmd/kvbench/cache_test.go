package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCacheJSON(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCache([]string{"-policies", "lru,belady", "-capacity-tokens", "512000,3000000", "-json"}, &out, &errb)
	require.NoError(t, err, errb.String())
	var rows []map[string]any
	dec := json.NewDecoder(&out)
	for dec.More() {
		var row map[string]any
		require.NoError(t, dec.Decode(&row))
		rows = append(rows, row)
	}
	require.Len(t, rows, 4)
	for _, k := range []string{"policy", "capacity_tokens", "capacity_blocks", "hit_rate", "max_hit_rate"} {
		assert.Contains(t, rows[0], k)
	}
	assert.Equal(t, "lru", rows[1]["policy"])
	assert.Equal(t, 3000000.0, rows[1]["capacity_tokens"])
	assert.Equal(t, 5859.0, rows[1]["capacity_blocks"])
	assert.InDelta(t, 0.309, rows[1]["hit_rate"], 0.003)
	assert.InDelta(t, 0.640, rows[1]["max_hit_rate"], 0.0005)
	assert.Equal(t, "belady", rows[3]["policy"])
	assert.GreaterOrEqual(t, rows[3]["hit_rate"], 0.54)
}

func TestCacheTable(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCache([]string{"-policies", "lru,fifo", "-capacity-tokens", "3000000"}, &out, &errb)
	require.NoError(t, err, errb.String())
	s := out.String()
	assert.Contains(t, s, "Mooncake FAST'25 synthetic trace, kvcache-ai/Mooncake, Apache-2.0")
	assert.Contains(t, s, "| lru | 0.309 |")
	assert.Contains(t, s, "| infinite cache | 0.640 |")
	assert.Contains(t, s, "3,000,000 tokens: best lru 0.309")
}

func TestCacheTraceFiles(t *testing.T) {
	dir := t.TempDir()
	moon := filepath.Join(dir, "t.jsonl")
	require.NoError(t, os.WriteFile(moon, []byte(
		`{"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 5, "input_length": 1000, "output_length": 5, "hash_ids": [1, 3]}
`), 0o644))
	var out, errb bytes.Buffer
	require.NoError(t, runCache([]string{"-trace", moon, "-policies", "lru", "-capacity-tokens", "4096", "-json"}, &out, &errb))
	var row struct {
		HitRate        float64 `json:"hit_rate"`
		CapacityBlocks int     `json:"capacity_blocks"`
		BlockSize      int     `json:"block_size"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &row))
	assert.Equal(t, 0.25, row.HitRate)
	assert.Equal(t, 8, row.CapacityBlocks)
	assert.Equal(t, 512, row.BlockSize)

	azure := filepath.Join(dir, "t.csv")
	require.NoError(t, os.WriteFile(azure, []byte(
		"TIMESTAMP,ContextTokens,GeneratedTokens\n"+
			"2023-11-16 18:15:46.6805900,300,10\n"+
			"2023-11-16 18:15:50.9951690,40,10\n"), 0o644))
	out.Reset()
	require.NoError(t, runCache([]string{"-trace", azure, "-policies", "lru", "-capacity-tokens", "100000"}, &out, &errb))
	assert.Contains(t, out.String(), "2 requests, 22 block references of 16 tokens")
	assert.Contains(t, out.String(), "synthetic token model")
}

func TestCacheBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-capacity-tokens", "abc"},
		{"-capacity-tokens", "0"},
		{"-capacity-tokens", ","},
		{"-policies", "nosuch"},
		{"-format", "xml"},
		{"-trace", "/nonexistent/x.jsonl"},
		{"-block-size", "300"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		assert.Error(t, runCache(args, &out, &errb), "%q", args)
	}
	var out, errb bytes.Buffer
	err := runCache([]string{"-h"}, &out, &errb)
	assert.True(t, errors.Is(err, flag.ErrHelp))
	assert.True(t, strings.Contains(errb.String(), "-capacity-tokens"))
}

func TestCacheHostTokens(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCache([]string{"-policies", "lru", "-capacity-tokens", "3000000", "-host-tokens", "8x", "-json"}, &out, &errb)
	require.NoError(t, err, errb.String())
	var row struct {
		HostTokens    int64   `json:"host_tokens"`
		HitRate       float64 `json:"hit_rate"`
		DeviceHitRate float64 `json:"device_hit_rate"`
		HostHitRate   float64 `json:"host_hit_rate"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &row))
	assert.Equal(t, int64(24000000), row.HostTokens)
	assert.InDelta(t, 0.309, row.DeviceHitRate, 0.003)
	assert.Greater(t, row.HitRate, row.DeviceHitRate+0.2)
	assert.InDelta(t, row.HitRate, row.DeviceHitRate+row.HostHitRate, 1e-12)

	out.Reset()
	err = runCache([]string{"-policies", "lru", "-capacity-tokens", "3000000", "-host-tokens", "6000000"}, &out, &errb)
	require.NoError(t, err)
	assert.Contains(t, out.String(), "+ host 6,000,000 |")
	assert.Contains(t, out.String(), "| lru | 0.")

	for _, bad := range []string{"x", "-2x", "0", "abc", "1e9x"} {
		assert.Error(t, runCache([]string{"-host-tokens", bad}, &out, &errb), bad)
	}
}

func TestCacheQueueFlag(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCache([]string{"-policies", "lru,chain", "-capacity-tokens", "512000", "-queue-load", "1"}, &out, &errb)
	require.NoError(t, err, errb.String())
	s := out.String()
	assert.Contains(t, s, "queue: one prefill server at")
	assert.Contains(t, s, "lru at 512,000 tokens: mean wait")
	assert.Contains(t, s, "| chain | 0.")

	out.Reset()
	require.NoError(t, runCache([]string{"-policies", "lru", "-capacity-tokens", "512000", "-queue-load", "1", "-json"}, &out, &errb))
	var row struct {
		HitRate float64 `json:"hit_rate"`
		Queue   *struct {
			MeanQueue float64 `json:"mean_queue"`
		} `json:"queue"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &row))
	require.NotNil(t, row.Queue)
	assert.Greater(t, row.Queue.MeanQueue, 0.0)
	assert.Greater(t, row.HitRate, 0.084, "pins for the queue add hits to LRU's 0.084")

	for _, args := range [][]string{
		{"-queue-load", "-1"},
		{"-queue-load", "1", "-pin-share", "0"},
		{"-queue-load", "1", "-host-tokens", "2x"},
	} {
		assert.Error(t, runCache(append(args, "-policies", "lru", "-capacity-tokens", "512000"), &out, &errb), "%q", args)
	}
}

// lruRow runs kvbench cache with LRU at 51,200 tokens and returns its one
// JSON row.
func lruRow(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	require.NoError(t, runCache(append([]string{"-policies", "lru", "-capacity-tokens", "51200", "-json"}, args...), &out, &errb), errb.String())
	var row map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &row))
	return row
}

// TestCacheSkipLimit: -skip and -limit replay a slice of the trace from an
// empty cache, as a file holding only those requests would; bad counts
// are usage errors.
func TestCacheSkipLimit(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.jsonl")
	part := filepath.Join(dir, "part.jsonl")
	lines := []string{
		`{"timestamp": 0, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}`,
		`{"timestamp": 5, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}`,
		`{"timestamp": 9, "input_length": 1536, "output_length": 5, "hash_ids": [1, 2, 3]}`,
		`{"timestamp": 12, "input_length": 1536, "output_length": 5, "hash_ids": [1, 2, 3]}`,
	}
	require.NoError(t, os.WriteFile(full, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	require.NoError(t, os.WriteFile(part, []byte(strings.Join(lines[1:3], "\n")+"\n"), 0o644))
	run := func(args ...string) map[string]any { return lruRow(t, args...) }
	whole, sliced, file := run("-trace", full), run("-trace", full, "-skip", "1", "-limit", "2"), run("-trace", part)
	assert.Equal(t, 4.0, whole["requests"])
	assert.Equal(t, 2.0, sliced["requests"])
	// The slice starts cold: its first request misses what the whole
	// trace's second request hits.
	assert.Equal(t, file["hits"], sliced["hits"])
	assert.Equal(t, 2.0, sliced["hits"])
	assert.Equal(t, 7.0, whole["hits"])
	for _, bad := range [][]string{{"-skip", "-1"}, {"-limit", "-2"}, {"-skip", "4"}} {
		var out, errb bytes.Buffer
		err := runCache(append([]string{"-trace", full, "-policies", "lru", "-capacity-tokens", "51200"}, bad...), &out, &errb)
		var ue *usageError
		assert.True(t, errors.As(err, &ue), "%v: %v", bad, err)
	}
}

// TestBadInputCacheFlags: a negative -block-size, -workers below 1 and a
// -queue-load that is no load are usage errors (exit code 2) before the
// trace is read; a negative -workers used to be taken as the default, and
// a negative -block-size or a negative or NaN -queue-load reached the
// study as a runtime error.
func TestBadInputCacheFlags(t *testing.T) {
	for _, bad := range [][]string{{"-block-size", "-5"}, {"-workers", "0"}, {"-workers", "-3"}, {"-queue-load", "-1"}, {"-queue-load", "NaN"}, {"-queue-load", "+Inf"}} {
		var out, errb bytes.Buffer
		err := runCache(append([]string{"-trace", "/nonexistent/x.jsonl", "-policies", "lru", "-capacity-tokens", "51200"}, bad...), &out, &errb)
		var ue *usageError
		assert.True(t, errors.As(err, &ue), "%v: %v", bad, err)
		assert.Empty(t, out.String(), "%v", bad)
	}
}

// TestBadInputCachePinShare: a -pin-share outside (0, 1] is a usage error
// before the trace is read, with or without -queue-load. Without a queue
// it used to be ignored silently, and with one it was checked only after
// the trace was read and prepared.
func TestBadInputCachePinShare(t *testing.T) {
	for _, share := range []string{"-1", "0", "1.5", "NaN", "+Inf", "-Inf"} {
		for _, queue := range [][]string{nil, {"-queue-load", "0.5"}} {
			args := append([]string{"-trace", "/nonexistent/x.jsonl", "-policies", "lru", "-capacity-tokens", "51200", "-pin-share", share}, queue...)
			var out, errb bytes.Buffer
			err := runCache(args, &out, &errb)
			var ue *usageError
			assert.True(t, errors.As(err, &ue), "%v: %v", args, err)
			assert.Contains(t, fmt.Sprint(err), "-pin-share", "%v", args)
			assert.Empty(t, out.String(), "%v", args)
		}
	}
}

// TestCacheConversations: -conversations K/N replays the requests of those
// conversations, as a file holding only them would, before -skip and
// -limit; bad parts and traces without hash IDs are usage errors.
func TestCacheConversations(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.jsonl")
	part := filepath.Join(dir, "part.jsonl")
	lines := []string{
		`{"timestamp": 0, "input_length": 1536, "output_length": 5, "hash_ids": [1, 2, 3]}`,
		`{"timestamp": 1, "input_length": 1024, "output_length": 5, "hash_ids": [1, 4]}`,
		`{"timestamp": 2, "input_length": 2048, "output_length": 5, "hash_ids": [1, 2, 3, 5]}`,
		`{"timestamp": 3, "input_length": 1536, "output_length": 5, "hash_ids": [1, 4, 6]}`,
		`{"timestamp": 4, "input_length": 2560, "output_length": 5, "hash_ids": [1, 2, 3, 5, 7]}`,
	}
	require.NoError(t, os.WriteFile(full, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	odd := []string{lines[1], lines[3]}
	require.NoError(t, os.WriteFile(part, []byte(strings.Join(odd, "\n")+"\n"), 0o644))
	run := func(args ...string) map[string]any { return lruRow(t, args...) }
	split, file := run("-trace", full, "-conversations", "1/2"), run("-trace", part)
	assert.Equal(t, 2.0, split["requests"])
	assert.Equal(t, file["hits"], split["hits"])
	assert.Equal(t, 2.0, split["hits"]) // the second request hits blocks 1 and 4
	even := run("-trace", full, "-conversations", "0/2", "-skip", "1")
	assert.Equal(t, 2.0, even["requests"])
	assert.Equal(t, 4.0, even["hits"]) // 1, 2, 3, 5 of the last request
	for _, bad := range [][]string{{"-conversations", "2/2"}, {"-conversations", "-1/2"}, {"-conversations", "1"}, {"-conversations", "a/b"}, {"-conversations", "0/0"}, {"-conversations", "0/2", "-skip", "3"}} {
		var out, errb bytes.Buffer
		err := runCache(append([]string{"-trace", full, "-policies", "lru", "-capacity-tokens", "51200"}, bad...), &out, &errb)
		var ue *usageError
		assert.True(t, errors.As(err, &ue), "%v: %v", bad, err)
	}
	var out, errb bytes.Buffer
	err := runCache([]string{"-format", "azure", "-conversations", "0/2", "-policies", "lru", "-capacity-tokens", "51200"}, &out, &errb)
	var ue *usageError
	assert.True(t, errors.As(err, &ue), "azure: %v", err)
}
