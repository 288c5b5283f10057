package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// runDrafts serves the same requests with drafts drafts per step and
// returns the scheduler, the content hashes of the blocks it cached (by
// their KV events) and the samples' output counts.
func runDrafts(t *testing.T, drafts int) (*Scheduler, map[string]int, [][]int) {
	stored := map[string]int{}
	s, err := NewScheduler(SchedulerConfig{
		Manager: paged.Config{NumBlocks: 8192, Events: 1 << 14, BlockSize: 4},
		Drafts:  drafts,
		OnEvent: func(e paged.Event) {
			if e.Kind == paged.BlockStored {
				for _, h := range e.Hashes {
					stored[fmt.Sprintf("%x", h)]++
				}
			}
		},
	})
	require.NoError(t, err)
	var ids []ReqID
	for i := range 24 {
		tk, err := s.Submit(Spec{PromptLen: 20 + 7*i, MaxTokens: 5 + 11*i, N: 1 + 3*(i%5/4)})
		require.NoError(t, err)
		ids = append(ids, tk.ID)
	}
	for steps := 0; s.Step(); steps++ {
		require.Less(t, steps, 10000)
	}
	var outs [][]int
	for _, id := range ids {
		st, err := s.Status(id)
		require.NoError(t, err)
		require.Equal(t, "finished", st.State)
		outs = append(outs, st.Generated)
	}
	require.NoError(t, s.Manager().Check())
	return s, stored, outs
}

// With drafts the fake model samples what it samples without them, in
// fewer steps, and the prefix cache stores exactly the same blocks: only
// accepted content is ever cached.
func TestDraftsSameOutputs(t *testing.T) {
	plain, plainStored, plainOuts := runDrafts(t, 0)
	spec, specStored, specOuts := runDrafts(t, 3)
	assert.Equal(t, plainOuts, specOuts)
	assert.Equal(t, plainStored, specStored)
	a, b := plain.Snapshot(), spec.Snapshot()
	assert.Equal(t, a.Tokens.Generated, b.Tokens.Generated)
	assert.Less(t, b.Steps, a.Steps)
	assert.Zero(t, a.Tokens.Drafted)
	assert.Positive(t, b.Tokens.Accepted)
	assert.Less(t, b.Tokens.Accepted, b.Tokens.Drafted, "the drafter guesses some wrong")
	t.Logf("%d steps without drafts, %d with; %d of %d drafts accepted", a.Steps, b.Steps, b.Tokens.Accepted, b.Tokens.Drafted)
}

// A decode step that proposes and verifies drafts allocates nothing.
func TestDraftStepAllocatesNothing(t *testing.T) {
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 8192, Events: 1024}, MaxNumSeqs: 64, Drafts: 3})
	require.NoError(t, err)
	for i := range 32 {
		_, err := s.Submit(Spec{PromptLen: 100 + 37*i, MaxTokens: 100000, N: 1 + 3*(i%4/3)})
		require.NoError(t, err)
	}
	for range 40 {
		require.True(t, s.Step())
	}
	allocs := testing.AllocsPerRun(200, func() { s.Step() })
	assert.Zero(t, allocs)
	require.Positive(t, s.Snapshot().Tokens.Accepted)
	require.NoError(t, s.Manager().Check())
	_, err = NewScheduler(SchedulerConfig{Drafts: -1})
	assert.ErrorIs(t, err, ErrInvalid)
}
