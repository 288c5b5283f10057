package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

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
