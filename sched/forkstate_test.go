package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkWithoutRoomForStatePages: with a State group, a fork needs the
// child's state pages at once (paged.Manager.Fork). When the step that
// completes an n-sample prompt finds no room for them (or, since
// admission sets them aside, the admission does), the prompt goes back to the waiting queue to be
// recomputed (its outputs of that step dropped) instead of Update failing,
// and every sample of every request still finishes once room is made.
// Before, Update returned the fork's ErrNoSpace and the scheduler could
// not go on.
func TestForkWithoutRoomForStatePages(t *testing.T) {
	for _, pre := range []sched.Preemption{sched.Recompute, sched.Swap} {
		cfg := paged.Config{BlockSize: 4, NumBlocks: 24,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 4}}}
		if pre == sched.Swap {
			cfg.HostBlocks = 64
		}
		m := newManager(t, cfg)
		finished := map[*sched.Request]int{}
		preempted := 0
		s, err := sched.New(m, sched.Config{Preemption: pre, Hooks: sched.Hooks{
			Finished:  func(r *sched.Request, _ int) { finished[r]++ },
			Preempted: func(*sched.Request, int, bool) { preempted++ },
		}})
		require.NoError(t, err)
		long := make([]int32, 40)
		for i := range long {
			long[i] = int32(i + 1)
		}
		a, err := s.Submit(long, sched.Options{MaxTokens: 12})
		require.NoError(t, err)
		b, err := s.Submit([]int32{901, 902, 903, 904, 905, 906, 907, 908}, sched.Options{MaxTokens: 3, N: 3})
		require.NoError(t, err)
		var tokens []int32
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 200, "%v: no progress", pre)
			st, err := s.Schedule()
			require.NoError(t, err)
			m.TakeCopies(nil)
			tokens = tokens[:0]
			for range st.Outputs {
				tokens = append(tokens, 7)
			}
			require.NoError(t, s.Update(tokens), "%v: step %d", pre, steps)
			require.NoError(t, m.Check())
		}
		assert.Equal(t, 1, finished[a], "%v", pre)
		assert.Equal(t, 3, finished[b], "%v: every sample of the n=3 request finishes", pre)
		// The forks found no room: at the Update (a requeue, Preempted)
		// or, since admission sets their pages aside, at the admission,
		// taken back by the manager (Unadmit).
		assert.Positive(t, m.Stats().Preemptions+m.Stats().Unadmits, "%v: the fork found no room: the test checks nothing", pre)
	}
}

// TestForkThatCanNeverFit: when nothing else runs and the pool still
// cannot give the forks' state pages, requeueing the prompt would repeat
// the step forever: the request is aborted (ErrNever), as one that
// cannot grow even alone is, and the scheduler serves the next. (Update
// returned the fork's ErrNoSpace before and left the request running as
// if forked, with one sample of three: it never finished.)
func TestForkThatCanNeverFit(t *testing.T) {
	// Whole, the prompt waits at its admission (the forks' pages set
	// aside). (In chunks, 12 tokens in 11 blocks, its last chunk ran and
	// the forks failed at the Update; the scheduler now computes the
	// last token alone where the forks fit only so, and the request
	// finishes: TestForkLastTokenAloneAtTheEdge.)
	forkThatCanNeverFit(t, sched.Config{}, 13, 13)
}

// forkThatCanNeverFit runs a two-sample request of a p-token prompt in a
// pool of blocks blocks that Submit cannot refuse but that never forks
// here. Submit's bound, paged's PrefillFloor, is what the prompt holds
// when it forks at best (a full attention group's blocks, its state
// pages and the window's blocks that step reads: 9 and 3 pages for the
// fork, 12 of 12, for 13 tokens admitted whole after a hit of 12). This
// cold cache gives no hit (the window holds 2 blocks more).
func forkThatCanNeverFit(t *testing.T, cfg sched.Config, p, blocks int) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: blocks,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 3}}})
	floor, err := m.PrefillFloor(p, nil, cfg.ChunkedPrefill)
	require.NoError(t, err)
	require.Equal(t, blocks-1, floor+3, "the request must be within Submit's bound, at it")
	var aborted []*sched.Request
	cfg.Hooks.Aborted = func(r *sched.Request, _ error) { aborted = append(aborted, r) }
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	prompt := make([]int32, p)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	r, err := s.Submit(prompt, sched.Options{MaxTokens: 2, N: 2})
	require.NoError(t, err)
	next, err := s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	drain(t, s, 7)
	assert.Equal(t, sched.Aborted, r.State())
	require.ErrorIs(t, r.Err(), sched.ErrNever)
	assert.Equal(t, []*sched.Request{r}, aborted)
	assert.Equal(t, sched.Finished, next.State())
	assert.Zero(t, m.Stats().Sequences)
	assert.Zero(t, m.Stats().UsedBlocks)
}

// TestSubmitRefusesForksThatCanNeverFit: a request whose prompt's
// full-attention blocks and every sample's state pages (each fork takes
// its own at once) exceed the pool can never fork: Submit refuses it
// (ErrNever), nothing changed, instead of queueing it to be aborted
// after its prompt was computed. One sample fewer fits the bound exactly,
// and is served; a beam search, whose beams decode together, two.
func TestSubmitRefusesForksThatCanNeverFit(t *testing.T) {
	for _, beam := range []bool{false, true} {
		for _, chunked := range []bool{false, true} {
			m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 12,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 3}}})
			cfg := sched.Config{}
			if chunked {
				cfg = sched.Config{ChunkedPrefill: true, MaxBatchTokens: 4}
			}
			s, err := sched.New(m, cfg)
			require.NoError(t, err)
			opts := func(n int) sched.Options {
				if beam {
					return sched.Options{MaxTokens: 2, BeamWidth: n}
				}
				return sched.Options{MaxTokens: 2, N: n}
			}
			// 2 blocks and 4 x 3 pages: 14 of 11.
			prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8}
			r, err := s.Submit(prompt, opts(4))
			require.ErrorIs(t, err, sched.ErrNever, "beam %v chunked %v", beam, chunked)
			assert.Nil(t, r)
			assert.Zero(t, s.Stats().Submitted)
			assert.Zero(t, m.Stats().Sequences, "nothing added")
			// 2 blocks and 3 x 3 pages: 11 of 11; the beams decode
			// together, each into a block of its own.
			n := 3
			if beam {
				n = 2
			}
			r, err = s.Submit(prompt, opts(n))
			require.NoError(t, err)
			drain(t, s, 7)
			assert.Equal(t, sched.Finished, r.State(), "beam %v chunked %v", beam, chunked)
		}
	}
}
