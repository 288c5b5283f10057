package main

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"

	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests that kill the examples/server mutants of the ninety-seventh
// mutation round (docs/testing.md, "Mutation testing, ninety-seventh
// round").

// TestAudit144ManagerPerStep: the mean manager time per step is the time
// over the steps run, and zero before any.
func TestAudit144ManagerPerStep(t *testing.T) {
	assert.Equal(t, 500*time.Millisecond, Snapshot{Steps: 3, ManagerTime: 1500 * time.Millisecond}.ManagerPerStep())
	assert.Equal(t, 7*time.Microsecond, Snapshot{Steps: 1, ManagerTime: 7 * time.Microsecond}.ManagerPerStep())
	assert.Zero(t, Snapshot{ManagerTime: time.Second}.ManagerPerStep())
}

// TestAudit144SequencesOfAPartlyPreemptedRequest: the snapshot's
// sequences are the manager's, one per sample, whatever their request's
// state. Requests of 4, 2 and 1 samples outgrow a pool of 24 blocks, so
// some samples of a running request are preempted: the request still
// runs, its preempted samples wait, and running plus waiting sequences
// stay the seven samples until one finishes.
func TestAudit144SequencesOfAPartlyPreemptedRequest(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 24}, MaxNumSeqs: 16})
	for _, n := range []int{4, 2, 1} {
		_, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 200, N: n})
		require.NoError(t, err)
	}
	partly := false
	// A sample makes at most one token a step, so none of 200 tokens
	// finishes before step 200.
	for step := 0; step < 199; step++ {
		require.True(t, stepChecked(t, s, kv))
		sn := s.Snapshot()
		assert.Equal(t, 7, sn.Sequences.Running+sn.Sequences.Waiting, "step %d", sn.Steps)
		assert.Equal(t, sn.Manager.Waiting, sn.Sequences.Waiting, "step %d", sn.Steps)
		if sn.Requests.Waiting == 0 && sn.Sequences.Waiting > 0 {
			partly = true
		}
	}
	require.True(t, partly, "no step had a running request with waiting samples")
}

// TestAudit144AcceptedDrafts: a single sample generates one token per
// step plus the drafts the model accepted, so its generated tokens are
// the steps plus the accepted drafts; the drafter guesses some tokens
// wrong, so fewer are accepted than drafted.
func TestAudit144AcceptedDrafts(t *testing.T) {
	for _, maxTokens := range []int{50, 53, 100} {
		s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, Drafts: 3})
		_, err := s.Submit(Spec{PromptLen: 40, MaxTokens: maxTokens})
		require.NoError(t, err)
		for stepChecked(t, s, kv) {
		}
		sn := s.Snapshot()
		require.Equal(t, uint64(maxTokens), sn.Tokens.Generated)
		assert.Equal(t, sn.Tokens.Generated, sn.Steps+sn.Tokens.Accepted, "max_tokens %d", maxTokens)
		assert.Less(t, sn.Tokens.Accepted, sn.Tokens.Drafted, "max_tokens %d", maxTokens)
	}
}

// audit144Snapshot is a snapshot built by hand whose every figure differs
// from every other, one of them (the generated tokens) with more than six
// significant digits.
func audit144Snapshot() Snapshot {
	sn := Snapshot{BlockSize: 16, Usage: 0.25, HitRate: 0.125,
		Blocks:    BlockCounts{Usable: 100, Free: 61, Cached: 14, Used: 25, PeakUsed: 37},
		Prefix:    PrefixCounts{QueryTokens: 901, HitTokens: 402, Stored: 53},
		Requests:  RequestCounts{Submitted: 41, Finished: 29, Cancelled: 3, Aborted: 2, Parallel: 6, Waiting: 4, Running: 5, Queued: 7, MaxQueued: 512},
		Sequences: SequenceCounts{Running: 11, Waiting: 8, PeakRunning: 19},
		Tokens:    TokenCounts{Prompt: 7001, Prefill: 6003, Cached: 998, Generated: 12345678, Drafted: 300, Accepted: 211},
		Steps:     97, Preemptions: 9, Copies: 12, Forks: 15, Evictions: 21,
		Events:      EventCounts{Stored: 31, StoredBlocks: 55, Removed: 17, RemovedBlocks: 23, Cleared: 1, Dropped: 13},
		ManagerTime: 250 * time.Millisecond,
	}
	sn.Requests.RejectedBy = make(map[string]uint64, numReasons)
	sn.Requests.addRejected(ReasonQueueFull, 10)
	return sn
}

// TestAudit144MetricsCarryTheirFigures: each sample of the exposition
// carries its own figure of the snapshot, exactly.
func TestAudit144MetricsCarryTheirFigures(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteMetrics(&out, audit144Snapshot()))
	_, samples := parseMetrics(t, out.String())
	for key, want := range map[string]float64{
		"pagedkv_kv_cache_usage_ratio":                         0.25,
		"pagedkv_prefix_cache_hit_ratio":                       0.125,
		`pagedkv_kv_cache_blocks{state="free"}`:                61,
		`pagedkv_kv_cache_blocks{state="cached"}`:              14,
		`pagedkv_kv_cache_blocks{state="used"}`:                25,
		"pagedkv_kv_cache_usable_blocks":                       100,
		"pagedkv_kv_cache_peak_used_blocks":                    37,
		"pagedkv_block_size_tokens":                            16,
		`pagedkv_requests{state="waiting"}`:                    4,
		`pagedkv_requests{state="running"}`:                    5,
		"pagedkv_admission_queue_requests":                     7,
		"pagedkv_admission_queue_capacity_requests":            512,
		`pagedkv_sequences{state="waiting"}`:                   8,
		`pagedkv_sequences{state="running"}`:                   11,
		"pagedkv_requests_submitted_total":                     41,
		`pagedkv_requests_rejected_total{reason="queue_full"}`: 10,
		"pagedkv_requests_finished_total":                      29,
		"pagedkv_requests_cancelled_total":                     3,
		"pagedkv_requests_aborted_total":                       2,
		"pagedkv_prefix_cache_query_tokens_total":              901,
		"pagedkv_prefix_cache_hit_tokens_total":                402,
		"pagedkv_prefix_cache_stored_blocks_total":             53,
		"pagedkv_prompt_tokens_total":                          6003,
		"pagedkv_generation_tokens_total":                      12345678,
		"pagedkv_spec_decode_draft_tokens_total":               300,
		"pagedkv_spec_decode_accepted_tokens_total":            211,
		"pagedkv_preemptions_total":                            9,
		"pagedkv_cow_copied_blocks_total":                      12,
		"pagedkv_forks_total":                                  15,
		"pagedkv_evicted_blocks_total":                         21,
		`pagedkv_kv_events_total{kind="BlockStored"}`:          31,
		`pagedkv_kv_events_total{kind="BlockRemoved"}`:         17,
		`pagedkv_kv_events_total{kind="AllBlocksCleared"}`:     1,
		"pagedkv_kv_events_dropped_total":                      13,
		"pagedkv_steps_total":                                  97,
		"pagedkv_manager_seconds_total":                        0.25,
	} {
		assert.Equal(t, want, samples[key], key)
	}
}

// TestAudit144LayoutAtItsBlockSize: -layout is read at -block-size, so a
// layout naming that block size is taken and one naming another refused.
func TestAudit144LayoutAtItsBlockSize(t *testing.T) {
	o, err := parseFlags([]string{"-block-size", "8", "-layout", "b8 full window:64"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}}, o.groups)
	_, err = parseFlags([]string{"-block-size", "8", "-layout", "b16 full window:64"}, io.Discard)
	assert.Error(t, err)
}

// TestAudit144RunDrafts: -drafts reaches the scheduler: the run verifies
// drafts and the summary reports them.
func TestAudit144RunDrafts(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-requests", "10", "-blocks", "512", "-step-time", "0", "-drafts", "2"},
		env{stdout: &out, stderr: &out, sleep: noSleep})
	require.NoError(t, err)
	assert.Regexp(t, `drafts       [1-9]\d* verified, \d+ accepted`, out.String())
}

// TestAudit144ReplayGapsAndPrompts: the replay sleeps each gap between
// two arrivals divided by -speed, and its prompts start with one of eight
// 256-token system prompts: requests 2 and 10 (both longer) share
// exactly their first 256 tokens, requests 2 and 3 none.
func TestAudit144ReplayGapsAndPrompts(t *testing.T) {
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 2048, MaxModelLen: 8192}},
		Manual:    true,
	})
	ctx := context.Background()
	o, err := parseFlags([]string{"-requests", "11", "-speed", "2"}, io.Discard)
	require.NoError(t, err)
	var gaps []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		gaps = append(gaps, d)
		return ctx.Err()
	}
	var sent atomic.Int64
	require.NoError(t, replay(ctx, srv, o, sleep, &sent))
	trace := traces.AzureConv()
	require.Len(t, gaps, 11)
	prev := time.Duration(0)
	for i, g := range gaps {
		assert.Equal(t, time.Duration(float64(trace[i].Arrival-prev)/2), g, "gap %d", i)
		prev = trace[i].Arrival
	}
	var prompts [][]int32
	require.NoError(t, srv.do(ctx, func(sc *Scheduler) {
		reqs := slices.Collect(maps.Values(sc.live))
		slices.SortFunc(reqs, func(a, b *request) int { return cmp.Compare(a.r.ID(), b.r.ID()) })
		for _, r := range reqs {
			toks, err := sc.Manager().Tokens(r.r.Seq(0))
			require.NoError(t, err)
			prompts = append(prompts, slices.Clone(toks))
		}
	}))
	require.Len(t, prompts, 11)
	common := func(a, b []int32) int {
		n := 0
		for n < min(len(a), len(b)) && a[n] == b[n] {
			n++
		}
		return n
	}
	require.Greater(t, min(len(prompts[2]), len(prompts[10])), 257, "the test needs prompts longer than the system prompt")
	assert.Equal(t, 256, common(prompts[2], prompts[10]))
	assert.Zero(t, common(prompts[2], prompts[3]))
}

// redrawWriter is a run's output that tells when a live line is first
// redrawn (a write with a carriage return).
type redrawWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	once    sync.Once
	redrawn chan struct{}
}

func (w *redrawWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.IndexByte(p, '\r') >= 0 {
		w.once.Do(func() { close(w.redrawn) })
	}
	return w.buf.Write(p)
}

// TestAudit144RunOnATerminal: on a terminal the progress line is redrawn
// in place (a carriage return, no newline) and counts the requests still
// to replay, and the run ends it with a newline before the summary; a
// run into a file adds no empty line. The replay waits before its last
// request until the line has been drawn.
func TestAudit144RunOnATerminal(t *testing.T) {
	w := &redrawWriter{redrawn: make(chan struct{})}
	calls := 0
	sleep := func(ctx context.Context, d time.Duration) error {
		if calls++; calls == 3 {
			select {
			case <-w.redrawn:
			case <-time.After(5 * time.Second):
			}
		}
		return ctx.Err()
	}
	err := run(context.Background(), []string{"-requests", "3", "-blocks", "512", "-step-time", "0"},
		env{stdout: w, stderr: w, tty: true, sleep: sleep})
	require.NoError(t, err)
	text := w.buf.String()
	live, summary, ok := strings.Cut(text, "requests     ")
	require.True(t, ok, text)
	require.True(t, strings.HasPrefix(summary, "3 submitted"), text)
	require.Contains(t, live, "\r", "no live line")
	assert.True(t, strings.HasSuffix(live, "\x1b[K\n"), "the live line is not ended: %q", live)
	for _, line := range strings.Split(strings.TrimSuffix(live, "\n"), "\r")[1:] {
		assert.Contains(t, line, "/3 done", "every request is counted once, sent or not")
		assert.True(t, strings.HasSuffix(line, "\x1b[K"), "%q", line)
	}

	var out bytes.Buffer
	err = run(context.Background(), []string{"-requests", "3", "-blocks", "512", "-step-time", "0"},
		env{stdout: &out, stderr: &out, sleep: noSleep})
	require.NoError(t, err)
	live, _, ok = strings.Cut(out.String(), "requests     3 submitted")
	require.True(t, ok, out.String())
	assert.NotContains(t, "\n"+live, "\n\n", "an empty line before the summary")
}
