package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests of the thirty-eighth mutation round (docs/testing.md) through the
// exported API; the others are in audit84_internal_test.go.

// A windowed sequence's hit is found in the host tier as in the device
// pool: A's blocks, evicted to the host by B, give a window of 8 over 24
// tokens its 20-token hit, the two blocks its window needs onboarded
// (M1691: lookupWindow looked at the device pool only, and the sequence
// computed its prompt again).
func TestAudit84WindowHitFromTheHost(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 8, HostBlocks: 16})
	require.NoError(t, err)
	a := seqTokens(24, 1)
	id, _, err := m.Create(a, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	b, _, err := m.Create(seqTokens(24, 500), nil)
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.Free(b))
	require.Positive(t, m.Stats().Tiers.HostCached, "nothing offloaded: the test checks nothing")

	w, cached, err := m.Create(a, &paged.SeqOptions{Window: 8})
	require.NoError(t, err)
	require.Equal(t, 20, cached)
	require.EqualValues(t, 2, m.Stats().Tiers.HostHitBlocks)
	tab, err := m.Table(w)
	require.NoError(t, err)
	require.Equal(t, []int32{0, 0, 0}, []int32{int32(tab[0]), int32(tab[1]), int32(tab[2])})
	require.NoError(t, m.Check())
}

// A windowed hit never spans a block that is not cached: with blocks 0,
// 1, 3 and 4 cached and block 2 missing, a window of 12 tokens over 24
// cannot start computing at 20 (its window reads block 2), and its hit is
// the 8 tokens of blocks 0 and 1 (M1693: the run of cached blocks went on
// over the missing one, and the hit took the null block in its place).
func TestAudit84WindowHitStopsAtAMissingBlock(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
	require.NoError(t, err)
	h := func(i int) paged.Hash { var x paged.Hash; x[0], x[1] = byte(i), 9; return x }
	full := []paged.Hash{h(0), h(1), h(2), h(3), h(4), h(5)}
	holey := []paged.Hash{h(0), h(1), h(20), h(3), h(4), h(5)}
	y, _, err := m.CreateFromHashes(holey, 24, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(y))

	w, cached, err := m.CreateFromHashes(full, 24, &paged.SeqOptions{Window: 12})
	require.NoError(t, err)
	require.Equal(t, 8, cached)
	tab, err := m.Table(w)
	require.NoError(t, err)
	for i, b := range tab {
		require.NotZero(t, b, "block %d of %v", i, tab)
	}
	require.NoError(t, m.Check())
}
