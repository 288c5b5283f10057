package main

import (
	"bytes"
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

// Tests that kill the examples/server mutants of the forty-first mutation
// round (docs/testing.md, "Mutation testing, forty-first round").

// TestAudit87MaxNumSeqsHoldsOneRequestsSamples: MaxNumSeqs must leave
// room for the MaxN samples of one request, so MaxN-1 is refused and MaxN
// taken. The bound one lower (M1810) took MaxN-1, and a request of MaxN
// samples could then never run.
func TestAudit87MaxNumSeqsHoldsOneRequestsSamples(t *testing.T) {
	_, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, MaxNumSeqs: MaxN - 1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, MaxNumSeqs: MaxN})
	require.NoError(t, err)
}

// TestAudit87CancellingTheLastRequestWakesIdle: a waiter for idleness is
// woken when the last live request is cancelled, not only by a step;
// cancelling one of two wakes nobody. Without Cancel's notice (M1816)
// the channel stayed open until a step that never came.
func TestAudit87CancellingTheLastRequestWakesIdle(t *testing.T) {
	s, _ := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	a, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 4})
	require.NoError(t, err)
	b, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 4})
	require.NoError(t, err)
	ch := s.IdleChan()
	require.NoError(t, s.Cancel(a.ID, a.CancelToken))
	select {
	case <-ch:
		t.Fatal("idle with a request waiting")
	default:
	}
	require.NoError(t, s.Cancel(b.ID, b.CancelToken))
	select {
	case <-ch:
	default:
		t.Fatal("cancelling the last request did not wake the idle waiter")
	}
}

// TestAudit87ForkedSamplesDivergeAtTheirFirstToken: the fake model gives
// each of a request's samples its own first token, drawn in the prompt
// step, so the forks' sequences differ from the first generated position
// (and copy on write from there). Giving the prompt step's n samples
// sample 0's token (M1820) made them equal up to their second token, which
// no figure showed.
func TestAudit87ForkedSamplesDivergeAtTheirFirstToken(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	tk, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 3, N: 3})
	require.NoError(t, err)
	// The first step computes the prompt and samples each fork's first
	// token, which the second writes at position 5.
	require.True(t, stepChecked(t, s, kv))
	require.True(t, stepChecked(t, s, kv))
	r := s.live[tk.ID].r
	var seqs [][]int32
	for i := range 3 {
		toks, err := s.Manager().Tokens(r.Seq(i))
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(toks), 6, "sample %d", i)
		seqs = append(seqs, toks)
	}
	for i := range seqs {
		assert.Equal(t, seqs[0][:5], seqs[i][:5], "sample %d shares the prompt", i)
		for j := range i {
			assert.NotEqual(t, seqs[j][5], seqs[i][5], "samples %d and %d drew the same first token", j, i)
		}
	}
}

// TestAudit87GroupCountsAreTheEvents runs distinct prompts through a
// small hybrid pool, so blocks of every group are stored and those of the
// full and window groups evicted, and counts each group's blocks from the KV events (OnEvent) and its
// checkpoints from the steps (Checkpoints): the snapshot's per-group
// figures are those counts. Counting a group's removed blocks as stored
// (M1822) went unseen, as no test had seen a group's removals.
func TestAudit87GroupCountsAreTheEvents(t *testing.T) {
	groups, err := ParseLayout("full window:32 state:2", 16)
	require.NoError(t, err)
	stored, removed, ckpts := make([]uint64, 3), make([]uint64, 3), make([]uint64, 3)
	var s *Scheduler
	s, err = NewScheduler(SchedulerConfig{
		Manager: paged.Config{NumBlocks: 24, Groups: groups, Events: 1024},
		OnEvent: func(e paged.Event) {
			switch e.Kind {
			case paged.BlockStored:
				stored[e.Group] += uint64(len(e.Hashes))
			case paged.BlockRemoved:
				removed[e.Group] += uint64(len(e.Hashes))
			}
		},
		OnBatch: func(*paged.Manager, *paged.Batch) {
			for _, c := range s.Checkpoints() {
				ckpts[c.Group]++
			}
		},
	})
	require.NoError(t, err)
	// Prompts of 100 tokens sharing their first 48, one at a time: a
	// later one hits the shared blocks (and the state checkpoint taken
	// where the prefix branched) while the pool evicts the rest.
	for i := range 6 {
		prompt := make([]int32, 100)
		for j := range prompt {
			prompt[j] = int32(j + 1)
			if j >= 48 {
				prompt[j] = int32(1000*(i+1) + j)
			}
		}
		_, err := s.Submit(Spec{Prompt: prompt, MaxTokens: 20})
		require.NoError(t, err)
		for s.Step() {
		}
	}
	sn := s.Snapshot()
	require.Zero(t, sn.Events.Dropped)
	require.Len(t, sn.Groups, 3)
	for g, gc := range sn.Groups {
		require.Positive(t, stored[g], "group %d stored nothing", g)
		if g < 2 { // the state group's one checkpoint stays
			require.Positive(t, removed[g], "group %d: nothing evicted", g)
		}
		assert.Equal(t, stored[g], gc.StoredBlocks, "group %d", g)
		assert.Equal(t, removed[g], gc.RemovedBlocks, "group %d", g)
		assert.Equal(t, ckpts[g], gc.Checkpoints, "group %d", g)
	}
	require.Positive(t, ckpts[2], "the state group took no checkpoint")
}

// TestAudit87NegativeHTTPLimitsAreRefused: each of HTTPConfig's four
// limits refuses a negative value. A negative BodyTimeout passed (M1825)
// and set a deadline already past on every body.
func TestAudit87NegativeHTTPLimitsAreRefused(t *testing.T) {
	for _, h := range []HTTPConfig{{MaxBodyBytes: -1}, {BodyTimeout: -time.Second}, {MaxConcurrentBodies: -1}, {RetryAfter: -time.Second}} {
		_, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, HTTP: h})
		require.ErrorIs(t, err, ErrInvalid, "%+v", h)
	}
}

// TestAudit87DefaultBodyLimit: the default body limit is 16 bytes per
// token of MaxModelLen (512 here) plus 4 KiB: a body of exactly 12288
// bytes is read, one byte more gets 413. Without the 4 KiB (M1826) the
// first was refused too.
func TestAudit87DefaultBodyLimit(t *testing.T) {
	_, hs := newHTTPTest(t)
	body := func(n int) string {
		head := `{"prompt_len": 5, "max_tokens": 1`
		return head + strings.Repeat(" ", n-len(head)-1) + "}"
	}
	const limit = 4<<10 + 16*512
	code, text := call(t, "POST", hs.URL+"/requests", body(limit))
	assert.Equal(t, http.StatusAccepted, code, text)
	code, text = call(t, "POST", hs.URL+"/requests", body(limit+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, text)
	assert.Equal(t, "body_too_large", decodeError(t, text).Code)
}

// TestAudit87ExpiredDeadlineIsUnavailable asks for a status with a
// request context whose deadline has passed, of a server whose loop is
// not running: 503 unavailable with Retry-After, as for a cancelled
// context. Only the cancellation (M1832) made a deadline a 500 internal.
func TestAudit87ExpiredDeadlineIsUnavailable(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}})
	require.NoError(t, err)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	req := httptest.NewRequest("GET", "/requests/"+strings.Repeat("A", 26), nil).WithContext(ctx)
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	assert.Equal(t, "unavailable", decodeError(t, w.Body.String()).Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
}

// TestAudit87ManualServerStopsAtItsStepLimit: a Manual server whose Step
// call reaches MaxSteps stops, as a stepping one does: Done closes, and
// later calls fail with ErrClosed and its final statistics. Without the
// check after a call (M1835) a Manual server never stopped. A call asking
// for more steps than the limit leaves runs only up to it (before audit
// 88, M1894, Step(ctx, 5) with MaxSteps 2 ran five).
func TestAudit87ManualServerStopsAtItsStepLimit(t *testing.T) {
	for _, n := range []int{2, 5} {
		srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, Manual: true, MaxSteps: 2})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go srv.Run(ctx)
		_, err = srv.Submit(ctx, Spec{PromptLen: 5, MaxTokens: 20})
		require.NoError(t, err)
		require.NoError(t, srv.Step(ctx, n))
		select {
		case <-srv.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("Step(%d): a Manual server ran on past MaxSteps", n)
		}
		_, err = srv.Submit(ctx, Spec{PromptLen: 5, MaxTokens: 1})
		require.ErrorIs(t, err, ErrClosed)
		sn, err := srv.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(2), sn.Steps, "Step(%d)", n)
	}
}

// TestAudit87NoStepsNoTimePerStep: a scheduler that has run no step has
// no manager time per step, and its summary says so. Without the guard
// (M1838) the mean divided by zero and panicked.
func TestAudit87NoStepsNoTimePerStep(t *testing.T) {
	s, _ := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	_, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 1})
	require.NoError(t, err)
	sn := s.Snapshot()
	require.Zero(t, sn.Steps)
	assert.Zero(t, sn.ManagerPerStep())
	var out bytes.Buffer
	writeSummary(&out, sn, 0)
	assert.Contains(t, out.String(), "manager      0s per step")
}

// TestAudit87DroppedEventsAreReported: with a KV event buffer of one
// event, a step that stores three prompts' blocks drops two events, and
// the snapshot and the metrics report the manager's count. Leaving it out
// (M1842) reported 0.
func TestAudit87DroppedEventsAreReported(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64, Events: 1}})
	for range 3 {
		_, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 1})
		require.NoError(t, err)
	}
	require.True(t, stepChecked(t, s, kv))
	dropped := s.Manager().Stats().EventsDropped
	require.Positive(t, dropped)
	sn := s.Snapshot()
	assert.Equal(t, dropped, sn.Events.Dropped)
	var out bytes.Buffer
	require.NoError(t, WriteMetrics(&out, sn))
	_, samples := parseMetrics(t, out.String())
	assert.Equal(t, float64(dropped), samples["pagedkv_kv_events_dropped_total"])
}

// TestAudit87AbortedRequestsAreDone: the progress line counts an aborted
// request as done, beside a finished one (abortingPool, where the first
// can never be admitted). Leaving aborted ones out
// (M1843) showed 1/2 done on an idle server.
func TestAudit87AbortedRequestsAreDone(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: abortingPool()})
	_, err := s.Submit(Spec{PromptLen: 80, MaxTokens: 17})
	require.NoError(t, err)
	_, err = s.Submit(Spec{PromptLen: 5, MaxTokens: 30})
	require.NoError(t, err)
	for stepChecked(t, s, kv) {
	}
	sn := s.Snapshot()
	require.Equal(t, uint64(1), sn.Requests.Aborted)
	require.Equal(t, uint64(1), sn.Requests.Finished)
	assert.Contains(t, progressLine(sn, 0), "requests 2/2 done, 0 running, 0 waiting")
	assert.Contains(t, progressLine(sn, 3), "requests 2/5 done")
}

// TestAudit87EventLinesNameOnlyOtherGroups: -events prints a group only
// for the events of groups after the first, so a model of one attention
// kind prints none and a hybrid's group-0 lines look the same. Printing
// it for group 0 (M1844) added "group=0" to those lines.
func TestAudit87EventLinesNameOnlyOtherGroups(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-requests", "10", "-blocks", "512", "-step-time", "0", "-layout", "full window:64", "-events"},
		env{stdout: &out, stderr: &errs, sleep: noSleep})
	require.NoError(t, err)
	assert.Empty(t, errs.String())
	text := out.String()
	assert.Contains(t, text, " group=1")
	assert.NotContains(t, text, "group=0")
	assert.Regexp(t, `(?m)^event \d+ BlockStored blocks=\d+ medium=\S+ first=`, text, "a group-0 line")
}

// TestAudit87ReasonBeyondTheListIsUnknown: every reason has its own
// name, and a value past the list is "unknown". The bound one higher
// (M1845) indexed the names' array with numReasons and panicked.
func TestAudit87ReasonBeyondTheListIsUnknown(t *testing.T) {
	seen := map[string]bool{}
	for r := range numReasons {
		name := r.String()
		assert.NotEmpty(t, name)
		assert.NotEqual(t, "unknown", name)
		assert.False(t, seen[name], "%s twice", name)
		seen[name] = true
	}
	assert.Equal(t, "unknown", numReasons.String())
	assert.Equal(t, "unknown", Reason(255).String())
}
