package main

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"
	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit93FlagBounds: each flag's bound, on both sides: the whole
// trace, -n-parallel 1 and -max-model-len 2 are taken; -drafts -1,
// -block-size 0 and -max-num-seqs 0 are refused with the flag named;
// -watermark reaches the manager.
func TestAudit93FlagBounds(t *testing.T) {
	for _, args := range [][]string{
		{"-requests", strconv.Itoa(len(traces.AzureConv()))},
		{"-n-parallel", "1"},
		{"-max-model-len", "2"},
	} {
		_, err := parseFlags(args, io.Discard)
		assert.NoError(t, err, "%v", args)
	}
	for _, args := range [][]string{
		{"-drafts", "-1"},
		{"-block-size", "0"},
		{"-max-num-seqs", "0"},
	} {
		_, err := parseFlags(args, io.Discard)
		assert.ErrorContains(t, err, args[0]+" "+args[1], "%v", args)
	}
	o, err := parseFlags([]string{"-watermark", "0.05"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 0.05, serverConfig(o).Scheduler.Manager.Watermark)
}

// TestAudit93ShortModelLength: with a short -max-model-len every trace
// request is cut to fit (its prompt leaves room for its outputs) and is
// served, none refused as too long.
func TestAudit93ShortModelLength(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-requests", "30", "-blocks", "256", "-step-time", "0", "-max-model-len", "64", "-n-parallel", "0"},
		env{stdout: &out, stderr: &out, sleep: noSleep})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "requests     30 submitted (0 with n>1), 30 finished, 0 cancelled, 0 rejected, 0 unfinished")
}

// TestAudit93ProgressOnATerminal: on a terminal the progress line is
// redrawn every 100 ms, but only when it changes: a server doing nothing
// for 0.7 s shows one line.
func TestAudit93ProgressOnATerminal(t *testing.T) {
	srv := startServer(t, ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, Manual: true})
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	showProgress(ctx, srv, &out, true, func() int { return 0 })
	assert.Equal(t, 1, strings.Count(out.String(), "\r"), "%q", out.String())
}

// TestAudit93SleepWithNoGap: a gap of 0 returns at once, with the
// context's error when it is done.
func TestAudit93SleepWithNoGap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		require.ErrorIs(t, sleepCtx(ctx, 0), context.Canceled)
	}
	require.NoError(t, sleepCtx(context.Background(), 0))
}
