package main

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests that kill the examples/server mutants of the seventy-eighth
// mutation round (docs/testing.md, "Mutation testing, seventy-eighth
// round").

// TestAudit125DefaultMaxNumSeqs: the zero MaxNumSeqs runs up to 256
// sequences at once, as vLLM's max_num_seqs, and no more. A default of
// MaxN (M3272) passed NewScheduler's bound and every test, none of which
// ran more than 16 sequences without setting the bound.
func TestAudit125DefaultMaxNumSeqs(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 1024}})
	for range 300 {
		_, err := s.Submit(Spec{PromptLen: 4, MaxTokens: 2})
		require.NoError(t, err)
	}
	require.True(t, stepChecked(t, s, kv))
	sn := s.Snapshot()
	assert.Equal(t, 256, sn.Sequences.Running)
	assert.Equal(t, 44, sn.Requests.Queued)
	for stepChecked(t, s, kv) {
	}
	assert.Equal(t, 256, s.Snapshot().Sequences.PeakRunning)
}

// TestAudit125RetiredRequestsAreForgotten: a request that finishes, is
// cancelled (waiting or running) or is aborted leaves the scheduler's
// live maps, by public ID and by the scheduler's, so an idle server holds
// no request but the KeepFinished it keeps for Status. Keeping the
// scheduler's ID (M3280) changed no answer: only memory grew with every
// request served.
func TestAudit125RetiredRequestsAreForgotten(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: abortingPool()})
	bad, err := s.Submit(Spec{PromptLen: 80, MaxTokens: 17}) // aborted: see TestHTTPAbortedRequest
	require.NoError(t, err)
	run, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 30})
	require.NoError(t, err)
	done, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 2, N: 2})
	require.NoError(t, err)
	require.True(t, stepChecked(t, s, kv))
	require.True(t, stepChecked(t, s, kv))
	require.NoError(t, s.Cancel(run.ID, run.CancelToken))
	wait, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 2})
	require.NoError(t, err)
	require.NoError(t, s.Cancel(wait.ID, wait.CancelToken))
	for stepChecked(t, s, kv) {
	}
	for id, want := range map[ReqID]string{bad.ID: "aborted", run.ID: "cancelled", done.ID: "finished", wait.ID: "cancelled"} {
		st, err := s.Status(id)
		require.NoError(t, err)
		assert.Equal(t, want, st.State)
	}
	assert.Empty(t, s.live)
	assert.Empty(t, s.byID)
	assert.Len(t, s.finished, 4)
	assert.Zero(t, s.queued)
}

// TestAudit125CacheResetIsCounted: an AllBlocksCleared event, which the
// manager emits when its owner resets the prefix cache between steps with
// nothing held (after a weight update), is drained by the next step and
// counted in the snapshot, beside the blocks stored since. No server path
// resets the cache itself, so no test had counted one (M3291).
func TestAudit125CacheResetIsCounted(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64, Events: 64}})
	_, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 2})
	require.NoError(t, err)
	for stepChecked(t, s, kv) {
	}
	require.Positive(t, s.Snapshot().Blocks.Cached)
	require.NoError(t, s.Manager().ResetCache())
	_, err = s.Submit(Spec{PromptLen: 5, MaxTokens: 1})
	require.NoError(t, err)
	for stepChecked(t, s, kv) {
	}
	sn := s.Snapshot()
	assert.Equal(t, uint64(1), sn.Events.Cleared)
	assert.Zero(t, sn.Blocks.Cached)
}
