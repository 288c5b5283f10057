package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The twenty-eighth mutation round (docs/testing.md): paged's decode
// steps (AppendStep, DecodeStep) and hybrid retention. Each test closes a
// mutation that survived it; the internal ones are in
// audit74_internal_test.go.

// TestAudit74StepRefusesStaleOwnSequence: a sequence that owns its partly
// filled last block may take its token without the full check (the fast
// check of AppendStep and DecodeStep), but only while that ownership is of
// its current table version: a sequence swapped out, preempted, or given
// drafts keeps the old mark, and must go through the full check, which
// refuses it before anything changes. M1287 let the stale mark through:
// the running entry before it got its token, and the step failed half
// done.
func TestAudit74StepRefusesStaleOwnSequence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale func(m *paged.Manager, id paged.SeqID) error
		// decode: the step is DecodeStep (a waiting sequence is
		// refused there, not by AppendStep).
		decode bool
	}{
		{"swapped out", func(m *paged.Manager, id paged.SeqID) error { return m.SwapOut(id) }, false},
		{"swapped out, decode", func(m *paged.Manager, id paged.SeqID) error { return m.SwapOut(id) }, true},
		{"drafts", func(m *paged.Manager, id paged.SeqID) error { return m.AppendSpeculative(id, 50) }, false},
		{"drafts, decode", func(m *paged.Manager, id paged.SeqID) error { return m.AppendSpeculative(id, 50) }, true},
		{"preempted, decode", func(m *paged.Manager, id paged.SeqID) error { return m.Preempt(id) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 16})
			require.NoError(t, err)
			a, _, err := m.Create(seqOf(0, 6), nil)
			require.NoError(t, err)
			b, _, err := m.Create(seqOf(100, 5), nil)
			require.NoError(t, err)
			m.EndStep()
			// A token written in place makes b own its last block (2 of 4
			// slots filled then).
			require.NoError(t, m.Append(b, 7))
			require.NoError(t, tc.stale(m, b))
			m.EndStep()
			lenA, err := m.Len(a)
			require.NoError(t, err)
			sched := []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: b, NewTokens: 1}}
			var n int
			if tc.decode {
				n, err = m.DecodeStep(&paged.Batch{}, sched, []int32{8, 9})
			} else {
				n, err = m.AppendStep(sched, []int32{8, 9})
			}
			require.ErrorIs(t, err, paged.ErrSequenceState)
			assert.Zero(t, n, "entries done")
			got, err := m.Len(a)
			require.NoError(t, err)
			assert.Equal(t, lenA, got, "the entry before the refused one changed")
			require.NoError(t, m.Check())
		})
	}
}

// TestAudit74DecodeStepNamesTheTooWideEntry: with a fixed Stride, a
// DecodeStep whose token would take a table past the Stride is refused,
// naming the entry that would: not an entry whose table, with its token,
// exactly fills the Stride, which fits. M1294 named the first that
// filled it.
func TestAudit74DecodeStepNamesTheTooWideEntry(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
	require.NoError(t, err)
	fits, _, err := m.Create(seqOf(0, 6), nil) // its 7th token: 2 blocks
	require.NoError(t, err)
	wide, _, err := m.Create(seqOf(100, 8), nil) // its 9th token: 3 blocks
	require.NoError(t, err)
	b := &paged.Batch{Stride: 2}
	sched := []paged.Scheduled{{ID: fits, NewTokens: 1}, {ID: wide, NewTokens: 1}}
	_, err = m.DecodeStep(b, sched, []int32{1, 2})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), fmt.Sprintf("%v would have 3 blocks", wide))
	assert.Contains(t, err.Error(), "DecodeStep entry 1)")
	assert.NotContains(t, err.Error(), fmt.Sprint(fits))
	// Without the wide entry, the step fits the Stride.
	n, err := m.DecodeStep(b, sched[:1], []int32{1})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, m.Check())
}

// TestAudit74DecodeStepWantsOneNewToken: a DecodeStep entry appends the
// sequence's one new token, so its NewTokens must be 1: 0 is refused as 2
// is, whichever check sees the entry (the fast one, for a sequence that
// owns its last block, or the full one, for a sequence whose token starts
// a block), and nothing changes. M1296 let 0 through the full check.
func TestAudit74DecodeStepWantsOneNewToken(t *testing.T) {
	for _, length := range []int{5, 8} { // own last block; a full one
		for _, newTokens := range []int{0, 2, -1} {
			m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
			require.NoError(t, err)
			a, _, err := m.Create(seqOf(0, length), nil)
			require.NoError(t, err)
			if length%4 != 0 {
				require.NoError(t, m.Append(a, 7)) // now own
				length++
			}
			n, err := m.DecodeStep(&paged.Batch{}, []paged.Scheduled{{ID: a, NewTokens: newTokens}}, []int32{9})
			require.ErrorIs(t, err, paged.ErrInvalid, "length %d, NewTokens %d", length, newTokens)
			assert.Zero(t, n)
			got, err := m.Len(a)
			require.NoError(t, err)
			assert.Equal(t, length, got, "NewTokens %d", newTokens)
			require.NoError(t, m.Check())
		}
	}
}

// TestAudit74ForkBesideAnotherLineKeepsPins: Fork releases the parent's
// retention pins for room only when the parent runs alone but for its
// own line (its forks, the sequences it was forked from); beside a
// sequence of another line, or beside any sequence when it never forked,
// the refusal is a wait and the pins stay. The order the sequences sit in
// the manager's slots must not matter: M1307 counted the parent among
// the others it looked for and stopped a sequence short, so a sequence of
// another line in the slot after the parent's first fork was never seen;
// M1308 took sequences that never forked, the parent and the other, for
// one line.
func TestAudit74ForkBesideAnotherLineKeepsPins(t *testing.T) {
	for _, tc := range []struct {
		name string
		// forks before the other sequence is admitted, then after it.
		before, after int
	}{
		{"other admitted before the forks", 0, 2},
		{"other admitted after the first fork", 1, 1},
		{"parent never forked", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks := 10
			if tc.before+tc.after == 1 {
				blocks = 9 // no room for the first fork's page
			}
			m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: blocks, Groups: forkPinLayout})
			require.NoError(t, err)
			id := forkPinParent(t, m)
			for range tc.before {
				_, err := m.Fork(id)
				require.NoError(t, err)
			}
			other, err := m.Add([]int32{9}, nil)
			require.NoError(t, err)
			_, err = m.Admit(other)
			require.NoError(t, err)
			for i := range tc.after {
				_, err = m.Fork(id)
				if i < tc.after-1 {
					require.NoError(t, err)
				}
			}
			require.ErrorIs(t, err, paged.ErrNoSpace, "another line runs")
			assert.Equal(t, 1, m.Stats().RetentionPins)
			assert.Zero(t, m.Stats().RetentionPinsReleased)
			require.NoError(t, m.Check())
		})
	}
}

// TestAudit74ChunkBlocksAreNotPinned: retention pins hold window blocks
// only; a chunked group's blocks before a branch point (as many as a
// whole chunk's) wait on the high shelf instead, also when the chunked
// group is the layout's one local group (here beside a State group,
// which turns the shelves on). M1309 pinned them there.
func TestAudit74ChunkBlocksAreNotPinned(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 64, Groups: []paged.Group{
		{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 2}, {Kind: paged.State, Pages: 1}}})
	require.NoError(t, err)
	w, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(w))
	id, _, err := m.Create([]int32{1, 2, 3, 4}, nil) // branches after 3 blocks
	require.NoError(t, err)
	m.TakeCheckpoints(nil)
	m.EndStep()
	_, high0 := paged.Shelves(m)
	require.NoError(t, m.Append(id, 5)) // the chunk [2, 4) is left behind
	m.TakeCheckpoints(nil)
	m.EndStep()
	assert.Zero(t, m.Stats().RetentionPins)
	_, high1 := paged.Shelves(m)
	assert.Greater(t, high1, high0, "the chunk before the branch point goes to the high shelf")
	require.NoError(t, m.Check())
}

// TestAudit74BranchPointIsTheFirstAdmissions: a sequence's branch point
// (the end of the cached prefix it shared at its first admission, whose
// window retention keeps for the next sequence sharing that prefix) is
// set once: a readmission after a preemption (its next token appended,
// as a scheduler keeps it) hits the sequence's own chain to its end,
// which is no branch point. A sequence preempted and readmitted must
// leave as many blocks on the high shelf as its twin that ran through
// (window of 2 tokens, blocks of 1: the window before a point is one
// block). M1372 moved the branch point to the readmission's hit, pinned
// the window before it as it slid, and the finished sequence left more
// on the high shelf than its twin.
func TestAudit74BranchPointIsTheFirstAdmissions(t *testing.T) {
	shelves := func(preempt bool) (low, high int) {
		m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 64,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}})
		require.NoError(t, err)
		w, _, err := m.Create([]int32{1, 2, 3, 4, 100, 101}, nil)
		require.NoError(t, err)
		m.EndStep()
		require.NoError(t, m.Free(w))
		x, cached, err := m.Create([]int32{1, 2, 3, 4, 200, 201, 202, 203}, nil)
		require.NoError(t, err)
		require.Equal(t, 4, cached, "x branches from w after 4 tokens")
		m.EndStep()
		if preempt {
			require.NoError(t, m.Preempt(x))
			require.NoError(t, m.Append(x, 204)) // its next token, as a scheduler keeps it
			cached, err := m.Admit(x)
			require.NoError(t, err)
			require.Equal(t, 8, cached, "x's own chain")
		} else {
			require.NoError(t, m.Append(x, 204))
		}
		m.EndStep()
		require.NoError(t, m.Append(x, 205))
		m.EndStep()
		require.NoError(t, m.Free(x))
		require.NoError(t, m.Check())
		return paged.Shelves(m)
	}
	_, high := shelves(false)
	_, phigh := shelves(true)
	assert.Equal(t, high, phigh, "high shelf")
}

// TestAudit74FinishedSequenceKeepsOthersProtected: when a preempted
// sequence is dropped without resuming, the high-shelf blocks holding its
// chain go to the policy (nothing will claim them); a running sequence
// that finishes has nothing on the high shelf to give up, and must leave
// there what protects another preempted sequence's hit, though it holds
// the same content. Parent and fork fill their shared last block with
// the same tokens (each then has its own copy, both cached under one
// hash); the fork is preempted (its copy waits on the high shelf for
// its resume); the parent finishes. M1373 unprotected the parent's chain
// too, and the fork's copy went to the policy.
func TestAudit74FinishedSequenceKeepsOthersProtected(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}}})
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	m.EndStep()
	c, err := m.Fork(p)
	require.NoError(t, err)
	require.NoError(t, m.Append(p, 7, 8))
	require.NoError(t, m.Append(c, 7, 8))
	m.EndStep()
	require.NoError(t, m.Preempt(c))
	require.NoError(t, m.Append(c, 9)) // its next token, as a scheduler keeps it
	_, high := paged.Shelves(m)
	require.Positive(t, high, "the fork's own blocks wait for its resume")
	require.NoError(t, m.Free(p))
	_, after := paged.Shelves(m)
	assert.Equal(t, high, after, "the finished parent left the fork's blocks on the high shelf")
	cached, err := m.Admit(c)
	require.NoError(t, err)
	assert.Equal(t, 8, cached)
	require.NoError(t, m.Check())
}
