package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests that kill the examples/server mutants of the fifth mutation round
// (docs/testing.md, "Mutation testing, fifth round, part A").

// TestAudit48SubmitTakesMaxNSamples submits n = MaxN, the most a request
// may ask for: it is accepted and runs MaxN samples. A bound off by one
// (M322) refused it as invalid.
func TestAudit48SubmitTakesMaxNSamples(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	tk, err := s.Submit(Spec{PromptLen: 3, MaxTokens: 2, N: MaxN})
	require.NoError(t, err)
	for stepChecked(t, s, kv) {
	}
	st, err := s.Status(tk.ID)
	require.NoError(t, err)
	assert.Equal(t, MaxN, st.N)
	assert.Len(t, st.Generated, MaxN)
	assert.Equal(t, uint64(1), s.Snapshot().Requests.Parallel)
}

// TestAudit48ReadmissionLeavesTheQueueAlone preempts a running request
// and lets it be admitted again: a request leaves the admission queue
// once, at its first admission, so the queue stays empty throughout and
// MaxQueued still bounds it. Counting the readmission (M331) took the
// queue to -1, which let MaxQueued+1 requests wait.
func TestAudit48ReadmissionLeavesTheQueueAlone(t *testing.T) {
	// As TestPreemptionByRecomputeFinishesBoth: 8 usable blocks, each
	// request needs 3 at admission and 6 at its end.
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 9}, MaxQueued: 1})
	_, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 50})
	require.NoError(t, err)
	stepChecked(t, s, kv)
	_, err = s.Submit(Spec{PromptLen: 40, MaxTokens: 50})
	require.NoError(t, err)
	for stepChecked(t, s, kv) {
		require.GreaterOrEqual(t, s.Snapshot().Requests.Queued, 0)
		if s.Snapshot().Preemptions > 0 && s.Snapshot().Requests.Waiting == 0 {
			break // the preempted request is running again
		}
	}
	sn := s.Snapshot()
	require.Positive(t, sn.Preemptions, "no preemption")
	require.Zero(t, sn.Requests.Waiting, "the preempted request was not readmitted")
	assert.Zero(t, sn.Requests.Queued)
	_, err = s.Submit(Spec{PromptLen: 40, MaxTokens: 50})
	require.NoError(t, err)
	_, err = s.Submit(Spec{PromptLen: 40, MaxTokens: 50})
	require.ErrorIs(t, err, ErrQueueFull, "MaxQueued 1 holds one request")
}

// TestAudit48PeakUsedOutlivesTheRequests runs a request to its end: the
// peak of used blocks is the most it held (4 blocks for 50 tokens of 16),
// not the 0 held after it. A peak that kept the lowest value (M333)
// reported the current use, 0.
func TestAudit48PeakUsedOutlivesTheRequests(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64, DisablePrefixCaching: true}})
	_, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 10})
	require.NoError(t, err)
	for stepChecked(t, s, kv) {
	}
	sn := s.Snapshot()
	assert.Zero(t, sn.Blocks.Used)
	assert.Equal(t, 4, sn.Blocks.PeakUsed)
}

// TestAudit48IDOfWrongLengthIsMalformed asks for ids of 25 and 27
// characters of the right alphabet: 400 invalid_request, as for any
// malformed id. Taking every id of 26 or more (M336) answered the long
// one 404 unknown_request, as if it were well formed.
func TestAudit48IDOfWrongLengthIsMalformed(t *testing.T) {
	_, hs := newHTTPTest(t)
	for _, id := range []string{strings.Repeat("A", 25), strings.Repeat("A", 27)} {
		code, body := call(t, "GET", hs.URL+"/requests/"+id, "")
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.Equal(t, "invalid_request", decodeError(t, body).Code)
	}
	code, body := call(t, "GET", hs.URL+"/requests/"+strings.Repeat("A", 26), "")
	assert.Equal(t, http.StatusNotFound, code, body)
}

// TestAudit48EmptyBearerTokenIsMissing cancels with "Authorization:
// Bearer " and nothing after it: 401 missing_token with a
// WWW-Authenticate challenge, as with no header. Over the wire the
// header's trailing space is trimmed before the handler sees it, so the
// request goes to Handler in-process, as an embedding program may. Without
// the empty-token check (M337) it was 403 wrong_token.
func TestAudit48EmptyBearerTokenIsMissing(t *testing.T) {
	srv, _ := newHTTPTest(t)
	st, err := srv.Submit(context.Background(), Spec{PromptLen: 5, MaxTokens: 1})
	require.NoError(t, err)
	req := httptest.NewRequest("POST", "/requests/"+string(st.ID)+"/cancel", nil)
	req.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	assert.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
	assert.Equal(t, "missing_token", decodeError(t, w.Body.String()).Code)
	assert.NotEmpty(t, w.Header().Get("WWW-Authenticate"))
	st, err = srv.Status(context.Background(), st.ID)
	require.NoError(t, err)
	assert.Equal(t, "waiting", st.State, "nothing cancelled")
}

// TestAudit48StoppedServerStatsDoNotAddUp asks a stopped server for its
// statistics three times after one refused submission: each reports the
// one refusal. Sharing the final snapshot's RejectedBy map (M339) added
// the refusals into it at every call: 1, 2, 3.
func TestAudit48StoppedServerStatsDoNotAddUp(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, MaxSteps: 1})
	require.NoError(t, err)
	ctx := context.Background()
	go srv.Run(ctx)
	_, err = srv.Submit(ctx, Spec{PromptLen: 10, MaxTokens: 5})
	require.NoError(t, err)
	<-srv.Done()
	_, err = srv.Submit(ctx, Spec{PromptLen: 10, MaxTokens: 1})
	require.ErrorIs(t, err, ErrClosed)
	for i := range 3 {
		sn, err := srv.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(1), sn.Requests.RejectedBy["unavailable"], "call %d", i)
		assert.Equal(t, uint64(1), sn.Requests.Rejected, "call %d", i)
	}
}

// TestAudit48UnavailableCarriesRetryAfter submits to a server whose loop
// has stopped: 503 unavailable with Retry-After, as RFC 9110 allows for
// 503 and the 429s carry. Without it for 503 (M335) the header was
// missing.
func TestAudit48UnavailableCarriesRetryAfter(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, MaxSteps: 1,
		HTTP: HTTPConfig{RetryAfter: 2500 * time.Millisecond}})
	require.NoError(t, err)
	go srv.Run(context.Background())
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	code, body := call(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 3}`)
	require.Equal(t, http.StatusAccepted, code, body)
	<-srv.Done()
	code, body, hdr := callHeader(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 1}`, "")
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Equal(t, "unavailable", decodeError(t, body).Code)
	assert.Equal(t, "3", hdr.Get("Retry-After"), "2.5 s rounds up")
}

// TestAudit48RequestFinishesWithItsLastSample runs two samples in a pool
// too small for both: one is preempted and finishes steps after the
// other. The request stays live, and unfinished in the counters, until
// its last sample ends. Retiring it at its first sample's end (M332)
// counted it finished, and no longer running, while a sample still ran.
func TestAudit48RequestFinishesWithItsLastSample(t *testing.T) {
	// 8 usable blocks: the 40-token prompt's 2 full blocks are shared,
	// and each sample's 90 tokens need 4 more.
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 9}})
	tk, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 50, N: 2})
	require.NoError(t, err)
	apart := false // a step with one sample done and the other not
	for i := 0; stepChecked(t, s, kv); i++ {
		require.Less(t, i, 1000)
		st, err := s.Status(tk.ID)
		require.NoError(t, err)
		sn := s.Snapshot()
		if st.State == "finished" {
			continue
		}
		apart = apart || (st.Generated[0] == 50) != (st.Generated[1] == 50)
		assert.Zero(t, sn.Requests.Finished, "step %d: %s, generated %v", i, st.State, st.Generated)
		assert.Equal(t, 1, sn.Requests.Running+sn.Requests.Waiting, "step %d: the request is live", i)
	}
	require.True(t, apart, "the samples finished together")
	sn := s.Snapshot()
	assert.Equal(t, uint64(1), sn.Requests.Finished)
	st, err := s.Status(tk.ID)
	require.NoError(t, err)
	assert.Equal(t, []int{50, 50}, st.Generated)
}
