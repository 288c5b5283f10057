package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/internal/redistest"
)

var fleetRouterRows = []string{"| random |", "| round-robin |", "| least-loaded |", "| prefix-aware |", "| prefix-aware, load cap 8 |", "| cost-aware |", "| prefix-aware, pending |", "| cost-aware, pending |"}

func TestRunFleetPrintsEveryRouter(t *testing.T) {
	var out, errb bytes.Buffer
	addr := ""
	if openRedis != nil { // built with -tags redis
		addr = redistest.Optional()
	}
	args := []string{"-requests", "300", "-redis", addr}
	require.NoError(t, runFleet(args, &out, &errb), errb.String())
	s := out.String()
	for _, r := range fleetRouterRows {
		assert.Contains(t, s, r)
	}
	assert.Contains(t, s, "fleet study: 300 requests of mooncake_synthetic (embedded;")
	assert.Contains(t, s, "cost-aware: hit rate")
	if addr != "" {
		assert.Equal(t, 5, strings.Count(s, "| identical |"), s)
	} else {
		assert.Contains(t, s, "redis replays skipped")
	}
}

func TestRunFleetOnAzureWithSharedPrefixAsJSON(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"-format", "azure", "-shared-prefix", "1", "-requests", "400", "-redis", "", "-json"}
	require.NoError(t, runFleet(args, &out, &errb), errb.String())
	sc := bufio.NewScanner(&out)
	var rows []fleetRow
	for sc.Scan() {
		var r fleetRow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		rows = append(rows, r)
	}
	require.Len(t, rows, len(fleetRouterRows))
	for _, r := range rows {
		assert.Contains(t, r.Trace, "azure_conv_2023")
		assert.Contains(t, r.Trace, "prefixed with 1 shared block")
		assert.Equal(t, 400, r.Requests+r.Rejected, r.Router)
		// The per-server counts behind the imbalance: every request once.
		sum := 0
		for _, n := range r.PerServer {
			sum += n
		}
		assert.Equal(t, r.Requests, sum, r.Router)
		assert.Len(t, r.PerServerBusy, 8, r.Router)
		// Only the shared block can hit: a prompt's own blocks are unique.
		assert.Greater(t, r.HitRate, 0.0, r.Router)
	}
}

func TestRunFleetRejectsBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	require.Error(t, runFleet([]string{"-requests", "-1"}, &out, &errb))
	require.Error(t, runFleet([]string{"-servers", "0", "-requests", "10", "-redis", ""}, &out, &errb))
	require.Error(t, runFleet([]string{"-shared-prefix", "-1", "-redis", ""}, &out, &errb))
	require.Error(t, runFleet([]string{"-trace", "/nonexistent.jsonl", "-redis", ""}, &out, &errb))
	require.Error(t, runFleet([]string{"extra"}, &out, &errb))
}

// TestRunFleetWithoutRedisSupport: a kvbench built without -tags redis
// refuses -redis with a usage error that says how to build one.
func TestRunFleetWithoutRedisSupport(t *testing.T) {
	if openRedis != nil {
		t.Skip("built with -tags redis")
	}
	var out, errb bytes.Buffer
	err := runFleet([]string{"-requests", "10", "-redis", "127.0.0.1:1"}, &out, &errb)
	var ue *usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "-tags redis")
}
