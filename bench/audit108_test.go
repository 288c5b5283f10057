package bench

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The sixty-second round of mutation testing (docs/testing.md): the
// hybrid-model study, the fragmentation study's simulation and the cache
// study's report.

// TestAudit108LayoutNames: the default layouts come named, and a layout
// names a state group by its pages and a shared group by its target.
func TestAudit108LayoutNames(t *testing.T) {
	layouts, err := DefaultHybridLayouts(16)
	require.NoError(t, err)
	require.Len(t, layouts, 2)
	assert.Equal(t, "full + window 128 + state 34", layouts[0].Name)
	assert.Equal(t, "full + window 128 + window 1024", layouts[1].Name)

	name := LayoutName([]paged.Group{
		{Kind: paged.FullAttention},
		{Kind: paged.State, Pages: 7, Window: 3},
		{Kind: paged.Shared, Target: 0, Pages: 5},
	})
	assert.Equal(t, "full + state 7 + shared of 0", name)
}

// TestAudit108StateGroupsTakeTheirPages: every state group of a model's
// layout takes the row's pages (kvmem's StateBlocks), not one page.
func TestAudit108StateGroupsTakeTheirPages(t *testing.T) {
	row, groups, err := stateLayout("Qwen3-Next-80B-A3B", 16)
	require.NoError(t, err)
	require.Equal(t, 34, row.Pages)
	require.Len(t, groups, row.FullGroups+row.StateGroups)
	for i, g := range groups[row.FullGroups:] {
		assert.Equal(t, paged.Group{Kind: paged.State, Pages: 34}, g, "state group %d", i)
	}
}

// TestAudit108StudyRowsAndReplays: an empty list of state models replays
// none (nil would replay the default ones), a layout without a name takes
// LayoutName's, and OnReplay is called once per replay: the single-group
// pair, then a pair per window and per layout.
func TestAudit108StudyRowsAndReplays(t *testing.T) {
	var replays atomic.Int32
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 32}}
	r, err := RunHybridStudy(HybridConfig{
		Windows: []int{32}, StateModels: []string{}, Layouts: []HybridLayout{{Groups: groups}},
		Requests: 20, Blocks: 1024, OnReplay: func() { replays.Add(1) },
	})
	require.NoError(t, err)
	assert.Empty(t, r.States)
	require.Len(t, r.Layouts, 1)
	assert.Equal(t, "full + window 32", r.Layouts[0].Name)
	assert.Equal(t, int32(6), replays.Load())
}

// TestAudit108BudgetOneTokenShort: a budget one token short of the
// maximum length is refused as invalid, whatever the model.
func TestAudit108BudgetOneTokenShort(t *testing.T) {
	for _, m := range []MemoryModel{ModelOracle, ModelMax, ModelPow2} {
		_, err := Frag(trace([2]int{3, 3}), m, 0, FragConfig{MaxLen: 8, KVTokens: 7, Allocator: AllocCompact})
		require.ErrorIs(t, err, ErrFragInvalid, m.String())
	}
	_, err := Frag(trace([2]int{3, 3}), ModelPaged, 1, FragConfig{MaxLen: 8, KVTokens: 7})
	require.ErrorIs(t, err, ErrFragInvalid, "paged")
}

// TestAudit108ArrivalsInTimeOrder: with arrivals, requests join the queue
// in the order they arrive, not the file's: the second request of the
// file arrives first and runs at step 0, before the first arrives at
// step 50 (1 s of 20 ms steps).
func TestAudit108ArrivalsInTimeOrder(t *testing.T) {
	reqs := []Request{
		{Arrival: time.Second, InputTokens: 4, OutputTokens: 2},
		{Arrival: 0, InputTokens: 4, OutputTokens: 2},
	}
	for _, run := range []FragRun{{Model: ModelOracle}, {Model: ModelPaged, BlockSize: 4}} {
		res, steps := recordSteps(t, reqs, run.Model, run.BlockSize, FragConfig{MaxLen: 8, KVTokens: 16, Arrivals: true})
		require.Equal(t, 6, res.Steps, run.Name())
		assert.Equal(t, []int{0, 1, 2, 50, 51, 52}, stepNumbers(steps), run.Name())
	}
}

func stepNumbers(steps []FragSlots) []int {
	out := make([]int, len(steps))
	for i, s := range steps {
		out[i] = s.Step
	}
	return out
}

// TestAudit108TruncateExactFit: a request of exactly the maximum length,
// all prompt or prompt and output, is not cut.
func TestAudit108TruncateExactFit(t *testing.T) {
	for _, io := range [][2]int{{8, 0}, {7, 1}, {1, 7}} {
		p, f, cut := Truncate(io[0], io[1], 8)
		assert.Equal(t, [3]any{io[0], 8, false}, [3]any{p, f, cut}, "Truncate(%d, %d, 8)", io[0], io[1])
	}
}

// TestAudit108CachePoliciesTrimNames: names are trimmed before they are
// looked up, as they come from a comma-separated flag.
func TestAudit108CachePoliciesTrimNames(t *testing.T) {
	pols, err := CachePolicies([]string{" lru", "arc ", "\tBelady\n"})
	require.NoError(t, err)
	names := make([]string, len(pols))
	for i, p := range pols {
		names[i] = p.Name
	}
	assert.Equal(t, []string{"lru", "arc", BeladyName}, names)
}
