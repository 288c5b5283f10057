package main

import (
	"context"
	"sync"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startServer runs a server's loop for the duration of the test.
func startServer(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	srv, err := NewServer(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	t.Cleanup(func() {
		cancel()
		<-srv.Done()
	})
	return srv
}

// TestServerConcurrentClients has many goroutines submit, cancel, query and
// step at once; under -race it proves that only the loop touches the
// manager.
func TestServerConcurrentClients(t *testing.T) {
	kv := newShadowKV(256, 16)
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 256, Events: 16}, MaxNumSeqs: 32, OnBatch: kv.onBatch},
		Manual:    true,
	})
	ctx := context.Background()
	const clients, perClient = 8, 6
	var wg sync.WaitGroup
	cancelled := make([]int, clients)
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				st, err := srv.Submit(ctx, Spec{PromptLen: 30 + 7*i, MaxTokens: 10 + c, N: 1 + i%2})
				assert.NoError(t, err)
				id := st.ID
				if i == 0 {
					// Cancel whatever state the request has reached; the
					// stepper may have finished it already.
					switch _, err := srv.Cancel(ctx, id, st.CancelToken); {
					case err == nil:
						cancelled[c]++
					default:
						assert.ErrorIs(t, err, ErrFinished)
					}
				}
				_, err = srv.Status(ctx, id)
				assert.NoError(t, err)
			}
		})
	}
	stepper := make(chan struct{})
	go func() {
		defer close(stepper)
		for range 50 {
			assert.NoError(t, srv.Step(ctx, 1))
			_, err := srv.Stats(ctx)
			assert.NoError(t, err)
		}
	}()
	wg.Wait()
	<-stepper
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "the server does not run dry")
		sn, err := srv.Stats(ctx)
		require.NoError(t, err)
		if sn.Requests.Waiting+sn.Requests.Running == 0 {
			break
		}
		require.NoError(t, srv.Step(ctx, 10))
	}
	require.NoError(t, srv.Idle(ctx))
	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(clients*perClient), sn.Requests.Submitted)
	nc := 0
	for _, n := range cancelled {
		nc += n
	}
	assert.Equal(t, uint64(nc), sn.Requests.Cancelled)
	assert.Equal(t, uint64(clients*perClient-nc), sn.Requests.Finished)
	assert.Zero(t, sn.Blocks.Used)
	assert.NoError(t, kv.err)
	require.NoError(t, srv.do(ctx, func(sc *Scheduler) { assert.NoError(t, sc.Manager().Check()) }))
}

// TestServerStepsOnItsOwn runs the loop unattended: it steps while there
// is work, answers calls meanwhile, and Idle reports the end.
func TestServerStepsOnItsOwn(t *testing.T) {
	srv := startServer(t, ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 128}}})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := srv.Submit(ctx, Spec{PromptLen: 20 + i, MaxTokens: 30, N: 1 + i%4})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.NoError(t, srv.Idle(ctx))
	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(10), sn.Requests.Finished)
	assert.Equal(t, uint64(30*(1+2+3+4+1+2+3+4+1+2)), sn.Tokens.Generated)
	assert.Zero(t, sn.Blocks.Used)
}

func TestServerStopsAtStepLimitAndKeepsFinalStats(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, MaxSteps: 5})
	require.NoError(t, err)
	ctx := context.Background()
	go srv.Run(ctx)
	_, err = srv.Submit(ctx, Spec{PromptLen: 10, MaxTokens: 100})
	require.NoError(t, err)
	<-srv.Done()
	sn, err := srv.Stats(ctx)
	require.NoError(t, err, "a stopped server still reports its final statistics")
	assert.Equal(t, uint64(5), sn.Steps)
	assert.Equal(t, uint64(5), sn.Tokens.Generated)
	_, err = srv.Submit(ctx, Spec{PromptLen: 10, MaxTokens: 1})
	require.ErrorIs(t, err, ErrClosed)
	_, err = srv.Cancel(ctx, "NOSUCHREQUEST", "")
	require.ErrorIs(t, err, ErrClosed)
	sn, err = srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["unavailable"], "a submission to a stopped loop is a counted refusal")
	require.ErrorIs(t, srv.Idle(ctx), ErrClosed)
	require.ErrorIs(t, srv.Step(ctx, 1), ErrClosed)
}

func TestServerCallsHonourContext(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}})
	require.NoError(t, err)
	// The loop is not running, so a call can only end by its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = srv.Submit(ctx, Spec{PromptLen: 10, MaxTokens: 1})
	require.ErrorIs(t, err, context.Canceled)
}
