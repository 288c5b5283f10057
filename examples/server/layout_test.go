package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLayout(t *testing.T) {
	full := paged.Group{Kind: paged.FullAttention}
	for text, want := range map[string][]paged.Group{
		"":                       nil,
		"  ":                     nil,
		"full":                   {full},
		"full window:128":        {full, {Kind: paged.SlidingWindow, Window: 128}},
		"b16 full window:128":    {full, {Kind: paged.SlidingWindow, Window: 128}},
		"full state:34 state:34": {full, {Kind: paged.State, Pages: 34}, {Kind: paged.State, Pages: 34}},
		"full chunked:8192 shared:0 window:4": {full, {Kind: paged.ChunkedLocal, Chunk: 8192},
			{Kind: paged.Shared, Target: 0}, {Kind: paged.SlidingWindow, Window: 4}},
	} {
		got, err := ParseLayout(text, 16)
		require.NoError(t, err, text)
		assert.Equal(t, want, got, text)
		if len(want) > 0 {
			// LayoutString reads back as the same groups.
			again, err := ParseLayout(LayoutString(16, got), 16)
			require.NoError(t, err, text)
			assert.Equal(t, got, again, text)
		}
	}
	assert.Equal(t, "b16 full", LayoutString(16, nil))
	for text, msg := range map[string]string{
		"full state":            `"state:<pages>"`,
		"full state:0":          `"state:<pages>"`,
		"full state:x":          `"state:<pages>"`,
		"window:128 full":       "group 0 is window, must be full",
		"state:4":               "group 0 is state",
		"b32 full":              "differs from -block-size 16",
		"bx full":               "differs from -block-size 16",
		"full foo:1":            "unknown kind",
		"full window":           "fleet: invalid argument",
		"full window:0":         "window 0",
		"full window:x":         "fleet: invalid argument",
		"full shared:7":         "shared target 7 out of range",
		"full state:2 shared:1": "is a state group",
		"full full:3":           "fleet: invalid argument",
	} {
		_, err := ParseLayout(text, 16)
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), fmt.Sprintf("-layout %q", text))
		assert.Contains(t, err.Error(), msg, text)
	}
}

// TestRunRejectsBadLayouts: a layout that does not parse, and one that
// parses but the manager refuses, are usage errors naming the flag (main
// exits 2 on any error of run).
func TestRunRejectsBadLayouts(t *testing.T) {
	for _, args := range [][]string{
		{"-layout", "full nope"},
		{"-layout", "window:16"},
		{"-layout", "full state"},
		{"-layout", "b8 full window:32"},
		// The manager's refusals: a state larger than the pool, a window
		// past paged.MaxSeqLen.
		{"-layout", "full state:600", "-blocks", "512"},
		{"-layout", fmt.Sprintf("full window:%d", paged.MaxSeqLen+1)},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append(args, "-requests", "1", "-step-time", "0"), env{stdout: &out, stderr: &out, sleep: noSleep})
		require.Error(t, err, "%v", args)
		line := errorLine(err)
		assert.True(t, strings.HasPrefix(line, `server: -layout "`), line)
		assert.Equal(t, 1, strings.Count(line, "server: "), line)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-layout", "full state:600", "-blocks", "512"}, env{stdout: &out, stderr: &out, sleep: noSleep})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "more than the pool's 511 usable blocks")
}

// hybridLayouts are the layouts the replay tests run: gpt-oss's (full
// attention and a 128-token window), a Qwen3-Next-like one (full
// attention and state groups), and both kinds at once.
var hybridLayouts = []string{"full window:128", "full state:34 state:34", "full window:128 state:34"}

// TestHybridReplay replays the trace as the command does with each hybrid
// layout, checking the manager's invariants at every step and after the
// run, that prefixes hit (for a state layout a hit needs a checkpoint),
// and that /stats and /metrics show every group.
func TestHybridReplay(t *testing.T) {
	for _, layout := range hybridLayouts {
		t.Run(layout, func(t *testing.T) {
			o, err := parseFlags([]string{"-requests", "60", "-blocks", "2048", "-step-time", "0", "-layout", layout}, &bytes.Buffer{})
			require.NoError(t, err)
			cfg := serverConfig(o)
			var checkErr error
			var copies atomic.Int64
			cfg.Scheduler.OnBatch = func(m *paged.Manager, b *paged.Batch) {
				copies.Add(int64(len(b.Copies)))
				if checkErr == nil {
					checkErr = m.Check()
				}
			}
			srv, err := NewServer(cfg)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go srv.Run(ctx)
			// Requests arrive in bursts of four, each once the server is
			// idle: within a burst they run together; a later burst finds
			// the earlier ones' prefixes (and, with a state group, the
			// checkpoints taken where they branched) in the cache.
			calls := 0
			burst := func(ctx context.Context, _ time.Duration) error {
				if calls++; calls%4 == 0 {
					return srv.Idle(ctx)
				}
				return ctx.Err()
			}
			var sent atomic.Int64
			require.NoError(t, replay(ctx, srv, o, burst, &sent))
			require.NoError(t, srv.Idle(ctx))

			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			code, body := call(t, "GET", hs.URL+"/stats", "")
			require.Equal(t, http.StatusOK, code, body)
			sn := decode[Snapshot](t, body)
			assert.Equal(t, uint64(60), sn.Requests.Finished)
			assert.Positive(t, sn.Prefix.HitTokens, "no prefix hit")
			t.Logf("%s: %d hit tokens of %d, %d preemptions, %d copies, groups %+v",
				sn.Layout, sn.Prefix.HitTokens, sn.Prefix.QueryTokens, sn.Preemptions, sn.Copies, sn.Groups)
			assert.Equal(t, "b16 "+layout, sn.Layout)
			require.Len(t, sn.Groups, len(o.groups))
			for g, gc := range sn.Groups {
				assert.Equal(t, g, gc.Group)
				assert.Equal(t, groupName(o.groups[g]), gc.Kind)
				assert.Positive(t, gc.StoredBlocks, "group %d stored nothing", g)
				if o.groups[g].Kind == paged.State {
					// One checkpoint stored per one taken (a checkpoint's
					// event names one hash).
					assert.Positive(t, gc.Checkpoints, "group %d took no checkpoint", g)
					assert.Equal(t, gc.Checkpoints, gc.StoredBlocks, "group %d", g)
				} else {
					assert.Zero(t, gc.Checkpoints)
				}
			}
			if strings.Contains(layout, "state") {
				// A hit on a state layout restores a checkpoint: Copy
				// directives into the sequence's state pages.
				assert.Positive(t, copies.Load())
			}
			code, body = call(t, "GET", hs.URL+"/metrics", "")
			require.Equal(t, http.StatusOK, code, body)
			types, samples := parseMetrics(t, body)
			assert.Equal(t, "counter", types["pagedkv_kv_group_stored_blocks_total"])
			assert.Equal(t, "gauge", types["pagedkv_kv_group_batch_blocks"])
			for g, gc := range sn.Groups {
				key := fmt.Sprintf(`pagedkv_kv_group_stored_blocks_total{group="%d",kind="%s"}`, g, gc.Kind)
				assert.Equal(t, float64(gc.StoredBlocks), samples[key], key)
				key = fmt.Sprintf(`pagedkv_state_checkpoints_total{group="%d",kind="%s"}`, g, gc.Kind)
				assert.Equal(t, float64(gc.Checkpoints), samples[key], key)
			}

			cancel()
			<-srv.Done()
			require.NoError(t, checkErr)
			// The loop has stopped: the manager is the test's to read.
			require.NoError(t, srv.sched.Manager().Check())
			assert.Zero(t, srv.sched.Manager().Stats().UsedBlocks)
		})
	}
}

// TestHybridBatchBlocks: the last batch's per-group table entries follow
// each kind's rule: a window group's stay within the window, a state
// group's are its pages, a shared group's repeat its target's.
func TestHybridBatchBlocks(t *testing.T) {
	groups, err := ParseLayout("full window:32 state:3 shared:0", 16)
	require.NoError(t, err)
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64, BlockSize: 16, Groups: groups}})
	require.NoError(t, err)
	_, err = s.Submit(Spec{PromptLen: 200, MaxTokens: 2})
	require.NoError(t, err)
	require.True(t, s.Step())
	// The prefill writes every position's KV in every group: the window
	// group holds the whole prompt for that step.
	sn := s.Snapshot()
	require.Len(t, sn.Groups, 4)
	assert.Equal(t, []int{13, 13, 3, 13}, []int{sn.Groups[0].BatchBlocks, sn.Groups[1].BatchBlocks,
		sn.Groups[2].BatchBlocks, sn.Groups[3].BatchBlocks})
	require.True(t, s.Step())
	sn = s.Snapshot()
	// The decode step of position 200 (201 tokens): 13 blocks of full
	// attention; a 32-token window reads [169, 200], blocks 10 to 12.
	assert.Equal(t, 13, sn.Groups[0].BatchBlocks)
	assert.Equal(t, 3, sn.Groups[1].BatchBlocks)
	assert.Equal(t, 3, sn.Groups[2].BatchBlocks)
	assert.Equal(t, 13, sn.Groups[3].BatchBlocks)
	// A single-group scheduler reports no groups, as before.
	s1, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	require.NoError(t, err)
	sn1 := s1.Snapshot()
	assert.Empty(t, sn1.Groups)
	assert.Equal(t, "b16 full", sn1.Layout)
	var metrics bytes.Buffer
	require.NoError(t, WriteMetrics(&metrics, sn1))
	assert.NotContains(t, metrics.String(), "pagedkv_kv_group_")
}

// TestRunHybridSummary: the command prints the layout and a line per group.
func TestRunHybridSummary(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-requests", "20", "-blocks", "512", "-step-time", "0", "-layout", "full window:64 state:8"},
		env{stdout: &out, stderr: &errs, sleep: noSleep})
	require.NoError(t, err)
	text := out.String()
	assert.Contains(t, text, "layout       b16 full window:64 state:8\n")
	assert.Regexp(t, `group 0      full: \d+ blocks stored, \d+ removed\n`, text)
	assert.Regexp(t, `group 1      window:64: \d+ blocks stored, \d+ removed\n`, text)
	assert.Regexp(t, `group 2      state:8: \d+ blocks stored, \d+ removed, \d+ checkpoints\n`, text)
	assert.Empty(t, errs.String())
}

// TestStateLayoutParallelSampling: with a state group a request may be
// sampled n ways (a fork that finds no room for the children's state pages
// sends the prompt back to be recomputed; package sched), and the replay
// samples as with any layout.
func TestStateLayoutParallelSampling(t *testing.T) {
	groups, err := ParseLayout("full state:2", 16)
	require.NoError(t, err)
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64, Groups: groups}})
	require.NoError(t, err)
	_, err = s.Submit(Spec{PromptLen: 20, MaxTokens: 2, N: 2})
	require.NoError(t, err)
	o, err := parseFlags([]string{"-layout", "full state:2"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 0.1, o.nParallel)
	o, err = parseFlags([]string{"-layout", "full state:2", "-n-parallel", "0.5"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 0.5, o.nParallel)
}
