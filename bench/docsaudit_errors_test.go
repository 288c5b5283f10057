package bench_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestDocsauditRunW1RefusesBadConfig: bad input to RunW1 returns an error
// wrapping a sentinel, never a panic (a negative request count used to
// panic in makeslice). Its own checks wrap ErrW1Invalid; the manager's and
// the scheduler's wrap theirs.
func TestDocsauditRunW1RefusesBadConfig(t *testing.T) {
	for name, c := range map[string]struct {
		cfg      bench.W1Config
		sentinel error
		mentions string
	}{
		"negative requests": {bench.W1Config{Requests: -5}, bench.ErrW1Invalid, "Requests"},
		"too many requests": {bench.W1Config{Requests: 1 << 30}, bench.ErrW1Invalid, "Requests"},
		"past the trace":    {bench.W1Config{Requests: 3, Trace: bench.AzureConv()[:2]}, bench.ErrW1Invalid, "trace has 2"},
		"unknown compat":    {bench.W1Config{Requests: 10, Compat: "sglang"}, bench.ErrW1Invalid, "sglang"},
		"negative blocks":   {bench.W1Config{Requests: 10, Blocks: -1}, paged.ErrInvalid, "NumBlocks"},
		"negative block sz": {bench.W1Config{Requests: 10, BlockSize: -3}, paged.ErrInvalid, "BlockSize"},
		"negative max len":  {bench.W1Config{Requests: 10, MaxModelLen: -3}, paged.ErrInvalid, "MaxModelLen"},
		"negative max seqs": {bench.W1Config{Requests: 10, MaxNumSeqs: -3}, sched.ErrInvalid, "MaxRunning"},
		"compat, two kinds": {bench.W1Config{Requests: 10, Compat: "vllm", Window: 128, StatePages: 4}, paged.ErrInvalid, "Groups"},
	} {
		var err error
		require.NotPanics(t, func() { _, err = bench.RunW1(c.cfg) }, name)
		require.ErrorIs(t, err, c.sentinel, name)
		assert.ErrorContains(t, err, c.mentions, name)
	}
}

// TestDocsauditRunFleetRefusesARouterlessRouter: a zero FleetRouter (no
// Router) is bad input, refused with ErrFleetInvalid; it used to panic on
// the first request.
func TestDocsauditRunFleetRefusesARouterlessRouter(t *testing.T) {
	var err error
	require.NotPanics(t, func() {
		_, err = bench.RunFleet(bench.AzureConv()[:20], bench.FleetConfig{}, bench.FleetRouter{Name: "none"})
	})
	require.ErrorIs(t, err, bench.ErrFleetInvalid)
	assert.ErrorContains(t, err, `"none"`)
}
