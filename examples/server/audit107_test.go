package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// audit107Snapshot is a snapshot built by hand: one refusal, of the last
// reason (the loop had stopped), two aborted requests, one running and
// one waiting, a peak of 3 blocks of 16 tokens, 1.5 s in the manager.
func audit107Snapshot() Snapshot {
	sn := Snapshot{BlockSize: 16, Steps: 3, ManagerTime: 1500 * time.Millisecond,
		Blocks: BlockCounts{Usable: 63, Free: 60, Used: 3, PeakUsed: 3},
		Requests: RequestCounts{Submitted: 4, Aborted: 2, Running: 1, Waiting: 1,
			RejectedBy: make(map[string]uint64, numReasons)}}
	sn.Requests.addRejected(ReasonClosed, 1)
	return sn
}

// TestAudit107SummaryLines: the final report's lines from a snapshot
// built by hand: a single refusal is listed by reason, aborted requests
// are reported, the running one is unfinished with the waiting one, and
// the peak's token slots are its blocks times the block size.
func TestAudit107SummaryLines(t *testing.T) {
	var out bytes.Buffer
	writeSummary(&out, audit107Snapshot(), time.Second)
	text := out.String()
	for _, want := range []string{
		"requests     4 submitted (0 with n>1), 0 finished, 0 cancelled, 1 rejected, 2 unfinished\n",
		"rejected     1 unavailable\n",
		"aborted      2 accepted that can never run in this pool\n",
		"peak memory  3 of 63 blocks (4.8%), 48 token slots\n",
	} {
		assert.Contains(t, text, want)
	}
}

// TestAudit107MetricsFromASnapshot: the exposition of a snapshot built by
// hand has a sample for the last rejection reason, and the manager's time
// in seconds.
func TestAudit107MetricsFromASnapshot(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteMetrics(&out, audit107Snapshot()))
	_, samples := parseMetrics(t, out.String())
	assert.Equal(t, 1.0, samples[`pagedkv_requests_rejected_total{reason="unavailable"}`])
	assert.Equal(t, 1.5, samples["pagedkv_manager_seconds_total"])
}

// TestAudit107EventLineOfOneBlock: an event naming one block prints its
// hash, as one naming several prints the first.
func TestAudit107EventLineOfOneBlock(t *testing.T) {
	var out bytes.Buffer
	h := paged.Hash{0xab, 0xcd, 0xef, 1, 2, 3, 4}
	eventPrinter(&out)(paged.Event{Seq: 7, Kind: paged.BlockStored, Hashes: []paged.Hash{h}})
	assert.Contains(t, out.String(), "event 7 BlockStored blocks=1 ")
	assert.Contains(t, out.String(), " first=abcdef010203\n")
}

// TestAudit107RegularFileIsNoTerminal: a regular file is not a terminal
// (no progress line redrawn into it); a character device such as
// /dev/null is taken for one, the std-only test's known limit.
func TestAudit107RegularFileIsNoTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f))
	if null, err := os.Open(os.DevNull); err == nil {
		defer null.Close()
		assert.True(t, isTerminal(null))
	}
}

// TestAudit107LayoutsKeepEachGroupsSize: state groups of different sizes
// keep their own pages, and a shared group its target, both parsed and
// written back.
func TestAudit107LayoutsKeepEachGroupsSize(t *testing.T) {
	const text = "b16 full state:2 window:8 state:5 shared:2"
	groups, err := ParseLayout(text, 16)
	require.NoError(t, err)
	assert.Equal(t, []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2},
		{Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 5}, {Kind: paged.Shared, Target: 2}}, groups)
	assert.Equal(t, text, LayoutString(16, groups))
}

// TestAudit107SnapshotCounts: a request submitted and not yet stepped is
// waiting, not running; two refusals of one reason count two; and a
// snapshot taken while a step runs (from OnBatch, before the step's
// frees) has a peak at least its used blocks.
func TestAudit107SnapshotCounts(t *testing.T) {
	var s *Scheduler
	var during Snapshot
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64},
		OnBatch: func(*paged.Manager, *paged.Batch) { during = s.Snapshot() }})
	require.NoError(t, err)
	_, err = s.Submit(Spec{PromptLen: 40, MaxTokens: 4})
	require.NoError(t, err)
	for range 2 {
		_, err = s.Submit(Spec{PromptLen: 10, MaxTokens: 0})
		require.Error(t, err)
	}
	sn := s.Snapshot()
	assert.Equal(t, 1, sn.Requests.Waiting)
	assert.Equal(t, 0, sn.Requests.Running)
	assert.Equal(t, uint64(2), sn.Requests.Rejected)
	assert.Equal(t, uint64(2), sn.Requests.RejectedBy["invalid_request"])
	require.True(t, s.Step())
	require.Equal(t, 3, during.Blocks.Used)
	assert.Equal(t, 3, during.Blocks.PeakUsed)
	assert.Equal(t, 1, during.Requests.Running)
}

// TestAudit107BusyLoopStopsWithItsContext: a stepping server whose
// context ends during a step returns after that step, not when its
// requests are done.
func TestAudit107BusyLoopStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64},
		OnBatch: func(*paged.Manager, *paged.Batch) { cancel() }}})
	require.NoError(t, err)
	go srv.Run(ctx)
	_, err = srv.Submit(context.Background(), Spec{PromptLen: 10, MaxTokens: 50})
	require.NoError(t, err)
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the loop still runs")
	}
	sn, err := srv.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sn.Steps)
	assert.Equal(t, 1, sn.Requests.Running)
}

// TestAudit107IdleNoticesTheStop: Idle waiting on a live request returns
// ErrClosed when the loop stops.
func TestAudit107IdleNoticesTheStop(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, Manual: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	_, err = srv.Submit(context.Background(), Spec{PromptLen: 10, MaxTokens: 2})
	require.NoError(t, err)
	idle := make(chan error, 1)
	go func() { idle <- srv.Idle(context.Background()) }()
	// Cancel only once Idle holds its channel: before, its own call would
	// fail with ErrClosed whatever Idle does after.
	waitFor(t, func() bool {
		n := 0
		require.NoError(t, srv.do(context.Background(), func(sc *Scheduler) { n = len(sc.idle) }))
		return n == 1
	}, "Idle's call")
	cancel()
	<-srv.Done()
	select {
	case err := <-idle:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Idle still waits")
	}
}
