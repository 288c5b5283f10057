package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestSubmitWindowedPeakBeforeTheEnd: Submit weighed a windowed sequence
// (paged.SeqOptions.Window) at its longest only, but a window's floor is
// not monotone in the length: computed in chunks without prefix caching,
// a 4-token prompt of window 2 in blocks of 2 reads one block at its last
// token and two at its third. In a pool of two usable blocks, one kept by
// the watermark, Submit accepted it and Schedule aborted it ("seq0.1
// needs 2 blocks": the manager judges a chunked admission by its peak);
// it is refused now, changing nothing, and a prompt whose every step fits
// is accepted and runs.
func TestSubmitWindowedPeakBeforeTheEnd(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 3, Watermark: 0.5, MaxModelLen: 64, DisablePrefixCaching: true})
	var aborted []*sched.Request
	cfg := sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4}
	cfg.Hooks.Aborted = func(r *sched.Request, _ error) { aborted = append(aborted, r) }
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	win := &paged.SeqOptions{Window: 2}
	r, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 1, Seq: win})
	require.ErrorIs(t, err, sched.ErrNever)
	assert.Contains(t, err.Error(), "admitted at 3 tokens")
	assert.Nil(t, r)
	assert.Zero(t, m.Stats().Sequences)
	// Two tokens: one block at each step.
	r, err = s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 1, Seq: win})
	require.NoError(t, err)
	drain(t, s, 5)
	assert.Equal(t, sched.Finished, r.State())
	assert.Empty(t, aborted)
}
