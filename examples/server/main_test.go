package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench"

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
	for i, r := range bench.AzureConv()[:40] {
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
