package main

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeScheduler returns a scheduler with 32 long requests (8 of them
// sampling four ways) past their prompts, so a step only decodes.
func decodeScheduler(t testing.TB, maxTokens int) *Scheduler {
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 8192, Events: 1024}, MaxNumSeqs: 64})
	require.NoError(t, err)
	for i := range 32 {
		_, err := s.Submit(Spec{PromptLen: 100 + 37*i, MaxTokens: maxTokens, N: 1 + 3*(i%4/3)})
		require.NoError(t, err)
	}
	for range 40 { // admission, forks, copies and buffer growth
		require.True(t, s.Step())
	}
	return s
}

func TestDecodeStepAllocatesNothing(t *testing.T) {
	s := decodeScheduler(t, 100000)
	allocs := testing.AllocsPerRun(200, func() { s.Step() })
	assert.Zero(t, allocs)
	require.NoError(t, s.Manager().Check())
}

// BenchmarkServingStep measures one step of a server in steady state: 32
// live requests of 100 to 1,247 prompt tokens and 200 new tokens, a
// quarter of them sampling four ways, each replaced by a new one when it
// finishes. It reports the whole scheduler step and the part of it spent
// in manager calls.
func BenchmarkServingStep(b *testing.B) {
	s := decodeScheduler(b, 200)
	before := s.Snapshot()
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		for len(s.live) < 32 {
			next++
			_, err := s.Submit(Spec{PromptLen: 100 + 37*(next%32), MaxTokens: 200, N: 1 + 3*(next%4/3)})
			if err != nil {
				b.Fatal(err)
			}
		}
		s.Step()
	}
	after := s.Snapshot()
	steps := after.Steps - before.Steps
	b.ReportMetric(float64(after.ManagerTime-before.ManagerTime)/float64(steps), "manager-ns/step")
	b.ReportMetric(float64(after.Tokens.Generated-before.Tokens.Generated)/float64(steps), "tokens/step")
}

// TestHybridDecodeStepAllocatesNothing: with a window and a state group
// the decode step (group tables, window slides, the checkpoint call, the
// per-group event counts) allocates nothing either. Requests of one
// class share a 64-token prefix, so checkpoints are taken and hit.
func TestHybridDecodeStepAllocatesNothing(t *testing.T) {
	groups, err := ParseLayout("full window:64 state:4", 16)
	require.NoError(t, err)
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 8192, Events: 1024, Groups: groups}, MaxNumSeqs: 64})
	require.NoError(t, err)
	for i := range 32 {
		prompt := make([]int32, 100+37*i)
		for j := range prompt {
			prompt[j] = int32(j + 1)
			if j >= 64 {
				prompt[j] = int32(1000*i + j)
			}
		}
		_, err := s.Submit(Spec{Prompt: prompt, MaxTokens: 100000})
		require.NoError(t, err)
		require.True(t, s.Step()) // one admission a step: later ones hit
	}
	for range 40 {
		require.True(t, s.Step())
	}
	sn := s.Snapshot()
	require.Positive(t, sn.Prefix.HitTokens)
	require.Positive(t, sn.Groups[2].Checkpoints)
	allocs := testing.AllocsPerRun(200, func() { s.Step() })
	assert.Zero(t, allocs)
	require.NoError(t, s.Manager().Check())
}
