package main

import (
	"context"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit88ManualStepStopsAtTheLimit: a Step call asking for more steps
// than MaxSteps leaves runs only up to the limit, then the loop stops.
// Before, the limit was checked only after the call: Step(ctx, 5) with
// MaxSteps 2 ran five steps.
func TestAudit88ManualStepStopsAtTheLimit(t *testing.T) {
	srv, err := NewServer(ServerConfig{Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}}, Manual: true, MaxSteps: 2})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	_, err = srv.Submit(ctx, Spec{PromptLen: 5, MaxTokens: 20})
	require.NoError(t, err)
	require.NoError(t, srv.Step(ctx, 5))
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not stop at MaxSteps")
	}
	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), sn.Steps)
}
