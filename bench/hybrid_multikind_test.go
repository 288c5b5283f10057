package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestW1MultiKindHits replays W1 (2,000 requests, 8,192 blocks, the
// default mode) on a layout of several kinds, a full-attention group, a
// 128-token sliding window and a state of 34 blocks (the planner's size
// of one of Qwen3-Next's Gated DeltaNet slices), which vLLM v1 at f20c3b0
// refuses: its prefix hits need the full-attention blocks, the window
// before the hit point and a checkpoint there at once, and retention keeps
// them (docs/hybrid.md, "Several kinds"). The figure is reported, with no
// target; the test requires the layout to run and hit, and logs the
// figures of W1 with each kind alone beside it (go test -v).
func TestW1MultiKindHits(t *testing.T) {
	if testing.Short() {
		t.Skip("a full W1 replay")
	}
	full, window, state := paged.Group{Kind: paged.FullAttention}, paged.Group{Kind: paged.SlidingWindow, Window: 128}, paged.Group{Kind: paged.State, Pages: 34}
	const w1 = 756976 // W1's single-group admitted hit tokens, vLLM's decisions
	var r W1Result
	// Each kind alone, for comparison, then both.
	for _, groups := range [][]paged.Group{{full, window}, {full, state}, {full, window, state}} {
		var err error
		r, err = RunW1(W1Config{Groups: groups, CountersOnly: true})
		require.NoError(t, err)
		t.Logf("%v: %d admitted hit tokens, %.1f%% of W1's %d; %d preemptions",
			groups, r.AdmittedHitTokens, 100*float64(r.AdmittedHitTokens)/w1, w1, r.Preemptions)
	}
	assert.Positive(t, r.AdmittedHitTokens)
}
