package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestOnboardPrefetchesLongestHit pins what Onboard brings back: the host
// blocks of the longest cached prefix, the lookup Admit starts from,
// even where Admit then takes a shorter hit (Stats.HitFallbacks: the
// longest never fits). TestLongestHitFallsBack's prompt, its first 20
// tokens computed and then evicted to the host tier by a request of
// fresh tokens: Onboard moves back group 0's 10 blocks of the 20-token
// hit (and the window group's),
// Admit (in chunks) takes fewer, and the blocks onboarded past the hit
// taken stay cached on the device, evictable.
func TestOnboardPrefetchesLongestHit(t *testing.T) {
	prompt := seqOf(1, 21)
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 13, Groups: fallbackLayout, HostBlocks: 64})
	require.NoError(t, err)
	cachePrompt(t, m, prompt[:20])
	flush, _, err := m.Create(seqOf(1000, 12), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(flush))
	m.TakeSwaps(nil)
	require.Positive(t, m.Stats().Tiers.HostCached, "the prefix went to the host")
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	g0, err := m.TierStatsGroup(0)
	require.NoError(t, err)
	n, err := m.Onboard(id)
	require.NoError(t, err)
	g0after, err := m.TierStatsGroup(0)
	require.NoError(t, err)
	assert.Equal(t, uint64(10), g0after.Onboards-g0.Onboards, "group 0: the 20-token hit's blocks")
	t.Logf("Onboard moved %d blocks, %d of group 0", n, g0after.Onboards-g0.Onboards)
	before := m.Stats()
	cached, _, err := m.AdmitChunk(id, 2, nil)
	require.NoError(t, err)
	assert.Less(t, cached, 20, "a shorter hit taken")
	assert.Equal(t, before.HitFallbacks+1, m.Stats().HitFallbacks)
	assert.Zero(t, m.Stats().Tiers.HostHitBlocks-before.Tiers.HostHitBlocks, "nothing left on the host to hit")
	require.NoError(t, m.Check())
}
