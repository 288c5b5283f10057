package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestW1MultiKindHits replays W1 (2,000 requests, 8,192 blocks, the
// default mode) on the hybrid study's layouts of several kinds
// (DefaultHybridLayouts): a full-attention group, a 128-token sliding
// window and a state of 34 blocks (the planner's size of one of
// Qwen3-Next's Gated DeltaNet slices), and two windows of 128 and 1,024
// tokens, which vLLM v1 at f20c3b0 refuses: a prefix hit needs every
// group's blocks at once, and retention keeps them (docs/hybrid.md,
// "Several kinds"). The figures are reported, with no target; the test
// requires each layout to run and hit, the study's rows to be these
// replays (its admission-line count through the fast hasher equals
// RunW1's own count with SHA-256), the compat mode to be refused rather
// than scored, and logs W1 with each kind alone beside them (go test -v).
func TestW1MultiKindHits(t *testing.T) {
	if testing.Short() {
		t.Skip("full W1 replays")
	}
	layouts, err := DefaultHybridLayouts(16)
	require.NoError(t, err)
	require.Len(t, layouts, 2)
	study, err := RunHybridStudy(HybridConfig{Windows: []int{}, StateModels: []string{}, Layouts: layouts})
	require.NoError(t, err)
	require.Len(t, study.Layouts, len(layouts))
	const w1 = 756976 // W1's single-group admitted hit tokens, vLLM's decisions
	assert.EqualValues(t, w1, study.SingleVLLM.AdmittedHitTokens)
	for i, l := range layouts {
		// Each kind besides full attention alone, for comparison, then all.
		for k := 1; k < len(l.Groups); k++ {
			r, err := RunW1(W1Config{Groups: []paged.Group{l.Groups[0], l.Groups[k]}, CountersOnly: true})
			require.NoError(t, err)
			t.Logf("%s: %d admitted hit tokens, %.1f%% of W1's %d; %d preemptions",
				LayoutName([]paged.Group{l.Groups[0], l.Groups[k]}), r.AdmittedHitTokens, 100*float64(r.AdmittedHitTokens)/w1, w1, r.Preemptions)
		}
		r, err := RunW1(W1Config{Groups: l.Groups, CountersOnly: true})
		require.NoError(t, err)
		t.Logf("%s: %d admitted hit tokens, %.1f%% of W1's %d; %d preemptions",
			l.Name, r.AdmittedHitTokens, 100*float64(r.AdmittedHitTokens)/w1, w1, r.Preemptions)
		assert.Positive(t, r.AdmittedHitTokens, l.Name)
		row := study.Layouts[i]
		assert.Equal(t, l.Name, row.Name)
		assert.Equal(t, r.AdmittedHitTokens, row.Default.AdmittedHitTokens, l.Name)
		assert.Equal(t, r.Preemptions, row.Default.Preemptions, l.Name)
		assert.Equal(t, HybridVLLMRefused, row.VLLMRefused, l.Name)
		assert.Zero(t, row.VLLM, "no figure for a layout vLLM cannot run")
	}
	assert.Equal(t, "full + window 128 + state 34", layouts[0].Name)
	assert.Equal(t, "full + window 128 + window 1024", layouts[1].Name)
}
