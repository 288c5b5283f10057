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
