package sched

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit81LengthFloorOneBlockBelow: lengthFloor tries every length
// from a block below the longest, the longest's own block included. The
// case TestLengthFloorMatchesScan finds under M1592 (which it catches at
// CI's 200,000 runs, not at 100), set down: blocks of one token, a
// chunked-local group of 3 beside full attention, a prompt of one token
// that grows to 4. At 4 tokens the local group has released its first
// chunk; at 3 it still holds it, and the most (6 blocks) is there.
func TestAudit81LengthFloorOneBlockBelow(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 8, MaxModelLen: 1024,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 3}}, DisableOffload: true})
	require.NoError(t, err)
	s, err := New(m, Config{})
	require.NoError(t, err)
	var so paged.SeqOptions
	floor, at, err := s.lengthFloor(1, 4, &so)
	require.NoError(t, err)
	for n := 1; n <= 4; n++ {
		f, err := m.PrefillFloor(n, &so, false)
		require.NoError(t, err)
		require.LessOrEqual(t, f, floor, "at %d tokens", n)
	}
	require.Equal(t, 6, floor)
	require.Equal(t, 3, at)
}
