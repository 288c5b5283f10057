package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// specStep schedules a step and requires it to be one.
func specStep(t *testing.T, s *sched.Scheduler) *sched.Step {
	t.Helper()
	st, err := s.Schedule()
	require.NoError(t, err)
	require.NotEmpty(t, st.Scheduled)
	return st
}

// decoding submits a request and runs its prompt's step, whose output
// is 100: the request is then decoding, with a pending token to draft
// after.
func decoding(t *testing.T, s *sched.Scheduler, prompt []int32, opts sched.Options) *sched.Request {
	t.Helper()
	r, err := s.Submit(prompt, opts)
	require.NoError(t, err)
	specStep(t, s)
	require.NoError(t, s.Update([]int32{100}))
	return r
}

func seqTokens(t *testing.T, m *paged.Manager, id paged.SeqID) []int32 {
	t.Helper()
	toks, err := m.Tokens(id)
	require.NoError(t, err)
	return toks
}

// checkDraftStats: every proposed draft ended as accepted, rejected or
// dropped.
func checkDraftStats(t *testing.T, s *sched.Scheduler) {
	t.Helper()
	st := s.Stats()
	assert.Equal(t, st.DraftsProposed, st.DraftsAccepted+st.DraftsRejected+st.DraftsDropped, "%+v", st)
}

// The accepted drafts become outputs before the bonus token, the rejected
// one is rolled back, and the prefix cache holds only accepted content: a
// block a rejected draft filled is never hit.
func TestSpeculativeAcceptReject(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 4})
	require.NoError(t, err)
	r := decoding(t, s, []int32{1, 2, 3}, sched.Options{MaxTokens: 10})
	require.NoError(t, s.Propose(r, 0, []int32{101, 102, 103}))

	st := specStep(t, s)
	require.Len(t, st.Scheduled, 1)
	sc := st.Scheduled[0]
	assert.Equal(t, []int32{101, 102, 103}, sc.Drafts)
	assert.Equal(t, 3, sc.Start)
	assert.Equal(t, 4, sc.NewTokens)
	assert.Equal(t, 1, sc.Outputs)
	assert.False(t, sc.Prefill)
	assert.Equal(t, 3, st.Drafts)
	assert.Equal(t, 4, st.Tokens)
	assert.Equal(t, []int32{1, 2, 3, 100, 101, 102, 103}, seqTokens(t, m, sc.Seq))
	var b paged.Batch
	require.NoError(t, s.BuildBatch(&b))
	assert.Len(t, b.Slots, 4, "the pending token and three drafts get slots")

	// The verdict goes to UpdateSpeculative: Update and bad counts are
	// refused and change nothing.
	assert.ErrorIs(t, s.Update([]int32{200}), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{200}, []int{}, nil), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{200}, []int{4}, nil), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{200}, []int{-1}, nil), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{200}, nil, nil), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{200, 201}, []int{1}, nil), sched.ErrInvalid)
	assert.ErrorIs(t, s.UpdateSpeculative([]int32{-200}, []int{1}, nil), sched.ErrInvalid)
	assert.Equal(t, 1, r.Outputs(0))
	assert.Equal(t, []int32{1, 2, 3, 100, 101, 102, 103}, seqTokens(t, m, sc.Seq))

	// One accepted: 101 is an output, 102 and 103 go; 200 is sampled
	// after 101.
	require.NoError(t, s.UpdateSpeculative([]int32{200}, []int{1}, nil))
	assert.Equal(t, 3, r.Outputs(0))
	assert.Equal(t, []int32{1, 2, 3, 100, 101}, seqTokens(t, m, r.Seq(0)))
	require.NoError(t, m.Check())
	ss := s.Stats()
	assert.EqualValues(t, 3, ss.DraftsProposed)
	assert.EqualValues(t, 1, ss.DraftsAccepted)
	assert.EqualValues(t, 2, ss.DraftsRejected)
	assert.EqualValues(t, 3, ss.Outputs)
	checkDraftStats(t, s)

	// The next step decodes 200 at position 5, where 102 was.
	st = specStep(t, s)
	assert.Equal(t, 5, st.Scheduled[0].Start)
	assert.Equal(t, 1, st.Scheduled[0].NewTokens)
	assert.Nil(t, st.Scheduled[0].Drafts)
	require.NoError(t, s.Update([]int32{201}))
	assert.Equal(t, []int32{1, 2, 3, 100, 101, 200}, seqTokens(t, m, r.Seq(0)))

	// The block [101 102] that the rejected draft filled was never
	// cached; [101 200] is.
	q, err := s.Submit([]int32{1, 2, 3, 100, 101, 102, 103, 7}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	q2, err := s.Submit([]int32{1, 2, 3, 100, 101, 200, 9}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	st = specStep(t, s)
	for _, sc := range st.Scheduled {
		switch sc.Request {
		case q:
			assert.Equal(t, 4, sc.Cached, "a rejected draft's block was hit")
		case q2:
			assert.Equal(t, 6, sc.Cached)
		}
	}
}

// A stop token among the accepted drafts ends the sample there: the
// drafts after it and the bonus token are dropped.
func TestSpeculativeStopInDrafts(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	finished := 0
	s, err := sched.New(m, sched.Config{MaxDrafts: 4, Hooks: sched.Hooks{Finished: func(*sched.Request, int) { finished++ }}})
	require.NoError(t, err)
	r := decoding(t, s, []int32{1, 2, 3}, sched.Options{MaxTokens: 10, StopTokens: []int32{102}})
	require.NoError(t, s.Propose(r, 0, []int32{101, 102, 103}))
	specStep(t, s)
	require.NoError(t, s.UpdateSpeculative([]int32{104}, []int{3}, nil))
	assert.Equal(t, sched.Finished, r.State())
	assert.Equal(t, 3, r.Outputs(0), "100, 101 and the stop token 102")
	assert.Equal(t, 1, finished)
	assert.False(t, s.Busy())
	ss := s.Stats()
	assert.EqualValues(t, 2, ss.DraftsAccepted)
	assert.EqualValues(t, 1, ss.DraftsRejected, "103, accepted after the stop token")
	assert.EqualValues(t, 3, ss.Outputs)
	checkDraftStats(t, s)
	assert.Zero(t, m.Stats().Sequences)
	require.NoError(t, m.Check())
	// Finished: its drafts are refused.
	assert.ErrorIs(t, s.Propose(r, 0, []int32{1}), sched.ErrDone)
	// As decoded token by token, the stop token got no slot: the block
	// [101 102] was never cached.
	q, err := s.Submit([]int32{1, 2, 3, 100, 101, 102, 7}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	st := specStep(t, s)
	assert.Equal(t, q, st.Scheduled[0].Request)
	assert.Equal(t, 4, st.Scheduled[0].Cached)
}

// A sample's drafts never take it past its last output: with MaxTokens 3
// and one output, one draft and the bonus token are all it can take.
func TestSpeculativeMaxTokens(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 4})
	require.NoError(t, err)
	r := decoding(t, s, []int32{1, 2, 3}, sched.Options{MaxTokens: 3})
	require.NoError(t, s.Propose(r, 0, []int32{101, 102, 103, 104}))
	st := specStep(t, s)
	assert.Equal(t, []int32{101}, st.Scheduled[0].Drafts)
	require.NoError(t, s.UpdateSpeculative([]int32{200}, []int{1}, nil))
	assert.Equal(t, sched.Finished, r.State())
	assert.Equal(t, 3, r.Outputs(0))
	assert.EqualValues(t, 3, s.Stats().DraftsDropped)
	checkDraftStats(t, s)
}

// Drafts leave a token of the budget to every sequence after them in the
// step.
func TestSpeculativeBudget(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 3, MaxBatchTokens: 6})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	b, err := s.Submit([]int32{3, 4}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	c, err := s.Submit([]int32{5, 6}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	specStep(t, s)
	require.NoError(t, s.Update([]int32{10, 20, 30}))
	for _, r := range []*sched.Request{a, b, c} {
		require.NoError(t, s.Propose(r, 0, []int32{7, 8, 9}))
	}
	st := specStep(t, s)
	require.Len(t, st.Scheduled, 3)
	// a: its pending token and 3 drafts, leaving one token each to b and
	// c, which get no drafts.
	assert.Equal(t, []int32{7, 8, 9}, st.Scheduled[0].Drafts)
	assert.Nil(t, st.Scheduled[1].Drafts)
	assert.Nil(t, st.Scheduled[2].Drafts)
	assert.Equal(t, 6, st.Tokens)
	require.NoError(t, s.UpdateSpeculative([]int32{11, 21, 31}, []int{2, 0, 0}, nil))
	assert.Equal(t, 4, a.Outputs(0))
	assert.Equal(t, 2, b.Outputs(0))
	checkDraftStats(t, s)
}

// Drafts never preempt: when the pool runs out, the step's drafts are
// withdrawn before any sequence is preempted, and drafts that do not fit
// are cut to what does.
func TestSpeculativePoolPressure(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5})
	require.Equal(t, 4, m.Stats().UsableBlocks)
	s, err := sched.New(m, sched.Config{MaxDrafts: 4})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	b, err := s.Submit([]int32{4, 5}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	specStep(t, s) // a: 2 blocks, b: 1
	require.NoError(t, s.Update([]int32{10, 20}))
	// a's pending token fills its second block and its drafts take the
	// last free block; b's pending token then finds none: a's drafts are
	// withdrawn rather than b preempted.
	require.NoError(t, s.Propose(a, 0, []int32{11, 12}))
	st := specStep(t, s)
	require.Len(t, st.Scheduled, 2)
	assert.Nil(t, st.Scheduled[0].Drafts)
	assert.Equal(t, 1, st.Scheduled[0].NewTokens)
	assert.Zero(t, st.Preempted)
	assert.Zero(t, st.Drafts)
	assert.Equal(t, []int32{1, 2, 3, 10}, seqTokens(t, m, a.Seq(0)))
	assert.EqualValues(t, 2, s.Stats().DraftsDropped)
	require.NoError(t, m.Check())
	require.NoError(t, s.Update([]int32{13, 21})) // b finishes
	assert.Equal(t, sched.Finished, b.State())

	// Alone now with 2 free blocks: 4 drafts would need 3 more blocks
	// (positions 5 to 8), so they are halved to 2.
	require.NoError(t, s.Propose(a, 0, []int32{14, 15, 16, 17}))
	st = specStep(t, s)
	assert.Equal(t, []int32{14, 15}, st.Scheduled[0].Drafts)
	assert.Zero(t, st.Preempted)
	require.NoError(t, s.UpdateSpeculative([]int32{30}, []int{2}, nil))
	assert.Equal(t, sched.Finished, a.State(), "13, 14, 15, 30 and 10: five outputs")
	checkDraftStats(t, s)
	require.NoError(t, m.Check())
}

// Bad proposals are refused with a clear error and change nothing.
func TestProposeErrors(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 2, MaxBatchTokens: 4, ChunkedPrefill: true})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	long, err := s.Submit(make([]int32, 9), sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	beam, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5, BeamWidth: 2})
	require.NoError(t, err)
	other, err := sched.New(newManager(t, paged.Config{NumBlocks: 8}), sched.Config{MaxDrafts: 2})
	require.NoError(t, err)
	foreign, err := other.Submit([]int32{1}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)

	assert.ErrorIs(t, s.Propose(r, 0, []int32{1}), sched.ErrInvalid, "no sampled token yet")
	st := specStep(t, s)
	assert.ErrorIs(t, s.Propose(r, 0, []int32{1}), sched.ErrInvalid, "between Schedule and Update")
	toks := make([]int32, st.Outputs)
	require.NoError(t, s.Update(toks))
	require.Equal(t, 1, r.Outputs(0))
	require.Less(t, long.Outputs(0), 1, "the long prompt is still in chunks")

	for name, tc := range map[string]struct {
		r      *sched.Request
		sample int
		drafts []int32
		want   error
	}{
		"nil request":     {nil, 0, []int32{1}, sched.ErrInvalid},
		"foreign":         {foreign, 0, []int32{1}, sched.ErrForeign},
		"negative token":  {r, 0, []int32{1, -1}, sched.ErrInvalid},
		"too many":        {r, 0, []int32{1, 2, 3}, sched.ErrInvalid},
		"sample range":    {r, 1, []int32{1}, sched.ErrInvalid},
		"negative sample": {r, -1, []int32{1}, sched.ErrInvalid},
		"beam search":     {beam, 0, []int32{1}, sched.ErrInvalid},
		"chunked prompt":  {long, 0, []int32{1}, sched.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Propose(tc.r, tc.sample, tc.drafts)
			assert.ErrorIs(t, err, tc.want)
			assert.Zero(t, s.Stats().DraftsProposed)
		})
	}
	// A replaced proposal is dropped; an empty one drops the last.
	require.NoError(t, s.Propose(r, 0, []int32{7, 8}))
	require.NoError(t, s.Propose(r, 0, nil))
	assert.EqualValues(t, 2, s.Stats().DraftsDropped)
	require.NoError(t, s.Cancel(r))
	assert.ErrorIs(t, s.Propose(r, 0, []int32{1}), sched.ErrDone)

	off, err := sched.New(newManager(t, paged.Config{NumBlocks: 8}), sched.Config{})
	require.NoError(t, err)
	q, err := off.Submit([]int32{1}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	assert.ErrorIs(t, off.Propose(q, 0, []int32{1}), sched.ErrInvalid, "MaxDrafts 0: off")
	_, err = sched.New(newManager(t, paged.Config{NumBlocks: 8}), sched.Config{MaxDrafts: -1})
	assert.ErrorIs(t, err, sched.ErrInvalid)
}

// The samples of an N > 1 request verify drafts of their own; a request
// cancelled between Schedule and Update drops its drafts.
func TestSpeculativeSamplesAndCancel(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{MaxDrafts: 2})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 10, N: 2})
	require.NoError(t, err)
	c, err := s.Submit([]int32{4, 5, 6}, sched.Options{MaxTokens: 10})
	require.NoError(t, err)
	specStep(t, s)
	require.NoError(t, s.Update([]int32{10, 20, 30}))
	require.NoError(t, s.Propose(r, 0, []int32{11, 12}))
	require.NoError(t, s.Propose(r, 1, []int32{21, 22}))
	require.NoError(t, s.Propose(c, 0, []int32{31, 32}))
	st := specStep(t, s)
	require.Equal(t, 6, st.Drafts)
	require.NoError(t, s.Cancel(c))
	accepted := make([]int, len(st.Scheduled))
	for i, sc := range st.Scheduled {
		if sc.Request == r {
			accepted[i] = 2 - sc.Sample // sample 0 takes both, sample 1 one
		}
	}
	require.NoError(t, s.UpdateSpeculative([]int32{13, 23, 33}, accepted, nil))
	assert.Equal(t, []int32{1, 2, 3, 10, 11, 12}, seqTokens(t, m, r.Seq(0)))
	assert.Equal(t, []int32{1, 2, 3, 20, 21}, seqTokens(t, m, r.Seq(1)))
	assert.Equal(t, 4, r.Outputs(0))
	assert.Equal(t, 3, r.Outputs(1))
	ss := s.Stats()
	assert.EqualValues(t, 3, ss.DraftsAccepted)
	assert.EqualValues(t, 1, ss.DraftsRejected)
	assert.EqualValues(t, 2, ss.DraftsDropped, "the cancelled request's")
	checkDraftStats(t, s)
	require.NoError(t, m.Check())
	drain(t, s, 5)
}

// With a State group (a linear-attention layer) the manager keeps a state
// per draft (docs/hybrid.md, "State groups: drafts"): the drafts are
// scheduled and verified, and a rejection rolls the state back.
func TestSpeculativeStateGroup(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	s, err := sched.New(m, sched.Config{MaxDrafts: 3})
	require.NoError(t, err)
	r := decoding(t, s, []int32{1, 2, 3}, sched.Options{MaxTokens: 10})
	require.NoError(t, s.Propose(r, 0, []int32{101, 102, 103}))
	st := specStep(t, s)
	sc := st.Scheduled[0]
	require.Equal(t, 3, st.Drafts, "the manager takes drafts beside a State group")
	assert.Equal(t, []int32{101, 102, 103}, sc.Drafts)
	require.NoError(t, s.UpdateSpeculative([]int32{200}, []int{1}, nil))
	assert.Equal(t, []int32{1, 2, 3, 100, 101}, seqTokens(t, m, r.Seq(0)))
	assert.Equal(t, 3, r.Outputs(0))
	assert.EqualValues(t, 1, s.Stats().DraftsAccepted)
	assert.EqualValues(t, 2, s.Stats().DraftsRejected)
	assert.Zero(t, m.Stats().StateDraftPages, "the rejected drafts' states are given back")
	checkDraftStats(t, s)
	require.NoError(t, m.Check())
	drain(t, s, 5)
}

// A step whose sequences verify drafts allocates nothing once its buffers
// have grown: Propose, Schedule, BuildBatch, UpdateSpeculative.
func TestSpeculativeStepAllocs(t *testing.T) {
	const n, k = 32, 3
	m := benchManager(t, n, true)
	s, err := sched.New(m, sched.Config{MaxRunning: n, MaxDrafts: k})
	require.NoError(t, err)
	var reqs []*sched.Request
	for _, p := range benchPrompts(n) {
		r, err := s.Submit(p, sched.Options{MaxTokens: decodeLen})
		require.NoError(t, err)
		reqs = append(reqs, r)
	}
	tokens := make([]int32, n)
	accepted := make([]int, n)
	drafts := []int32{1, 2, 3}
	var batch paged.Batch
	step := func() {
		for _, r := range reqs {
			if r.Outputs(0) > 0 && r.Outputs(0) < decodeLen-k-1 {
				if err := s.Propose(r, 0, drafts); err != nil {
					t.Fatal(err)
				}
			}
		}
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.BuildBatch(&batch); err != nil {
			t.Fatal(err)
		}
		for i := range st.Scheduled {
			accepted[i] = (i + int(st.Number)) % (len(st.Scheduled[i].Drafts) + 1)
		}
		if err := s.UpdateSpeculative(tokens[:st.Outputs], accepted[:len(st.Scheduled)], nil); err != nil {
			t.Fatal(err)
		}
	}
	step() // admissions
	step() // buffers grow
	step()
	if a := testing.AllocsPerRun(20, step); a != 0 {
		t.Fatalf("a speculative decode step allocates %v times", a)
	}
	ss := s.Stats()
	if ss.DraftsAccepted == 0 || ss.DraftsRejected == 0 || s.Running() != n {
		t.Fatalf("the steps verified nothing: %+v, %d running", ss, s.Running())
	}
}

// A proposal for a sample swapped out before its decode is dropped; the
// sample keeps its pending token in the host tier, so it takes drafts
// again, and verifies them in the step that swaps it in.
func TestSpeculativeSwap(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5, HostBlocks: 8})
	require.Equal(t, 4, m.Stats().UsableBlocks)
	s, err := sched.New(m, sched.Config{MaxDrafts: 2, Preemption: sched.Swap})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{3, 4, 5, 6, 7}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	specStep(t, s) // a: 1 block, b: 3
	require.NoError(t, s.Update([]int32{10, 20}))
	require.NoError(t, s.Propose(b, 0, []int32{21, 22}))
	// a's pending token needs a block: b, the newest, is swapped out,
	// and its proposal dropped.
	st := specStep(t, s)
	require.Len(t, st.Scheduled, 1)
	assert.Equal(t, 1, st.Preempted)
	assert.Equal(t, sched.Preempted, b.State())
	assert.EqualValues(t, 2, s.Stats().DraftsDropped)
	require.NoError(t, s.Update([]int32{11})) // a finishes
	require.Equal(t, sched.Finished, a.State())

	require.NoError(t, s.Propose(b, 0, []int32{21, 22}))
	st = specStep(t, s)
	require.Len(t, st.Scheduled, 1)
	sc := st.Scheduled[0]
	assert.True(t, sc.Admitted)
	// One draft: with MaxModelLen 8 (the pool) and 5 prompt tokens, b
	// has 2 outputs left, the draft's and the bonus token's.
	assert.Equal(t, []int32{21}, sc.Drafts)
	assert.Equal(t, 5, sc.Start)
	assert.Equal(t, 2, sc.NewTokens)
	require.NoError(t, s.UpdateSpeculative([]int32{30}, []int{0}, nil))
	assert.Equal(t, []int32{3, 4, 5, 6, 7, 20}, seqTokens(t, m, b.Seq(0)))
	assert.Equal(t, 2, b.Outputs(0))
	checkDraftStats(t, s)
	require.NoError(t, m.Check())
	drain(t, s, 5)
}

// Hooks.Scheduled sees an entry's drafts as placed; when a later
// sequence finds no block they are withdrawn, and the Step says so.
func TestSpeculativeHookSeesDrafts(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5})
	var seen [][]int32
	s, err := sched.New(m, sched.Config{MaxDrafts: 4, Hooks: sched.Hooks{Scheduled: func(sc *sched.Scheduled) {
		seen = append(seen, append([]int32(nil), sc.Drafts...))
	}}})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	_, err = s.Submit([]int32{4, 5}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	specStep(t, s)
	require.NoError(t, s.Update([]int32{10, 20}))
	require.NoError(t, s.Propose(a, 0, []int32{11, 12}))
	seen = seen[:0]
	st := specStep(t, s)
	assert.Equal(t, [][]int32{{11, 12}, nil}, seen, "a's drafts as placed, then b")
	assert.Nil(t, st.Scheduled[0].Drafts, "withdrawn for b's token")
	require.NoError(t, s.Update([]int32{13, 21}))
	checkDraftStats(t, s)
}

// BenchmarkSpeculativeStep measures a decode step of 64 sequences that
// each verify 3 drafts (Propose, Schedule, BuildBatch, UpdateSpeculative;
// the verdicts cycle through every accepted count), per output token. A
// request that finishes is replaced by a new one, whose Submit and
// prompt step the figures include (its allocations among them).
func BenchmarkSpeculativeStep(b *testing.B) {
	const n, k = 64, 3
	m := benchManager(b, n, false)
	s, err := sched.New(m, sched.Config{MaxRunning: n, MaxDrafts: k})
	if err != nil {
		b.Fatal(err)
	}
	prompts := benchPrompts(n)
	reqs := make([]*sched.Request, n)
	tokens, accepted := make([]int32, n), make([]int, n)
	drafts := []int32{1, 2, 3}
	var batch paged.Batch
	step := func() {
		for i, r := range reqs {
			switch {
			case r == nil || r.State().Done():
				if reqs[i], err = s.Submit(prompts[i], sched.Options{MaxTokens: decodeLen}); err != nil {
					b.Fatal(err)
				}
			case r.Outputs(0) > 0:
				if err = s.Propose(r, 0, drafts); err != nil {
					b.Fatal(err)
				}
			}
		}
		st, err := s.Schedule()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.BuildBatch(&batch); err != nil {
			b.Fatal(err)
		}
		for i := range st.Scheduled {
			accepted[i] = (i + int(st.Number)) % (len(st.Scheduled[i].Drafts) + 1)
		}
		if err := s.UpdateSpeculative(tokens[:st.Outputs], accepted[:len(st.Scheduled)], nil); err != nil {
			b.Fatal(err)
		}
	}
	step()
	before := s.Stats()
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
	ss := s.Stats()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ss.Outputs-before.Outputs), "ns/token")
	b.ReportMetric(float64(ss.DraftsAccepted)/float64(ss.DraftsAccepted+ss.DraftsRejected), "accepted/verified")
}
