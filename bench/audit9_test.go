package bench_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit9CacheTraceKeepsNoCallerMemory checks that a CacheTrace does
// not read its caller's request slice after it is built: a caller that
// reuses the slice (here, for a trace of longer prompts) changes no
// replay of the trace built before.
func TestAudit9CacheTraceKeepsNoCallerMemory(t *testing.T) {
	reqs := make([]bench.Request, 40)
	for i := range reqs {
		reqs[i].InputTokens = 300 + 17*i
	}
	tr, err := bench.CacheTraceFromTokens(reqs, 16)
	require.NoError(t, err)
	want, err := tr.Replay("lru", eviction.NewLRU, 200)
	require.NoError(t, err)
	for i := range reqs {
		reqs[i].InputTokens = 2000
	}
	got, err := tr.Replay("lru", eviction.NewLRU, 200)
	require.NoError(t, err)
	want.Elapsed, got.Elapsed = 0, 0 // wall time
	require.Equal(t, want, got, "the trace reads the caller's requests at replay")
}
