package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
)

// TestAudit110FleetSummaryWithoutHits: a replay in which no router hit
// anything (a single request, say) and least-loaded took no time prints
// "x-" for ratios over zero, never "xNaN" or "x+Inf".
func TestAudit110FleetSummaryWithoutHits(t *testing.T) {
	cfg := bench.FleetConfig{Servers: 2, Blocks: 64, MaxRunning: 4, MaxBatchTokens: 1024, Speed: 1}
	rows := []fleetRow{
		{Router: "round-robin"},
		{Router: "least-loaded"},
		{Router: "prefix-aware"},
		{Router: "cost-aware", Imbalance: 1, Makespan: 2},
	}
	reqs := []bench.Request{{InputTokens: 1024, OutputTokens: 1, HashIDs: []int64{1, 2}}}
	var out bytes.Buffer
	writeFleetTable(&out, rows, cfg, "one", reqs, false)
	s := out.String()
	assert.Contains(t, s, "cost-aware: hit rate 0.0% (x- prefix-aware's, x- round-robin's), imbalance 1.000, makespan x- and p90 wait +0.00 s vs least-loaded;")
	assert.NotContains(t, s, "NaN")
	assert.NotContains(t, s, "Inf")
	assert.Equal(t, "x1.250", times(5, 4, 3))
	assert.Equal(t, "x0.50", times(1, 2, 2))
}

// TestAudit110QuantPerChannelWidths: a per-channel row whose width kvmem
// cannot size (int8-ch, kivi-int8-gG) is refused by name, not through
// kvmem's complaint about a type the user never wrote ("int8-g16").
func TestAudit110QuantPerChannelWidths(t *testing.T) {
	for _, name := range []string{"int8-ch", "int8-ch/fp16", "fp16/int8-ch", "kivi-int8-g32"} {
		_, err := parseQuantRow(name, 16)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), "int8-ch has no KV layout type to size it", name)
		}
	}
	for _, name := range []string{"int4-ch", "int2-ch/fp16", "kivi-int4-g32", "kivi-int2-g128"} {
		r, err := parseQuantRow(name, 16)
		if assert.NoError(t, err, name) {
			assert.Contains(t, r.keyType, "-g", name)
		}
	}
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run([]string{"quant", "-types", "int8-ch", "-lengths", "256"}, &out, &errb))
	assert.Contains(t, errb.String(), "int8-ch has no KV layout type")
	assert.NotContains(t, errb.String(), "int8-g16")
	assert.Empty(t, out.String())
}

// TestAudit110HybridShortTrace: kvbench hybrid on a trace shorter than the
// default -requests replays the whole trace (as kvbench frag caps its
// -requests); a -requests given past the trace's end is a usage error,
// and one within it is taken.
func TestAudit110HybridShortTrace(t *testing.T) {
	tr := audit100File(t, "t.csv", audit100Azure)
	args := []string{"-trace", tr, "-windows", "8", "-state-models", "", "-multikind=false"}
	var out, errb bytes.Buffer
	require.NoError(t, runHybrid(args, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "W1-H: 3 requests of the trace "+tr+",")

	out.Reset()
	assert.Equal(t, 2, run(append([]string{"hybrid", "-requests", "4"}, args...), &out, &errb))
	assert.Contains(t, errb.String(), "-requests 4: the trace "+tr+" has 3 requests")
	assert.Empty(t, out.String())

	out.Reset()
	require.NoError(t, runHybrid(append([]string{"-requests", "2"}, args...), &out, &errb))
	assert.Contains(t, out.String(), "W1-H: 2 requests")
}

// TestAudit110OverheadNamesItsTrace: kvbench overhead's summary names the
// trace it replayed: the embedded one by default, the -trace file when
// one is given (it named the embedded trace for every file).
func TestAudit110OverheadNamesItsTrace(t *testing.T) {
	_, s := a99Overhead(t, "-requests", "3", "-blocks", "256")
	assert.Contains(t, s, "workload W1: 3 requests of the Azure conversation trace,")

	tr := audit100File(t, "t.csv", audit100Azure)
	_, s = a99Overhead(t, "-requests", "3", "-blocks", "256", "-trace", tr)
	assert.Contains(t, s, "workload W1: 3 requests of the trace "+tr+",")
	assert.NotContains(t, s, "Azure conversation")
}

// TestAudit110WithoutTimers: the summary's figure without the timers is
// printed when positive and replaced by words when the timers' estimate
// is as much as the time measured (a short replay printed "-0.1 ns per
// token without them" and "manager -0.01x the floor").
func TestAudit110WithoutTimers(t *testing.T) {
	assert.Equal(t, "23.8 ns per token without them", withoutTimers(23.8))
	assert.Equal(t, "0.1 ns per token without them", withoutTimers(0.05))
	for _, x := range []float64{0, -0.102} {
		assert.Equal(t, "as much as the time measured: too short a replay to subtract them", withoutTimers(x))
	}
}
