package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit25BadVerdictChangesNothing: on a hybrid layout with State
// groups, a step verifying drafts of two samples (one of them cancelled
// between Schedule and Update) refuses every malformed verdict with
// ErrInvalid and changes nothing, in the scheduler's statistics, the
// manager's statistics, its cached blocks and its sequences; the right
// verdict is then taken.
func TestAudit25BadVerdictChangesNothing(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 128, Events: 256,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}, {Kind: paged.State, Pages: 2}, {Kind: paged.Shared, Target: 0}}})
	s, err := sched.New(m, sched.Config{MaxDrafts: 3})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 10})
	require.NoError(t, err)
	b, err := s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 10})
	require.NoError(t, err)
	c, err := s.Submit([]int32{9, 8}, sched.Options{MaxTokens: 10})
	require.NoError(t, err)
	specStep(t, s)
	require.NoError(t, s.Update([]int32{100, 200, 300}))
	require.NoError(t, s.Propose(a, 0, []int32{101, 102, 103}))
	require.NoError(t, s.Propose(b, 0, []int32{201, 202}))
	st := specStep(t, s)
	require.Equal(t, 5, st.Drafts)
	require.NoError(t, s.Cancel(c))

	type state struct {
		sched sched.Stats
		m     paged.Stats
		snap  paged.Snapshot
		toks  [2][]int32
	}
	take := func() state {
		var x state
		x.sched, x.m = s.Stats(), m.Stats()
		m.Snapshot(&x.snap)
		x.toks[0], x.toks[1] = seqTokens(t, m, a.Seq(0)), seqTokens(t, m, b.Seq(0))
		return x
	}
	before := take()
	for _, bad := range []struct {
		tokens   []int32
		accepted []int
	}{
		{[]int32{110, 210, 310}, nil},
		{[]int32{110, 210, 310}, []int{1, 1}},
		{[]int32{110, 210, 310}, []int{4, 0, 0}},
		{[]int32{110, 210, 310}, []int{0, 3, 0}},
		{[]int32{110, 210, 310}, []int{0, 0, 1}},
		{[]int32{110, 210, 310}, []int{-1, 0, 0}},
		{[]int32{110, 210}, []int{1, 1, 0}},
		{[]int32{110, -1, 310}, []int{1, 1, 0}},
	} {
		err := s.UpdateSpeculative(bad.tokens, bad.accepted, nil)
		require.ErrorIs(t, err, sched.ErrInvalid, "%v %v", bad.tokens, bad.accepted)
		assert.Equal(t, before, take(), "%v %v", bad.tokens, bad.accepted)
	}
	assert.ErrorIs(t, s.Update([]int32{110, 210, 310}), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateBeams([]int32{110, 210, 310}, []int{0, 0, 0}), sched.ErrInvalid)
	assert.Equal(t, before, take())
	require.NoError(t, m.Check())

	require.NoError(t, s.UpdateSpeculative([]int32{110, 210, 310}, []int{2, 2, 0}, nil))
	assert.Equal(t, []int32{1, 2, 3, 100, 101, 102}, seqTokens(t, m, a.Seq(0)))
	assert.Equal(t, []int32{1, 2, 3, 4, 5, 200, 201, 202}, seqTokens(t, m, b.Seq(0)))
	assert.Equal(t, 4, a.Outputs(0))
	assert.Equal(t, 4, b.Outputs(0))
	assert.Zero(t, m.Stats().StateDraftPages)
	require.NoError(t, m.Check())
	checkDraftStats(t, s)
}
