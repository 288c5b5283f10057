package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestHybridStudyTargets: on W1-H at the size (2,000 requests, 8,192
// blocks) the default mode keeps at least 95% of W1's single-group admitted
// hits (vLLM's decisions) with a 1,024-token window, 70% with a 128-token
// one and 60% with Qwen3-Next's 3 state groups : 1 full-attention group,
// while the compat rows are vLLM's own figures (docs/workloads.md section 8; no
// state hits at all).
func TestHybridStudyTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("four full replays")
	}
	r, err := RunHybridStudy(HybridConfig{Windows: []int{128, 1024}})
	require.NoError(t, err)
	assert.EqualValues(t, 756976, r.SingleVLLM.AdmittedHitTokens)
	require.Len(t, r.Rows, 2)
	assert.EqualValues(t, 147744, r.Rows[0].VLLM.AdmittedHitTokens)
	assert.EqualValues(t, 501440, r.Rows[1].VLLM.AdmittedHitTokens)
	for _, g := range HybridTargets {
		for _, row := range r.Rows {
			if row.Window == g.Window {
				assert.GreaterOrEqual(t, row.Default.Share(r.SingleVLLM), g.Share, "window %d", g.Window)
			}
		}
	}
	require.Len(t, r.States, 1)
	st := r.States[0]
	assert.Equal(t, HybridStateRow{Model: "Qwen3-Next-80B-A3B", FullGroups: 1, StateGroups: 3, Pages: 34, VLLM: st.VLLM, Default: st.Default}, st)
	assert.Zero(t, st.VLLM.AdmittedHitTokens)
	assert.GreaterOrEqual(t, st.Default.Share(r.SingleVLLM), HybridStateTarget)
}

// TestHybridStudySmall: the split of admitted hits into first admissions
// and resumptions adds up, the compat rows are vLLM's reference figures
// (TestW1HOtherSizesMatchVLLM), and the default mode keeps more hits.
func TestHybridStudySmall(t *testing.T) {
	full, w33 := paged.Group{Kind: paged.FullAttention}, paged.Group{Kind: paged.SlidingWindow, Window: 33}
	layouts := []HybridLayout{
		{Groups: []paged.Group{full, w33, {Kind: paged.State, Pages: 34}}},
		{Name: "two windows of 33", Groups: []paged.Group{full, w33, w33}}, // one kind of one size: vLLM takes it
	}
	r, err := RunHybridStudy(HybridConfig{Windows: []int{33, 1}, Requests: 300, Blocks: 1024, Workers: 2, Layouts: layouts})
	require.NoError(t, err)
	require.Len(t, r.Layouts, 2)
	assert.Equal(t, "full + window 33 + state 34", r.Layouts[0].Name)
	assert.Equal(t, HybridVLLMRefused, r.Layouts[0].VLLMRefused)
	assert.Zero(t, r.Layouts[0].VLLM)
	assert.Positive(t, r.Layouts[0].Default.AdmittedHitTokens)
	assert.Equal(t, "two windows of 33", r.Layouts[1].Name)
	assert.Empty(t, r.Layouts[1].VLLMRefused)
	assert.Positive(t, r.Layouts[1].VLLM.AdmittedHitTokens)
	assert.Equal(t, 300, r.Requests)
	assert.EqualValues(t, 12400, r.Rows[0].VLLM.AdmittedHitTokens)
	assert.Equal(t, 15, r.Rows[0].VLLM.Preemptions)
	require.Len(t, r.States, 1)
	assert.Positive(t, r.States[0].Default.AdmittedHitTokens)
	for _, h := range []HybridHits{r.SingleVLLM, r.SingleDefault, r.Rows[0].VLLM, r.Rows[0].Default, r.Rows[1].Default, r.States[0].Default, r.Layouts[0].Default, r.Layouts[1].VLLM} {
		assert.Equal(t, h.AdmittedHitTokens, h.FirstHitTokens+h.ResumeHitTokens)
	}
	assert.Greater(t, r.Rows[0].Default.AdmittedHitTokens, r.Rows[0].VLLM.AdmittedHitTokens)
}

func TestHybridStudyErrors(t *testing.T) {
	for _, cfg := range []HybridConfig{
		{Windows: []int{}, StateModels: []string{}, Layouts: []HybridLayout{}},
		{Windows: []int{8}, Layouts: []HybridLayout{{Name: "empty"}}},
		{Windows: []int{8}, Requests: 50, Layouts: []HybridLayout{{Groups: []paged.Group{{Kind: paged.SlidingWindow, Window: 8}}}}},
		{Windows: []int{8}, StateModels: []string{"no such model"}},
		{Windows: []int{8}, StateModels: []string{"gpt-oss-120b"}},
		{Windows: []int{0}},
		{Windows: []int{8}, Requests: -1},
		{Windows: []int{8}, Requests: 1 << 20},
	} {
		_, err := RunHybridStudy(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}
