package paged_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit26SplitPlanSkipsReleasedWindow: a split-KV plan of a sliding
// window sequence covers only the blocks its queries read. It was built
// from the whole table, so its items (and the units' shares) included the
// null entries of released blocks: work items over nothing.
func TestAudit26SplitPlanSkipsReleasedWindow(t *testing.T) {
	const bs, window = 4, 16
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64})
	require.NoError(t, err)
	prompt := make([]int32, 37)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	win, _, err := m.Create(prompt, &paged.SeqOptions{Window: window})
	require.NoError(t, err)
	full, _, err := m.Create(prompt[:30], nil)
	require.NoError(t, err)
	b := paged.Batch{SplitUnits: 3}
	sched := []paged.Scheduled{{ID: win, NewTokens: len(prompt)}, {ID: full, NewTokens: 30}}
	require.NoError(t, m.BuildBatch(&b, sched))
	for range 40 { // decode steps: the window slides and releases blocks
		_, err := m.DecodeStep(&b, []paged.Scheduled{{ID: win, NewTokens: 1}, {ID: full, NewTokens: 1}}, []int32{7, 8})
		require.NoError(t, err)
	}
	require.NoError(t, b.Split.CheckFrom(b.FirstBlocks, b.BlocksPerSeq))
	// The window of the first new token at p = 76 reaches p-15 = 61:
	// block 15 of 20.
	require.Equal(t, []int32{15, 0}, b.FirstBlocks)
	require.EqualValues(t, 20-15+18, b.Split.TotalBlocks) // 77 and 70 tokens
	for _, it := range b.Split.Items {
		row := b.Tables[int(it.Seq)*b.Stride:]
		for j := it.First; j < it.End; j++ {
			require.NotZero(t, row[j], "item %+v covers the null entry %d", it, j)
		}
	}
}

// TestAudit26BuildFromMatchesShiftedBuild: BuildFrom plans the blocks
// from first[s] as Build plans sequences of blocksPerSeq[s]-first[s]
// blocks, items shifted by first[s]; bad first slices are ErrInvalid and
// leave the plan unchanged.
func TestAudit26BuildFromMatchesShiftedBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 3))
	var from, plain paged.SplitPlan
	for range 500 {
		n := r.IntN(6)
		blocks, first, rest := make([]int32, n), make([]int32, n), make([]int32, n)
		for s := range n {
			blocks[s] = int32(r.IntN(40))
			first[s] = int32(r.IntN(int(blocks[s]) + 1))
			rest[s] = blocks[s] - first[s]
		}
		units, minChunk := 1+r.IntN(8), 1+r.IntN(4)
		require.NoError(t, from.BuildFrom(first, blocks, units, minChunk))
		require.NoError(t, from.CheckFrom(first, blocks))
		require.NoError(t, plain.Build(rest, units, minChunk))
		require.Equal(t, len(plain.Items), len(from.Items))
		for i, it := range plain.Items {
			it.First += first[it.Seq]
			it.End += first[it.Seq]
			require.Equal(t, it, from.Items[i])
		}
		require.Equal(t, plain.Merge, from.Merge)
		require.Equal(t, plain.TotalBlocks, from.TotalBlocks)
		require.Equal(t, plain.MaxUnitBlocks, from.MaxUnitBlocks)
	}
	before := from
	before.Items = append([]paged.SplitItem(nil), from.Items...)
	for _, bad := range [][]int32{{0}, {-1, 0}, {0, 11}} {
		require.ErrorIs(t, from.BuildFrom(bad, []int32{5, 10}, 2, 1), paged.ErrInvalid)
		require.Equal(t, before.Items, from.Items)
		require.Equal(t, before.TotalBlocks, from.TotalBlocks)
	}
}
