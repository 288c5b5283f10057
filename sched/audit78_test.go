package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The thirty-second mutation round (docs/testing.md): speculative
// decoding's proposals, their cut to the pool, and their verdicts.

// Propose copies the drafts (its doc says so): the caller may reuse its
// slice at once, and the step verifies what was proposed (M1440).
func TestAudit78DraftsAreCopied(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 3})
	require.NoError(t, err)
	r := decoding(t, s, []int32{1, 2, 3}, sched.Options{MaxTokens: 10})
	drafts := []int32{101, 102, 103}
	require.NoError(t, s.Propose(r, 0, drafts))
	drafts[0], drafts[1], drafts[2] = 7, 8, 9 // the drafter's next guesses
	st := specStep(t, s)
	require.Len(t, st.Scheduled, 1)
	assert.Equal(t, []int32{101, 102, 103}, st.Scheduled[0].Drafts)
	assert.Equal(t, []int32{1, 2, 3, 100, 101, 102, 103}, seqTokens(t, m, r.Seq(0)))
	assert.Equal(t, []int32{7, 8, 9}, drafts, "the scheduler wrote the caller's slice")
	require.NoError(t, s.UpdateSpeculative([]int32{104}, []int{3}, nil))
	assert.Equal(t, []int32{1, 2, 3, 100, 101, 102, 103}, seqTokens(t, m, r.Seq(0)))
	checkDraftStats(t, s)
}

// A finished sample of a request whose other sample still decodes is
// ErrDone for Propose and DraftRoom (not ErrInvalid for its lack of a
// sampled token), and the live sample still takes drafts (M1449).
func TestAudit78FinishedSampleIsDone(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 2})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 10, N: 2, StopTokens: []int32{99}})
	require.NoError(t, err)
	st := specStep(t, s)
	require.Equal(t, 2, st.Outputs)
	require.NoError(t, s.Update([]int32{99, 20})) // sample 0 stops
	require.Equal(t, sched.Running, r.State())
	require.Equal(t, 1, r.Outputs(0))

	assert.ErrorIs(t, s.Propose(r, 0, []int32{5}), sched.ErrDone)
	_, err = s.DraftRoom(r, 0)
	assert.ErrorIs(t, err, sched.ErrDone)
	assert.Zero(t, s.Stats().DraftsProposed)
	require.NoError(t, s.Propose(r, 1, []int32{21, 22}))
	st = specStep(t, s)
	require.Len(t, st.Scheduled, 1)
	assert.Equal(t, 1, st.Scheduled[0].Sample)
	assert.Equal(t, []int32{21, 22}, st.Scheduled[0].Drafts)
}

// A beam search that has ended is ErrDone, as any ended request, before
// the rule that a beam search takes no drafts (M1446).
func TestAudit78EndedBeamSearchIsDone(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 2})
	require.NoError(t, err)
	beam, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5, BeamWidth: 2})
	require.NoError(t, err)
	assert.ErrorIs(t, s.Propose(beam, 0, []int32{1}), sched.ErrInvalid)
	require.NoError(t, s.Cancel(beam))
	assert.ErrorIs(t, s.Propose(beam, 0, []int32{1}), sched.ErrDone)
	_, err = s.DraftRoom(beam, 0)
	assert.ErrorIs(t, err, sched.ErrDone)
}

// Drafts the pool cannot hold are halved until they fit (Propose's
// doc), not cut one by one to the most that fits: with three blocks free
// after the pending tokens', four drafts of one-token blocks become two
// (M1453).
func TestAudit78DraftsHalvedToFit(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: 16})
	require.Equal(t, 15, m.Stats().UsableBlocks)
	s, err := sched.New(m, sched.Config{MaxDrafts: 4})
	require.NoError(t, err)
	b, err := s.Submit([]int32{9, 9, 9, 9, 9, 9, 9}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 10})
	require.NoError(t, err)
	specStep(t, s)
	require.NoError(t, s.Update([]int32{50, 100}))
	require.Equal(t, 5, m.Stats().FreeBlocks)
	require.NoError(t, s.Propose(r, 0, []int32{101, 102, 103, 104}))
	st := specStep(t, s)
	require.Len(t, st.Scheduled, 2)
	require.Equal(t, b, st.Scheduled[0].Request)
	require.Equal(t, r, st.Scheduled[1].Request)
	assert.Equal(t, []int32{101, 102}, st.Scheduled[1].Drafts)
	assert.Equal(t, 2, st.Drafts)
	assert.Equal(t, 4, st.Tokens)
	assert.Zero(t, st.Preempted)
	assert.EqualValues(t, 2, s.Stats().DraftsDropped)
	assert.Equal(t, 1, m.Stats().FreeBlocks, "one block of the three left free")
	require.NoError(t, s.UpdateSpeculative([]int32{51, 105}, []int{0, 2}, nil))
	checkDraftStats(t, s)
	require.NoError(t, m.Check())
}

// Drafts withdrawn when the pool runs out leave no trace in the step's
// or the scheduler's counts: the step computes the two pending tokens,
// and Stats.DecodeTokens counts those, not the drafts (M1461, M1462).
func TestAudit78WithdrawnDraftsLeaveTheCounts(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5})
	s, err := sched.New(m, sched.Config{MaxDrafts: 4})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	_, err = s.Submit([]int32{4, 5}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	st := specStep(t, s)
	require.Equal(t, 5, st.Tokens)
	require.NoError(t, s.Update([]int32{10, 20}))
	before := s.Stats()
	require.EqualValues(t, 5, before.PrefillTokens)
	require.Zero(t, before.DecodeTokens)

	require.NoError(t, s.Propose(a, 0, []int32{11, 12}))
	st = specStep(t, s)
	require.Len(t, st.Scheduled, 2)
	require.Nil(t, st.Scheduled[0].Drafts, "a's drafts are withdrawn for b's token")
	assert.Zero(t, st.Drafts)
	assert.Equal(t, 2, st.Tokens)
	assert.Equal(t, 1, st.Scheduled[0].NewTokens)
	after := s.Stats()
	assert.EqualValues(t, 2, after.DecodeTokens)
	assert.EqualValues(t, 5, after.PrefillTokens)
	assert.EqualValues(t, 2, after.DraftsDropped)
	require.NoError(t, s.Update([]int32{13, 21}))
	checkDraftStats(t, s)
}

// UpdateSpeculative takes a verdict: nil accepted is ErrInvalid even for
// a step without drafts (Update is the call for that), and a count for
// each entry, no more: both refusals change nothing (M1467, M1468).
func TestAudit78VerdictCounts(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 2})
	require.NoError(t, err)
	r := decoding(t, s, []int32{1, 2, 3}, sched.Options{MaxTokens: 10})
	st := specStep(t, s)
	require.Len(t, st.Scheduled, 1)
	require.Zero(t, st.Drafts)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{200}, nil, nil), sched.ErrInvalid)
	assert.Equal(t, 1, r.Outputs(0))
	require.NoError(t, s.UpdateSpeculative([]int32{200}, []int{0}, nil), "a verdict of no drafts")
	assert.Equal(t, 2, r.Outputs(0))

	require.NoError(t, s.Propose(r, 0, []int32{201, 202}))
	st = specStep(t, s)
	require.Equal(t, 2, st.Drafts)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{203}, []int{2, 0}, nil), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{203}, []int{2, 2}, nil), sched.ErrInvalid)
	assert.Equal(t, 2, r.Outputs(0))
	assert.Equal(t, []int32{1, 2, 3, 100, 200, 201, 202}, seqTokens(t, m, r.Seq(0)))
	require.NoError(t, s.UpdateSpeculative([]int32{203}, []int{2}, nil))
	assert.Equal(t, 5, r.Outputs(0))
	checkDraftStats(t, s)
}

// A Phase past PhaseDone prints as its number, as the other enums do
// (M1479: the name table was read one past its end).
func TestAudit78PhaseNames(t *testing.T) {
	for p, w := range []string{"decode", "admit", "scheduled", "output", "done"} {
		assert.Equal(t, w, sched.Phase(p).String())
	}
	assert.Equal(t, "Phase(5)", (sched.PhaseDone + 1).String())
	assert.Equal(t, "Phase(255)", sched.Phase(255).String())
}
