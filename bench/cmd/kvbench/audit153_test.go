package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/fleet"
)

// a153DownRedis stands in for a Redis that accepts the connection but
// cannot give a backend: every Redis replay fails.
type a153DownRedis struct{}

func (a153DownRedis) Fresh(string) (fleet.Backend, error) {
	return nil, errors.New("redis down")
}

func (a153DownRedis) Close() error { return nil }

// TestAudit153FailedRedisReplaysAreMarkedFailed: a Redis replay that
// could not run is marked **FAILED** with its error, not **DIFFERENT**
// (it routed nothing), shows no Redis lookup rate, and fails the command.
func TestAudit153FailedRedisReplaysAreMarkedFailed(t *testing.T) {
	saved := openRedis
	openRedis = func(string) (redisIndex, error) { return a153DownRedis{}, nil }
	t.Cleanup(func() { openRedis = saved })
	var out, errb bytes.Buffer
	err := runFleet([]string{"-requests", "20", "-redis", "fake"}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "5 redis replay(s) failed")
	s := out.String()
	assert.Equal(t, 5, strings.Count(s, "| - | **FAILED**: redis down |\n"), s)
	assert.NotContains(t, s, "**DIFFERENT**")
	assert.NotContains(t, s, "index event application (redis")
}

// TestAudit153NotesOfARowWithoutScoring: the notes under the table name a
// router replayed once (no scoring) by its name alone, and one replayed
// per scoring with the scoring in parentheses; a row that preempted
// nothing has no note.
func TestAudit153NotesOfARowWithoutScoring(t *testing.T) {
	cfg := bench.FleetConfig{Servers: 2, Blocks: 64, MaxRunning: 4, MaxBatchTokens: 1024, Speed: 1}
	rows := []fleetRow{
		{Router: "round-robin", Preemptions: 4, Checkpoints: 2},
		{Router: "least-loaded"},
		{Router: "prefix-aware", Scoring: "blind", Preemptions: 1},
	}
	reqs := []bench.Request{{InputTokens: 1024, OutputTokens: 1, HashIDs: []int64{1, 2}}}
	var out bytes.Buffer
	writeFleetTable(&out, rows, cfg, "tiny", reqs, false)
	s := out.String()
	assert.Contains(t, s, "\nround-robin: 4 preemptions\n")
	assert.Contains(t, s, "\nround-robin: 2 state checkpoints taken\n")
	assert.Contains(t, s, "\nprefix-aware (blind): 1 preemptions\n")
	assert.NotContains(t, s, "()")
	assert.NotContains(t, s, "least-loaded:")
}

// TestAudit153OverheadSummaryCounts: the summary's counts of steps,
// admissions, finished requests and tokens, its time per token through
// the scheduler and its wall time are the JSON line's (a replay that
// preempts, so that admissions and finished requests differ and some
// prefill is resumed).
func TestAudit153OverheadSummaryCounts(t *testing.T) {
	got, s := a99Overhead(t, "-requests", "100", "-blocks", "1024")
	require.NotEqual(t, got["admissions"], got["finished"], "the replay must readmit preempted requests")
	require.Positive(t, got["resumed_prefill_tokens"])
	require.Less(t, got["resumed_prefill_tokens"], got["prefill_tokens"])
	assert.Contains(t, s, fmt.Sprintf("\n  steps %.0f, preemptions %.0f, admissions %.0f, finished %.0f, peak running %.0f, peak blocks %.0f\n",
		got["steps"], got["preemptions"], got["admissions"], got["finished"], got["peak_running"], got["peak_blocks_in_use"]))
	assert.Contains(t, s, fmt.Sprintf("\n  tokens processed %.0f (prefill %.0f, of which resumed %.0f; decode %.0f)\n",
		got["tokens_processed"], got["prefill_tokens"], got["resumed_prefill_tokens"], got["decode_tokens"]))
	// The timings are this run's: the scheduler's time includes its
	// bookkeeping and the wall time the driver, so neither is the
	// manager's (14.7 ns per token against 86.0, 1.2 ms against 7.4, in
	// one run).
	assert.InDelta(t, got["scheduler_ns_per_token"], a99Float(t, s, `bookkeeping included: ([0-9.]+) ns per token`), 0.051)
	assert.InDelta(t, got["total_wall_ns"]/1e6, a99Float(t, s, `wall ([0-9.]+) ms for the whole replay`), 0.051)
}
