package paged_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestDocsauditLimitsAtTheBoundary checks the README's table of limits at
// each boundary: the documented value is taken, one past it is refused
// with ErrInvalid and an error naming the field. (The hostile tests refuse
// values far past each limit; this pins where the limit is.)
func TestDocsauditLimitsAtTheBoundary(t *testing.T) {
	configs := []struct {
		name  string
		ok    paged.Config
		bad   paged.Config
		field string
	}{
		{"MaxModelLen", paged.Config{NumBlocks: 4, MaxModelLen: paged.MaxSeqLen},
			paged.Config{NumBlocks: 4, MaxModelLen: paged.MaxSeqLen + 1}, "MaxModelLen"},
		{"Events", paged.Config{NumBlocks: 4, Events: paged.MaxEvents},
			paged.Config{NumBlocks: 4, Events: paged.MaxEvents + 1}, "Events"},
		{"BlockSize", paged.Config{NumBlocks: 4, BlockSize: 1 << 20},
			paged.Config{NumBlocks: 4, BlockSize: 1<<20 + 1}, "BlockSize"},
		// A pool of MaxBlocks takes about 1.5 GB: only past the limit
		// is checked for the two pools.
		{"NumBlocks", paged.Config{NumBlocks: 4},
			paged.Config{NumBlocks: paged.MaxBlocks + 1}, "NumBlocks"},
		{"HostBlocks", paged.Config{NumBlocks: 4, HostBlocks: 4},
			paged.Config{NumBlocks: 4, HostBlocks: paged.MaxBlocks + 1}, "HostBlocks"},
		{"Groups", paged.Config{NumBlocks: 4, Groups: fullGroups(255)},
			paged.Config{NumBlocks: 4, Groups: fullGroups(256)}, "Groups"},
		{"State Pages", paged.Config{NumBlocks: 9, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 8}}},
			paged.Config{NumBlocks: 9, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 9}}}, "Groups[1]"},
	}
	for _, c := range configs {
		_, err := paged.New(c.ok)
		require.NoError(t, err, "%s at its limit", c.name)
		_, err = paged.New(c.bad)
		require.ErrorIs(t, err, paged.ErrInvalid, "%s past its limit", c.name)
		assert.ErrorContains(t, err, c.field, "%s: the error names the field", c.name)
	}

	// Batch.Stride: MaxModelLen/BlockSize rounded up to a power of two,
	// at least 16.
	for _, c := range []struct{ maxLen, stride int }{
		{16, 16},      // one block: still 16
		{1000, 64},    // 62.5 blocks: 63, then 64
		{1024, 64},    // exactly 64 blocks
		{1025, 128},   // 64 blocks and a token
		{4096, 256},   // 256 blocks
		{16384, 1024}, // vLLM's default 16K context
	} {
		m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 9, MaxModelLen: c.maxLen})
		require.NoError(t, err)
		id, _, err := m.Create([]int32{1, 2, 3}, nil)
		require.NoError(t, err)
		sched := []paged.Scheduled{{ID: id, NewTokens: 1}}
		require.NoError(t, m.BuildBatch(&paged.Batch{Stride: c.stride}, sched), "MaxModelLen %d: Stride %d", c.maxLen, c.stride)
		err = m.BuildBatch(&paged.Batch{Stride: c.stride + 1}, sched)
		require.ErrorIs(t, err, paged.ErrInvalid, "MaxModelLen %d: Stride %d", c.maxLen, c.stride+1)
		assert.ErrorContains(t, err, "Stride")
	}

	// Batch.SplitUnits: at most 2^20 compute units.
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 9})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	sched := []paged.Scheduled{{ID: id, NewTokens: 1}}
	require.NoError(t, m.BuildBatch(&paged.Batch{SplitUnits: 1 << 20}, sched))
	err = m.BuildBatch(&paged.Batch{SplitUnits: 1<<20 + 1}, sched)
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.ErrorContains(t, err, "SplitUnits")

	// Token IDs: 0 to 2^31-1.
	require.NoError(t, m.Append(id, math.MaxInt32), "the largest token ID")
	require.NoError(t, m.Append(id, 0), "token 0")
	toks, err := m.Tokens(id)
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 2, 3, math.MaxInt32, 0}, toks)
	require.NoError(t, m.Check())
}

func fullGroups(n int) []paged.Group {
	g := make([]paged.Group, n)
	for i := range g {
		g[i] = paged.Group{Kind: paged.FullAttention}
	}
	return g
}

// TestDocsauditPlacementLimits: the README's limits of a Placement. The
// devices together hold at most MaxBlocks blocks (refused before any pool
// is allocated), and a device has one full-attention group: a shard is one
// block table, so KV cache groups are ErrInvalid.
func TestDocsauditPlacementLimits(t *testing.T) {
	dev := paged.Config{BlockSize: 16, NumBlocks: 1 << 20}
	_, err := paged.NewPlacement(paged.PlacementConfig{Device: dev, Devices: paged.MaxBlocks/(1<<20) + 1})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.ErrorContains(t, err, "Devices")

	for _, groups := range [][]paged.Group{
		{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}},
		{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}},
	} {
		_, err = paged.NewPlacement(paged.PlacementConfig{
			Device: paged.Config{BlockSize: 16, NumBlocks: 9, Groups: groups}, Devices: 2})
		require.ErrorIs(t, err, paged.ErrInvalid, "%v", groups)
		assert.ErrorContains(t, err, "Groups")
	}
	p, err := paged.NewPlacement(paged.PlacementConfig{
		Device: paged.Config{BlockSize: 16, NumBlocks: 9, Groups: []paged.Group{{Kind: paged.FullAttention}}}, Devices: 2})
	require.NoError(t, err, "one full-attention group is the plain layout")
	require.Len(t, p.Devices(), 2)
}

// TestDocsauditMaxWaitingNeverRefusesSwapOut completes the README's row
// for Config.MaxWaiting: Add refuses while MaxWaiting sequences hold no
// device blocks, but Create, Preempt and SwapOut are never refused for it
// (a swapped-out sequence counts as waiting), and SwapIn brings it back.
func TestDocsauditMaxWaitingNeverRefusesSwapOut(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17, HostBlocks: 16, MaxWaiting: 1})
	require.NoError(t, err)
	_, err = m.Add([]int32{1, 2, 3, 4, 5}, nil)
	require.NoError(t, err)
	_, err = m.Add([]int32{6, 7}, nil)
	require.ErrorIs(t, err, paged.ErrNoSpace, "one sequence waits already")

	a, _, err := m.Create([]int32{10, 11, 12, 13, 14}, nil)
	require.NoError(t, err, "Create is not limited")
	b, _, err := m.Create([]int32{20, 21, 22}, nil)
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(a), "SwapOut is not limited")
	require.NoError(t, m.Preempt(b), "Preempt is not limited")
	assert.Equal(t, 3, m.Stats().Waiting, "the swapped-out and the preempted sequences wait too")
	_, err = m.Add([]int32{6, 7}, nil)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	require.NoError(t, m.SwapIn(a))
	require.NoError(t, m.Check())
}
