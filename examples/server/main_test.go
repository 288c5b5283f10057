package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"
	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noSleep makes the trace replay instant: arrivals are only an order.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func TestRunPrintsSummary(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-requests", "40", "-blocks", "512", "-step-time", "0", "-n-parallel", "0.25"},
		env{stdout: &out, stderr: &errs, sleep: noSleep})
	require.NoError(t, err)
	// The replay's tokens follow from the trace, whatever the interleaving
	// of arrivals and steps.
	var prompt, generated int
	for i, r := range traces.AzureConv()[:40] {
		n := 1
		if i%4 == 3 {
			n = 4
		}
		prompt += r.InputTokens
		generated += n * r.OutputTokens
	}
	text := out.String()
	for _, want := range []string{
		"requests     40 submitted (10 with n>1), 40 finished, 0 cancelled, 0 rejected, 0 unfinished",
		fmt.Sprintf("tokens       %d prompt, %d generated;", prompt, generated),
		"copies       ", "(30 forks)",
		"prefix hits  ", "peak memory  ", "preemptions  ", "events       ", "manager      ",
		", 0 used",
	} {
		assert.Contains(t, text, want)
	}
	assert.Empty(t, errs.String())
}

func TestRunStepLimit(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-requests", "40", "-step-time", "0", "-steps", "7", "-events"},
		env{stdout: &out, stderr: &out, sleep: noSleep})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "steps        7 in ")
	assert.Contains(t, out.String(), " BlockStored blocks=", "-events prints the events")
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-speed", "0"},
		{"-requests", "-1"},
		{"-requests", "1000000"},
		{"-n-parallel", "2"},
		{"-step-time", "-1s"},
		{"-max-model-len", "1"},
		{"-max-num-seqs", "2"},
		{"-blocks", "1"},
		{"-max-queue", "0"},
		{"extra"},
		{"-nope"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, env{stdout: &out, stderr: &out, sleep: noSleep})
		assert.Error(t, err, strings.Join(args, " "))
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, env{stdout: &out, stderr: &out, sleep: noSleep})
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, out.String(), "-n-parallel")
}

func TestProgressLineCountsOnlyAcceptedRequestsAsDone(t *testing.T) {
	sn := Snapshot{Requests: RequestCounts{Submitted: 10, Finished: 6, Cancelled: 1, Rejected: 5, Running: 2, Waiting: 1}}
	// 10 accepted and 4 still to replay: 14 will be done; 7 are.
	line := progressLine(sn, 4)
	assert.Contains(t, line, "requests 7/14 done, 2 running, 1 waiting, 5 rejected")
	sn.Requests.Finished, sn.Requests.Running, sn.Requests.Waiting = 9, 0, 0
	assert.Contains(t, progressLine(sn, 0), "requests 10/10 done, 0 running, 0 waiting, 5 rejected")
}

func TestReplayBacksOffWhenTheQueueIsFull(t *testing.T) {
	// every 2: the loop steps only on every second back-off, so a request
	// meets the full queue again after backing off, and backs off again
	// (audit 93).
	for _, every := range []int{1, 2} {
		srv := startServer(t, ServerConfig{
			Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 2048, MaxModelLen: 8192}, MaxQueued: 1},
			Manual:    true,
		})
		ctx := context.Background()
		// Time passes (the loop steps) only while the replay backs off, so
		// every request after the first meets a full queue `every` times.
		backoffs := 0
		sleep := func(ctx context.Context, d time.Duration) error {
			if d != queueFullBackoff {
				return ctx.Err()
			}
			if backoffs++; backoffs%every != 0 {
				return nil
			}
			return srv.Step(ctx, 1)
		}
		o, err := parseFlags([]string{"-requests", "12"}, io.Discard)
		require.NoError(t, err)
		var sent atomic.Int64
		require.NoError(t, replay(ctx, srv, o, sleep, &sent))
		assert.Equal(t, int64(12), sent.Load())
		sn, err := srv.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(12), sn.Requests.Submitted, "every replayed request got in")
		assert.Equal(t, uint64(11*every), sn.Requests.RejectedBy["queue_full"], "each refusal is counted")
		assert.Equal(t, 11*every, backoffs)

		var out bytes.Buffer
		writeSummary(&out, sn, time.Second)
		assert.Contains(t, out.String(), fmt.Sprintf("%d rejected, ", 11*every))
		assert.Contains(t, out.String(), fmt.Sprintf("rejected     %d queue_full\n", 11*every))
	}
}

// TestReplayGapsDoNotWrap: a tiny -speed stretches the trace's gaps past
// what a time.Duration holds; the replay must then wait as long as it can,
// not convert the overflowing float to a negative duration and submit at
// once.
func TestReplayGapsDoNotWrap(t *testing.T) {
	gaps := traces.AzureConv()[1].Arrival - traces.AzureConv()[0].Arrival
	require.Positive(t, gaps, "the test needs a gap between the first two arrivals")
	for _, speed := range []string{"1e-300", "1e-12", "5e-324"} {
		var seen []time.Duration
		rec := func(ctx context.Context, d time.Duration) error {
			seen = append(seen, d)
			if len(seen) == 2 {
				return context.Canceled // the first gap is all the test needs
			}
			return ctx.Err()
		}
		var out bytes.Buffer
		_ = run(context.Background(), []string{"-requests", "3", "-blocks", "512", "-step-time", "0", "-speed", speed},
			env{stdout: &out, stderr: &out, sleep: rec})
		require.Len(t, seen, 2, "speed %s", speed)
		assert.Equal(t, time.Duration(math.MaxInt64), seen[1], "speed %s: the first gap", speed)
	}
}

// TestServerReserve: the manager's reserve is sized from the flags (records
// for the running and queued sequences, buffers for each at
// -max-model-len), -reserve=false makes none, and a replay serves every
// request either way (the reserve changes no decision of the manager's:
// paged's TestReserveSameAnswers; the replay's interleaving of arrivals
// and steps is not fixed, so its other figures may differ run to run).
func TestServerReserve(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, paged.Reserve{Sequences: 128 + 512, Tokens: 640 * 8192}, serverConfig(o).Scheduler.Manager.Reserve)
	o, err = parseFlags([]string{"-reserve=false"}, io.Discard)
	require.NoError(t, err)
	assert.Zero(t, serverConfig(o).Scheduler.Manager.Reserve)
	for _, reserve := range []string{"true", "false"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"-requests", "40", "-blocks", "512", "-step-time", "0", "-n-parallel", "0.25", "-reserve=" + reserve},
			env{stdout: &out, stderr: &out, sleep: noSleep})
		require.NoError(t, err)
		assert.Contains(t, out.String(), "requests     40 submitted (10 with n>1), 40 finished, 0 cancelled, 0 rejected, 0 unfinished", "-reserve=%s", reserve)
	}
}
