package main

import (
	"math"
	"runtime"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit50LengthCheckDoesNotOverflow submits prompt lengths and
// max_tokens whose sum wraps past MaxInt. Submit's length check is made
// before a prompt is made up, so a huge prompt_len costs nothing: each is
// ErrTooLong, changes no count but its reason's, and allocates far less
// than the 16 MiB a made-up prompt of 2^22 tokens would take. A check that
// adds the two (M325) let the wrapped sums through: the server made up a
// prompt of 2^22 tokens before the scheduler refused it (and one of
// 2^63-1, FuzzSubmitBody's MaxInt64 seed, ran for minutes).
func TestAudit50LengthCheckDoesNotOverflow(t *testing.T) {
	s, _ := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64, MaxModelLen: 1024}})
	const plen = 1 << 22
	for _, spec := range []Spec{
		{PromptLen: plen, MaxTokens: math.MaxInt - plen + 1}, // wraps to MinInt
		{PromptLen: plen, MaxTokens: math.MaxInt},            // wraps to MinInt+plen-1
		{PromptLen: 1000, MaxTokens: math.MaxInt},            // wraps; plen fits alone
		{Prompt: []int32{1, 2, 3}, MaxTokens: math.MaxInt - 1},
	} {
		before := s.Snapshot()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		_, err := s.Submit(spec)
		runtime.ReadMemStats(&m1)
		require.ErrorIs(t, err, ErrTooLong, "prompt_len %d, %d prompt tokens, max_tokens %d", spec.PromptLen, len(spec.Prompt), spec.MaxTokens)
		if got := m1.TotalAlloc - m0.TotalAlloc; got > 1<<20 {
			t.Fatalf("refusing prompt_len %d, max_tokens %d allocated %d bytes: a prompt was made up before the length check", spec.PromptLen, spec.MaxTokens, got)
		}
		after := s.Snapshot()
		assert.Equal(t, before.Requests.Submitted, after.Requests.Submitted)
		assert.Equal(t, before.Requests.Rejected+1, after.Requests.Rejected)
	}
}
