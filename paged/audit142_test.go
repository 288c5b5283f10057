package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit142BuildFromRefusesALongerFirst: a first slice of another
// length than blocksPerSeq is ErrInvalid, a longer one as a shorter one
// (audit 26 tried a shorter one only), and leaves the plan unchanged.
func TestAudit142BuildFromRefusesALongerFirst(t *testing.T) {
	var p paged.SplitPlan
	require.NoError(t, p.Build([]int32{5, 10}, 2, 1))
	before := append([]paged.SplitItem(nil), p.Items...)
	require.ErrorIs(t, p.BuildFrom([]int32{0, 0, 0}, []int32{5, 10}, 2, 1), paged.ErrInvalid)
	require.Equal(t, before, p.Items)
	require.EqualValues(t, 15, p.TotalBlocks)
}

// TestAudit142CheckFindsBrokenPlans: Check refuses plans Build never
// makes, each broken one way only: an empty item, a sequence covered
// short of its end, a wrong MaxItemBlocks, a plan of zero units.
func TestAudit142CheckFindsBrokenPlans(t *testing.T) {
	empty := paged.SplitPlan{Items: []paged.SplitItem{{}}, Merge: []int32{0, 1}, Units: 1, MinChunkBlocks: 1}
	require.Error(t, empty.Check([]int32{0}), "an item of no blocks")

	short := paged.SplitPlan{Items: []paged.SplitItem{{End: 2}}, Merge: []int32{0, 1}, Units: 1, MinChunkBlocks: 1,
		TotalBlocks: 4, MaxItemBlocks: 2, MaxUnitBlocks: 2}
	require.Error(t, short.Check([]int32{4}), "blocks 2 and 3 uncovered")
	short.Items[0].End = 4
	short.MaxItemBlocks, short.MaxUnitBlocks = 4, 4
	require.NoError(t, short.Check([]int32{4}), "the same plan, whole")

	var p paged.SplitPlan
	blocks := []int32{6, 2, 9}
	require.NoError(t, p.Build(blocks, 4, 2))
	require.NoError(t, p.Check(blocks))
	p.MaxItemBlocks++
	require.Error(t, p.Check(blocks), "MaxItemBlocks one too large")

	none := paged.SplitPlan{Merge: []int32{0}}
	require.Error(t, none.Check(nil), "a plan of zero units")
	none.Units = 1
	require.NoError(t, none.Check(nil), "an empty batch on one unit")
}
