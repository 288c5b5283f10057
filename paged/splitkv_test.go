package paged_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/internal/probe"
	"github.com/pagedkv/pagedkv/paged"
)

// checkBalance asserts the balance promises of the SplitPlan doc.
func checkBalance(t *testing.T, p *paged.SplitPlan, blocks []int32) {
	t.Helper()
	require.NoError(t, p.Check(blocks))
	if p.TotalBlocks == 0 {
		return
	}
	ideal := p.Ideal()
	m := int64(p.MinChunkBlocks)
	assert.LessOrEqual(t, p.MaxUnitBlocks, int64(math.Ceil(ideal))+2*(m-1), "busiest unit vs ideal %.2f", ideal)
	assert.LessOrEqual(t, int64(p.MaxItemBlocks), p.MaxUnitBlocks)
	assert.GreaterOrEqual(t, float64(p.MaxUnitBlocks), ideal)
	assert.LessOrEqual(t, len(p.Items), len(blocks)+p.Units-1)
}

func TestSplitPlanSmall(t *testing.T) {
	var p paged.SplitPlan
	// One long sequence on 4 units: four equal chunks, one per unit.
	require.NoError(t, p.Build([]int32{100}, 4, 2))
	require.Len(t, p.Items, 4)
	for i, it := range p.Items {
		assert.Equal(t, 25, it.Blocks())
		assert.Equal(t, int32(i*25), it.First)
	}
	assert.Equal(t, int64(25), p.MaxUnitBlocks)
	assert.Equal(t, 25, p.MaxItemBlocks)
	checkBalance(t, &p, []int32{100})

	// Short sequences are never split below the minimum chunk: 7 blocks
	// with a minimum of 4 cannot be cut into two pieces of 4 or more.
	blocks := []int32{7, 1, 0, 9}
	require.NoError(t, p.Build(blocks, 16, 4))
	assert.Equal(t, []int32{0, 1, 2, 2, 4}, p.Merge)
	assert.Equal(t, 7, p.Partials(0)[0].Blocks())
	assert.Empty(t, p.Partials(2))
	for _, it := range p.Partials(3) {
		assert.GreaterOrEqual(t, it.Blocks(), 4)
	}
	checkBalance(t, &p, blocks)
}

func TestSplitPlanInvalid(t *testing.T) {
	var p paged.SplitPlan
	require.NoError(t, p.Build([]int32{10, 20}, 3, 1))
	before := append([]paged.SplitItem(nil), p.Items...)
	for _, tc := range []struct {
		blocks      []int32
		units, minC int
	}{
		{[]int32{1, -1}, 4, 1},
		{[]int32{1}, 0, 1},
		{[]int32{1}, 1 << 21, 1},
		{[]int32{1}, 4, 0},
	} {
		err := p.Build(tc.blocks, tc.units, tc.minC)
		require.Error(t, err)
		assert.True(t, errors.Is(err, paged.ErrInvalid), err)
		assert.Equal(t, before, p.Items, "a refused Build changes nothing")
	}
}

// TestSplitPlanRandom: every plan of random batches covers every block
// exactly once and keeps its balance promises.
func TestSplitPlanRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var p paged.SplitPlan
	for range 2000 {
		blocks := make([]int32, r.IntN(40))
		for s := range blocks {
			switch r.IntN(3) {
			case 0:
				blocks[s] = int32(r.IntN(4))
			case 1:
				blocks[s] = int32(r.IntN(100))
			default:
				blocks[s] = int32(r.IntN(9000))
			}
		}
		units, minC := 1+r.IntN(200), 1+r.IntN(40)
		require.NoError(t, p.Build(blocks, units, minC))
		checkBalance(t, &p, blocks)
	}
}

// mixedBatch returns 256 decode sequences of 1 token to 128K tokens
// (log-uniform), in blocks of 16 tokens.
func mixedBatch() []int32 {
	r := rand.New(rand.NewPCG(7, 7))
	blocks := make([]int32, 256)
	for s := range blocks {
		tokens := int(math.Exp(r.Float64() * math.Log(128*1024)))
		blocks[s] = int32((tokens + 15) / 16)
	}
	return blocks
}

func TestSplitPlanAllocs(t *testing.T) {
	blocks := mixedBatch()
	var p paged.SplitPlan
	require.NoError(t, p.Build(blocks, 132, 16))
	checkBalance(t, &p, blocks)
	var err error
	allocs := testing.AllocsPerRun(100, func() { err = p.Build(blocks, 132, 16) })
	require.NoError(t, err)
	assert.Zero(t, allocs)
}

func BenchmarkSplitPlan(b *testing.B) {
	blocks := mixedBatch()
	var p paged.SplitPlan
	if err := p.Build(blocks, 132, 16); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Build(blocks, 132, 16)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/probe.SHA256(), "x-sha256")
	b.ReportMetric(float64(len(p.Items)), "items")
	b.ReportMetric(float64(p.MaxUnitBlocks)/p.Ideal(), "maxunit/ideal")
	b.ReportMetric(p.Ideal(), "ideal-blocks")
}
