package bench_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
)

// The seventy-third round of mutation testing (docs/testing.md): the
// cache study's replay, traces and queue model.

// TestAudit120ZeroCapacity: a replay with no device block is refused by
// the study itself, naming the capacity, not by the manager's pool size.
func TestAudit120ZeroCapacity(t *testing.T) {
	tr := hashTrace(t, []int64{1})
	_, err := tr.Replay("lru", eviction.NewLRU, 0)
	require.ErrorIs(t, err, bench.ErrCacheStudy)
	require.ErrorContains(t, err, "capacity of 0 blocks")
}

// TestAudit120EmptyTraceRates: a replay of a trace without references has
// rates of 0, not 0/0.
func TestAudit120EmptyTraceRates(t *testing.T) {
	tr := hashTrace(t, nil)
	r, err := tr.ReplayPolicy(bench.CachePolicy{Name: "lru", Factory: eviction.NewLRU}, 2, 2)
	require.NoError(t, err)
	assert.Zero(t, r.HitRate)
	assert.Zero(t, r.DeviceHitRate)
	assert.Zero(t, r.HostHitRate)
}

// TestAudit120TokenBlockEnds: a token prompt of whole blocks has no
// partial reference and its last block is named; a single token past a
// block is a reference of its own.
func TestAudit120TokenBlockEnds(t *testing.T) {
	for _, c := range []struct {
		tokens, refs, distinct int
	}{{16, 1, 1}, {17, 2, 1}, {32, 2, 2}, {1, 1, 0}} {
		tr, err := bench.CacheTraceFromTokens([]bench.Request{{InputTokens: c.tokens}}, 16)
		require.NoError(t, err)
		assert.Equal(t, int64(c.refs), tr.References(), "%d tokens", c.tokens)
		assert.Equal(t, c.distinct, tr.Distinct(), "%d tokens", c.tokens)
	}
}
