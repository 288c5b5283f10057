package main

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit9StopUnderLoad stops a self-stepping server while eight clients
// submit, query and read statistics (run with -race): every client's
// calls end with ErrClosed once the loop has stopped (none blocks on a
// call the loop never ran), the final statistics stay readable from all
// of them at once, and no goroutine outlives the test.
func TestAudit9StopUnderLoad(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, err := NewServer(ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 128, Events: 16}, MaxNumSeqs: 16},
		MaxSteps:  300,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			call := context.Background()
			for i := 0; ; i++ {
				st, err := srv.Submit(call, Spec{PromptLen: 20 + c, MaxTokens: 5 + i%7})
				if errors.Is(err, ErrClosed) {
					break
				}
				if errors.Is(err, ErrQueueFull) {
					// Eight clients flooding a loop slowed by -race and
					// a busy machine can fill the 512-request queue: a
					// refusal the API documents, not a failure.
					continue
				}
				if !assert.NoError(t, err) {
					return
				}
				if _, err := srv.Status(call, st.ID); err != nil && !assert.ErrorIs(t, err, ErrClosed) {
					return
				}
				if _, err := srv.Stats(call); !assert.NoError(t, err) {
					return
				}
			}
			// Stopped: the final statistics, concurrently.
			for range 20 {
				sn, err := srv.Stats(call)
				assert.NoError(t, err)
				assert.Positive(t, sn.Requests.RejectedBy[ReasonClosed.String()])
			}
		})
	}
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the loop did not reach MaxSteps")
	}
	wg.Wait()
	cancel()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines outlive the server")
}

// TestAudit9RunTwice: a second Run, while the first runs or after it has
// stopped, returns at once and leaves the server as it was (it used to
// run a second loop on the same scheduler, and close Done twice: a
// panic).
func TestAudit9RunTwice(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, MaxNumSeqs: 16}, Manual: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	require.NoError(t, srv.Step(ctx, 1))
	second := make(chan struct{})
	go func() {
		defer close(second)
		srv.Run(ctx)
	}()
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("a second Run runs a second loop")
	}
	_, err = srv.Submit(ctx, Spec{PromptLen: 8, MaxTokens: 2})
	require.NoError(t, err, "the first loop still serves")
	cancel()
	<-srv.Done()
	require.NotPanics(t, func() { srv.Run(context.Background()) }, "Run after the loop stopped")
	_, err = srv.Submit(context.Background(), Spec{PromptLen: 8, MaxTokens: 2})
	require.ErrorIs(t, err, ErrClosed)
}
