package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkLastTokenAloneAtTheEdge: a forking prompt within Submit's bound
// (paged.Manager.PrefillFloor in chunks: its last token computed alone,
// when the window group holds one block) forks and finishes alone in the
// pool. The scheduler computed the prompt in chunks of a step's budget,
// whose last one holds a block or three more of the window: the forks'
// set-aside refused the admission every step and the request was
// aborted as one that "does not fit an empty pool" (16 tokens in chunks
// of 4 or 16, 12 blocks), or its prompt ran and the fork failed at the
// Update (12 tokens in chunks of 4, 11 blocks). The scheduler now leaves
// the last token to a step of its own where the forks fit only so.
func TestForkLastTokenAloneAtTheEdge(t *testing.T) {
	for _, tc := range []struct{ p, budget, blocks int }{
		{16, 4, 12}, {16, 16, 12}, {16, 8, 12}, {12, 4, 11}, {12, 12, 11}, {13, 4, 13}, {14, 5, 13}, {20, 6, 14},
	} {
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: tc.blocks, Groups: forkWindowLayout})
		floor, err := m.PrefillFloor(tc.p, nil, true)
		require.NoError(t, err)
		require.LessOrEqual(t, floor+3, tc.blocks-1, "%+v: the request must be within Submit's bound", tc)
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: tc.budget})
		require.NoError(t, err)
		prompt := make([]int32, tc.p)
		for i := range prompt {
			prompt[i] = int32(i + 1)
		}
		r, err := s.Submit(prompt, sched.Options{MaxTokens: 3, N: 2})
		require.NoError(t, err, "%+v", tc)
		drain(t, s, 7)
		assert.Equal(t, sched.Finished, r.State(), "%+v: %v", tc, r.Err())
		assert.EqualValues(t, 1, s.Stats().Forks, "%+v", tc)
		assert.Zero(t, m.Stats().UsedBlocks, "%+v", tc)
	}
}

// TestForkAloneWithinBoundRapid: a forking request Submit accepts, alone
// in an empty pool with chunked prefill and a cold cache, finishes:
// Submit's bound (paged.Manager.PrefillFloor in chunks) is what its
// prompt holds when the last token is computed alone, which the
// scheduler now does where the forks fit only so. Layouts of full
// attention, sliding windows or chunked-local groups and a State group;
// drawn block sizes, budgets, prompt lengths, samples and pools from the
// bound up, in both modes. CI may run it longer (-rapid.checks).
func TestForkAloneWithinBoundRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		caching := rapid.Bool().Draw(t, "caching")
		compat := rapid.Bool().Draw(t, "compat") // vLLM's mode: UnifiedFreeQueue
		for range rapid.IntRange(1, 2).Draw(t, "locals") {
			if !caching && rapid.Bool().Draw(t, "chunked") {
				groups = append(groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 4*bs).Draw(t, "chunk")})
			} else {
				groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 4*bs).Draw(t, "window")})
			}
		}
		pages := rapid.IntRange(1, 3).Draw(t, "pages")
		groups = append(groups, paged.Group{Kind: paged.State, Pages: pages})
		p := rapid.IntRange(2, 8*bs).Draw(t, "prompt")
		n := rapid.IntRange(2, 3).Draw(t, "samples")
		m, s, prompt, floor, blocks := forkAlonePool(t, groups, bs, p, n, pages, caching, compat)
		r, err := s.Submit(prompt, sched.Options{MaxTokens: 1, N: n}) // the samples grow no KV of their own
		if err != nil {
			t.Fatalf("Submit within the bound (floor %d, %d samples of %d pages, %d blocks): %v", floor, n, pages, blocks, err)
		}
		for steps := 0; s.Busy(); steps++ {
			if steps > 10*p+100 {
				t.Fatalf("no progress")
			}
			st, err := s.Schedule()
			if err != nil {
				t.Fatal(err)
			}
			tokens := make([]int32, st.Outputs)
			if err := s.Update(tokens); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		if r.State() != sched.Finished {
			t.Fatalf("floor %d, %d samples of %d pages, %d blocks: %v %v", floor, n, pages, blocks, r.State(), r.Err())
		}
	})
}

// TestSubmitWindowedPromptNeverWhole: with swap preemption and no chunked
// prefill, a windowed sequence (paged.SeqOptions.Window) swapped out comes
// back with what a decode step holds, but its prompt is still admitted
// whole: Submit counted the first only (paged.Manager.PrefillFloor in
// chunks at its longest), and queued a prompt whose admission holds
// every block of its tokens (prefix caching off: no hit releases any),
// more than the pool has, which was aborted at its admission. Submit
// refuses it now, changing nothing.
func TestSubmitWindowedPromptNeverWhole(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, MaxModelLen: 64, HostBlocks: 16, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap})
	require.NoError(t, err)
	prompt := make([]int32, 20) // 10 blocks of 2, the pool has 8
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	r, err := s.Submit(prompt, sched.Options{MaxTokens: 4, Seq: &paged.SeqOptions{Window: 4}})
	require.ErrorIs(t, err, sched.ErrNever)
	assert.Nil(t, r)
	assert.Zero(t, s.Stats().Submitted)
	assert.Zero(t, m.Stats().Sequences, "nothing added")
	// In chunks it is served.
	s, err = sched.New(m, sched.Config{Preemption: sched.Swap, ChunkedPrefill: true, MaxBatchTokens: 4})
	require.NoError(t, err)
	r, err = s.Submit(prompt, sched.Options{MaxTokens: 4, Seq: &paged.SeqOptions{Window: 4}})
	require.NoError(t, err)
	drain(t, s, 5)
	assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
}

// forkAlonePool builds the pool and scheduler of the fork-alone
// properties: groups' layout with blocks of bs tokens, as many blocks as
// a cold prompt of p tokens holds at its last step (PrefillFloor without
// prefix caching: with it, a hit may restore less than a cold prompt
// computes, and a chunked-local group keeps a block more; with windows
// only the cold floors are the same) plus its n-1 forks' pages state
// pages each, one block spare and up to two more; a scheduler with
// chunked prefill and a drawn budget; and the prompt 1..p. It skips a
// draw whose pool cannot be built or whose prompt never computes in
// chunks there: PrefillFloor is the last step's blocks, and a step before
// it may hold more (a window straddling a block boundary), so that even
// one token a step never fits; the manager refuses such a prompt at its
// admission, forks or not.
func forkAlonePool(t *rapid.T, groups []paged.Group, bs, p, n, pages int, caching, compat bool) (m *paged.Manager, s *sched.Scheduler, prompt []int32, floor, blocks int) {
	cold, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 1000, Groups: groups, DisablePrefixCaching: true, UnifiedFreeQueue: compat})
	if err != nil {
		t.Skip(err)
	}
	if floor, err = cold.PrefillFloor(p, nil, true); err != nil {
		t.Fatal(err)
	}
	blocks = floor + (n-1)*pages + 1 + rapid.IntRange(0, 2).Draw(t, "spare")
	if m, err = paged.New(paged.Config{BlockSize: bs, NumBlocks: blocks, Groups: groups, DisablePrefixCaching: !caching, UnifiedFreeQueue: compat}); err != nil {
		t.Skip(err)
	}
	prompt = make([]int32, p)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	id, err := m.Add(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := m.CanAdmitChunk(id, 1); err != nil || a == paged.AdmitNever {
		t.Skip("never computed in chunks in this pool", err)
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if s, err = sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: rapid.IntRange(1, p+2).Draw(t, "budget")}); err != nil {
		t.Fatal(err)
	}
	return m, s, prompt, floor, blocks
}
