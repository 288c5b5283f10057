package bench_test

import (
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/bench"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit151OracleOnlyCapacity: a capacity at which only the Belady
// oracle ran has no winner (the oracle never wins): CacheWinners leaves it
// out and the table names no best policy there, while its column is
// printed with the oracle's figure.
func TestAudit151OracleOnlyCapacity(t *testing.T) {
	results := []bench.CacheResult{
		{Policy: "lru", CapacityTokens: 1000, CapacityBlocks: 2, HitRate: 0.2, MaxHitRate: 0.5},
		{Policy: bench.BeladyName, CapacityTokens: 1000, CapacityBlocks: 2, HitRate: 0.4, MaxHitRate: 0.5},
		{Policy: bench.BeladyName, CapacityTokens: 2000, CapacityBlocks: 4, HitRate: 0.5, MaxHitRate: 0.5},
	}
	w := bench.CacheWinners(results)
	require.Len(t, w, 1)
	assert.Equal(t, bench.CacheWinner{CapacityTokens: 1000, Policy: "lru", HitRate: 0.2, LRU: 0.2}, w[0])

	var b strings.Builder
	require.NoError(t, bench.WriteCacheTable(&b, results))
	assert.Equal(t, `| policy | 1,000 tokens (2 blocks) | 2,000 tokens (4 blocks) |
|---|---:|---:|
| lru | 0.200 | |
| belady (oracle) | 0.400 | 0.500 |
| infinite cache | 0.500 | 0.500 |

1,000 tokens: best lru 0.200, +0.000 over lru (+0.0%), 40% of the maximum
`, b.String())
}
