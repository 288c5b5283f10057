package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit38UncomputeAtCheckpointKeepsIt: the checkpoint a sequence
// handed out at its branch point (8 tokens, blocks of 4) holds the state
// after those 8 tokens; an Uncompute that keeps them computed (computed
// 8 or more) keeps it, one that does not (7) forgets it with the block
// it ends. A later prompt sharing the 8 tokens then hits them (cached 8)
// or not (0). The boundary, computed exactly 8, is the one the existing
// tests did not reach: the mutation M138 (L*BlockSize < computed) forgot
// the checkpoint there.
func TestAudit38UncomputeAtCheckpointKeepsIt(t *testing.T) {
	prefix := seqOf(1, 8)
	with := func(tail int32) []int32 { return append(append([]int32(nil), prefix...), seqOf(int(tail), 5)...) }
	for _, tc := range []struct{ computed, want int }{{7, 0}, {8, 8}, {9, 8}, {13, 8}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 40,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
		require.NoError(t, err)
		a, _, err := m.Create(with(100), nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(a))
		b, cached, err := m.Create(with(200), nil)
		require.NoError(t, err)
		require.Zero(t, cached)
		require.Len(t, m.TakeCheckpoints(nil), 1, "the branch point's checkpoint")
		require.NoError(t, m.Uncompute(b, tc.computed))
		require.NoError(t, m.Check())
		require.NoError(t, m.Free(b))
		m.EndStep() // the step ran, up to computed: c comes in the next
		c, cached, err := m.Create(with(300), nil)
		require.NoError(t, err)
		require.Equal(t, tc.want, cached, "after Uncompute(%d), a prompt sharing the 8 tokens", tc.computed)
		require.NoError(t, m.Free(c))
		require.NoError(t, m.Check())
	}
}
