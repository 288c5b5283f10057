package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
)

// pct1 is a JSON share as the hybrid table prints it.
func pct1(v any) string { return strconv.FormatFloat(100*v.(float64), 'f', 1, 64) }

// TestAudit143HybridStateRowAgreesWithJSON: the table's state row and the
// JSON state row give the same preemptions (JSON held the steps) and the
// same share of the default mode's W1 (the table's was against vLLM's).
func TestAudit143HybridStateRowAgreesWithJSON(t *testing.T) {
	args := []string{"-requests", "200", "-blocks", "2048", "-windows", "", "-multikind=false", "-workers", "2"}
	var out bytes.Buffer
	require.NoError(t, runHybrid(append(args, "-json"), &out, &bytes.Buffer{}))
	rows := audit100Lines(t, out.Bytes())
	require.Len(t, rows, 1)
	row := rows[0]
	// The two bases must part the default mode's shares at one decimal
	// (at 1,024 blocks both round to 3.0%).
	require.NotEqual(t, pct1(row["default_share_of_w1_vllm"]), pct1(row["default_share_of_w1_default"]), "the test needs shares that differ in the table")

	out.Reset()
	require.NoError(t, runHybrid(args, &out, &bytes.Buffer{}))
	re := regexp.MustCompile(`(?m)^\s*state \|\s+\S+\s+([\d.]+)%\s+(\d+) \|\s+\S+\s+([\d.]+)%\s+([\d.]+)%\s+\S+ / \S+\s+(\d+)$`)
	m := re.FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	pct := func(k string) string { return pct1(row[k]) }
	assert.Equal(t, pct("vllm_share_of_w1_vllm"), m[1])
	assert.Equal(t, fmt.Sprint(row["vllm_preemptions"]), m[2])
	assert.Equal(t, pct("default_share_of_w1_vllm"), m[3])
	assert.Equal(t, pct("default_share_of_w1_default"), m[4])
	assert.Equal(t, fmt.Sprint(row["default_preemptions"]), m[5])
	assert.Less(t, row["default_preemptions"], row["default_steps"], "preemptions and steps differ")
}

// audit143Moon is a Mooncake trace of three requests, the last three
// blocks long, all of one conversation.
const audit143Moon = `{"timestamp": 0, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 5, "input_length": 1024, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 9, "input_length": 1536, "output_length": 5, "hash_ids": [1, 2, 3]}
`

// TestAudit143CacheFlagEdges: -limit -1 and -block-size -1 are usage
// errors before the trace is read; -conversations that leave no request
// are refused by name.
func TestAudit143CacheFlagEdges(t *testing.T) {
	for _, bad := range [][]string{{"-limit", "-1"}, {"-block-size", "-1"}} {
		err := runCache(append([]string{"-trace", "/nonexistent/x.jsonl", "-policies", "lru", "-capacity-tokens", "51200"}, bad...), &bytes.Buffer{}, &bytes.Buffer{})
		assert.True(t, audit100Usage(err), "%v: %v", bad, err)
	}
	moon := audit100File(t, "t.jsonl", audit143Moon)
	var out bytes.Buffer
	err := runCache([]string{"-trace", moon, "-policies", "lru", "-capacity-tokens", "51200", "-conversations", "1/2"}, &out, &bytes.Buffer{})
	assert.True(t, audit100Usage(err), "%v", err)
	assert.ErrorContains(t, err, "-conversations 1/2 leaves no request")
	assert.Empty(t, out.String())
}

// TestAudit143CacheOneOversize: a single request longer than the cache
// gets the note.
func TestAudit143CacheOneOversize(t *testing.T) {
	moon := audit100File(t, "t.jsonl", audit143Moon)
	var out bytes.Buffer
	require.NoError(t, runCache([]string{"-trace", moon, "-policies", "lru", "-capacity-tokens", "1024"}, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "up to 1 requests were longer than the cache")
}

// TestAudit143FragMooncakeFormat: -format mooncake is a format kvbench
// frag reads.
func TestAudit143FragMooncakeFormat(t *testing.T) {
	moon := audit100File(t, "t.txt", audit143Moon)
	var out bytes.Buffer
	require.NoError(t, runFrag([]string{"-trace", moon, "-format", "mooncake", "-models", "paged", "-block-sizes", "16", "-sharing-requests", "0", "-json"}, &out, &bytes.Buffer{}))
	rows := audit100Lines(t, out.Bytes())
	require.Len(t, rows, 1)
	assert.EqualValues(t, 3, rows[0]["requests"])
}

// TestAudit143FragVerdictTie: paged memory level with the strongest
// contiguous run does not beat it.
func TestAudit143FragVerdictTie(t *testing.T) {
	got := strings.Join(fragVerdict([]bench.FragResult{
		{Model: bench.ModelPaged, BlockSize: 16, TokenStates: 0.6},
		{Model: bench.ModelOracle, Allocator: bench.AllocBuddy, TokenStates: 0.6},
	}), "\n")
	assert.Contains(t, got, "does NOT hold here: the strongest leads by 0.0 points")
}
