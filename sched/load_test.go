package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

func TestLoadFollowsTheWork(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 8, ChunkedPrefill: true})
	require.NoError(t, err)
	assert.Equal(t, sched.Load{}, s.Load())
	prompt := func(n, first int32) []int32 {
		p := make([]int32, n)
		for i := range p {
			p[i] = first + int32(i)
		}
		return p
	}
	_, err = s.Submit(prompt(12, 1), sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	_, err = s.Submit(prompt(5, 100), sched.Options{MaxTokens: 2, N: 2})
	require.NoError(t, err)
	assert.Equal(t, sched.Load{Waiting: 2, PrefillTokens: 17, DecodeTokens: 3 + 2*2, KVTokens: 17}, s.Load())

	// Step 1: the first prompt's first chunk of 8 tokens.
	_, err = s.Schedule()
	require.NoError(t, err)
	assert.Equal(t, sched.Load{Running: 1, Waiting: 1, PrefillTokens: 4 + 5, DecodeTokens: 7, KVTokens: 17}, s.Load())
	require.NoError(t, s.Update(nil))
	// Step 2: its last 4 tokens (one output), then the second prompt's 4
	// of 5 (the budget is 8).
	st, err := s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 2)
	assert.Equal(t, sched.Load{Running: 2, PrefillTokens: 1, DecodeTokens: 7, KVTokens: 17}, s.Load())
	require.NoError(t, s.Update([]int32{7}))
	assert.Equal(t, 6, s.Load().DecodeTokens, "one token decoded")
	for s.Busy() {
		st, err := s.Schedule()
		require.NoError(t, err)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
	}
	assert.Equal(t, sched.Load{}, s.Load())
}

func TestLoadAllocatesNothing(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 6, ChunkedPrefill: true})
	require.NoError(t, err)
	for i := range 4 {
		_, err := s.Submit([]int32{int32(i), 1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 4})
		require.NoError(t, err)
	}
	_, err = s.Schedule()
	require.NoError(t, err)
	var l sched.Load
	if n := testing.AllocsPerRun(100, func() { l = s.Load() }); n != 0 {
		t.Fatalf("Load allocates %v times", n)
	}
	assert.Equal(t, 4, l.Running+l.Waiting)
}
