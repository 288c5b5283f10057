package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests that kill the examples/server mutants of the hundred-and-fourteenth
// mutation round (docs/testing.md, "Mutation testing, hundred-and-fourteenth
// round").

// TestAudit162GoneClientIsNoRefusal: a submission whose own context ends
// before the loop takes it was refused nothing: it is not counted as a
// refusal of a closed server (M4694); the same server, once running,
// reports no rejection at all.
func TestAudit162GoneClientIsNoRefusal(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, Manual: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The loop is not running yet: the call can only end by its context.
	_, err = srv.Submit(ctx, Spec{PromptLen: 10, MaxTokens: 1})
	require.ErrorIs(t, err, context.Canceled)
	run, stop := context.WithCancel(context.Background())
	go srv.Run(run)
	t.Cleanup(func() { stop(); <-srv.Done() })
	sn, err := srv.Stats(context.Background())
	require.NoError(t, err)
	assert.Zero(t, sn.Requests.RejectedBy[ReasonClosed.String()], "a client that went away counted as refused by a closed server")
	assert.Zero(t, sn.Requests.Rejected)
}

// TestAudit162StatsHonoursItsContext: Stats whose context ends before the
// loop answers returns the context's error, not an empty snapshot taken
// for the statistics (M4695).
func TestAudit162StatsHonoursItsContext(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The loop is not running: the call can only end by its context.
	_, err = srv.Stats(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

// TestAudit162IdleHonoursItsContext: Idle on a server that never becomes
// idle (a Manual one, with a request waiting) returns when its context
// ends, with the context's error, not nil as if the server were idle
// (M4696).
func TestAudit162IdleHonoursItsContext(t *testing.T) {
	srv := startServer(t, ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, Manual: true})
	_, err := srv.Submit(context.Background(), Spec{PromptLen: 10, MaxTokens: 5})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, srv.Idle(ctx), context.DeadlineExceeded)
}

// TestAudit162ReasonsOfRefusals: each error of a refused submission is
// counted under its own reason, wrapped or not: a full queue under
// queue_full (M4698), a stopped loop under unavailable (M4699), and a
// body whose connection deadline passed, which net/http reports as
// os.ErrDeadlineExceeded, under body_timeout (M4697).
func TestAudit162ReasonsOfRefusals(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Reason
	}{
		{ErrQueueFull, ReasonQueueFull},
		{fmt.Errorf("%w: 8 queued", ErrQueueFull), ReasonQueueFull},
		{ErrClosed, ReasonClosed},
		{fmt.Errorf("submit: %w", ErrClosed), ReasonClosed},
		{os.ErrDeadlineExceeded, ReasonBodyTimeout},
		{fmt.Errorf("read body: %w", os.ErrDeadlineExceeded), ReasonBodyTimeout},
		{ErrBodyTimeout, ReasonBodyTimeout},
		{ErrTooLong, ReasonTooLong},
		{errors.New("something else"), ReasonInvalid},
	} {
		assert.Equal(t, c.want, reasonOf(c.err), "%v", c.err)
	}
}
