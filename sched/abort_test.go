package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// twoGroups is a manager config with two full-attention KV cache groups:
// a token takes a slot in each, which Submit weighs (it refuses what
// never fits), but not the blocks a sequence the caller drives itself
// holds beside the scheduler, for good.
func twoGroups(bs, blocks int) paged.Config {
	return paged.Config{BlockSize: bs, NumBlocks: blocks, MaxModelLen: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}}
}

// windowGroups is a manager config with a full-attention group and a
// sliding window of two tokens, with prefix caching: admitted after a
// hit, a sequence holds only the window's blocks of the prefix, and
// Submit accepts what fits so, but admitted where the cache lacks that
// prefix it holds a block per block of tokens in both groups, which may
// never fit.
func windowGroups(bs, blocks int) paged.Config {
	return paged.Config{BlockSize: bs, NumBlocks: blocks, MaxModelLen: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}}
}

// A request that can never proceed is aborted whole, with an error its
// owner reads; the scheduler goes on and serves the others, and nothing
// is lost or left behind. One case per place where the scheduler finds
// out.
func TestAbortNever(t *testing.T) {
	type submit struct {
		prompt int
		opts   sched.Options
	}
	for _, tc := range []struct {
		name string
		mcfg paged.Config
		cfg  sched.Config
		// external tokens held in the pool by a sequence the scheduler
		// does not own.
		external int
		// bad is submitted after the first before others, or after a
		// step when badLast.
		bad     submit
		before  int
		badLast bool
		others  []submit
		msg     string
	}{
		{
			name: "does not fit an empty pool", mcfg: paged.Config{BlockSize: 2, NumBlocks: 9},
			external: 8, // 4 of the 8 usable blocks
			bad:      submit{10, sched.Options{MaxTokens: 1}},
			others:   []submit{{2, sched.Options{MaxTokens: 3}}},
			msg:      "does not fit an empty pool",
		},
		{
			name: "does not fit an empty pool, dry run", mcfg: paged.Config{BlockSize: 2, NumBlocks: 9},
			cfg:      sched.Config{CheckBeforeAdmit: true},
			external: 8,
			bad:      submit{10, sched.Options{MaxTokens: 1}},
			others:   []submit{{2, sched.Options{MaxTokens: 3}}},
			msg:      "does not fit an empty pool",
		},
		{
			// 3 prompt tokens and 2 outputs of KV take 3 blocks in each
			// group, the pool's 6: Submit accepts it. The caller's own
			// sequence holds a block of each for good; alone beside it
			// the request reaches 4 tokens, never 5.
			name: "cannot grow", mcfg: twoGroups(2, 7), external: 2,
			bad:    submit{3, sched.Options{MaxTokens: 3}},
			others: []submit{{1, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 3}}},
			msg:    "cannot grow past 4 tokens",
		},
		{
			name: "cannot grow, newest", mcfg: twoGroups(2, 7), external: 2,
			bad: submit{3, sched.Options{MaxTokens: 3}}, badLast: true,
			others: []submit{{1, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 3}}},
			msg:    "cannot grow past 4 tokens",
		},
		{
			name: "cannot grow, admit first, resample", mcfg: twoGroups(2, 7), external: 2,
			cfg:    sched.Config{AdmitFirst: true, ResampleAfterRecompute: true, CheckBeforeAdmit: true},
			bad:    submit{3, sched.Options{MaxTokens: 3}},
			others: []submit{{1, sched.Options{MaxTokens: 2}}},
			msg:    "cannot grow past 4 tokens",
		},
		{
			name: "cannot grow, chunked prefill", mcfg: twoGroups(2, 7), external: 2,
			cfg:    sched.Config{MaxBatchTokens: 2, ChunkedPrefill: true, Policy: sched.Priority},
			bad:    submit{5, sched.Options{MaxTokens: 2}},
			others: []submit{{1, sched.Options{MaxTokens: 2, Priority: 1}}},
			msg:    "cannot grow past 4 tokens",
		},
		{
			// Parallel samples share the request's fate: every sample
			// is freed.
			name: "cannot grow, parallel samples", mcfg: twoGroups(2, 7), external: 2,
			bad:    submit{3, sched.Options{MaxTokens: 3, N: 2}},
			others: []submit{{1, sched.Options{MaxTokens: 2}}},
			msg:    "cannot grow past",
		},
		{
			name: "cannot grow, swap", mcfg: func() paged.Config { c := twoGroups(2, 7); c.HostBlocks, c.DisableOffload = 16, true; return c }(),
			cfg:      sched.Config{Preemption: sched.Swap},
			external: 2,
			bad:      submit{3, sched.Options{MaxTokens: 3}},
			others:   []submit{{1, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 3}}},
			msg:      "cannot grow past 4 tokens",
		},
		{
			// 20 prompt tokens after a hit of 18 hold 10 blocks of full
			// attention and 2 of the window, within the 14 usable: Submit
			// accepts them. Not cached, they take 10 in each group.
			name: "never admitted", mcfg: windowGroups(2, 15),
			bad:    submit{20, sched.Options{MaxTokens: 1}},
			others: []submit{{1, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 4}}},
			msg:    "paged: request can never fit",
		},
		{
			name: "never admitted, dry run", mcfg: windowGroups(2, 15),
			cfg:    sched.Config{CheckBeforeAdmit: true},
			bad:    submit{20, sched.Options{MaxTokens: 1, N: 3}},
			others: []submit{{1, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 4}}},
			msg:    "can never be admitted",
		},
		{
			name: "never admitted, behind running requests", mcfg: windowGroups(2, 15),
			bad: submit{20, sched.Options{MaxTokens: 1}}, badLast: true,
			others: []submit{{1, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 4}}},
			msg:    "paged: request can never fit",
		},
		{
			// A chunked-local group of 2 and prefix caching: Submit
			// counts on the hits a readmission finds. One sample,
			// preempted, is readmitted where they are gone, and never
			// fits (15 usable blocks, 3 kept by the watermark), while the
			// other runs and was scheduled in the step: both go, and the
			// step keeps neither.
			name: "never readmitted, a sample running",
			mcfg: paged.Config{BlockSize: 1, NumBlocks: 16, MaxModelLen: 64, Watermark: 0.2,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 2}}},
			bad:    submit{3, sched.Options{MaxTokens: 7, N: 2}},
			others: []submit{{2, sched.Options{MaxTokens: 2}}, {2, sched.Options{MaxTokens: 1}}},
			msg:    "paged: request can never fit",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, tc.mcfg)
			var ext paged.SeqID
			if tc.external > 0 {
				var err error
				ext, err = m.Add(make([]int32, tc.external), nil)
				require.NoError(t, err)
				_, err = m.Admit(ext)
				require.NoError(t, err)
			}
			used := m.Stats().UsedBlocks
			var hooked []*sched.Request
			var hookErr error
			cfg := tc.cfg
			cfg.Hooks.Aborted = func(r *sched.Request, err error) {
				hooked = append(hooked, r)
				hookErr = err
				assert.Equal(t, sched.Aborted, r.State(), "the hook sees the request ended")
				for i := range r.Samples() {
					assert.Zero(t, r.Seq(i), "sample %d freed before the hook", i)
				}
			}
			s, err := sched.New(m, cfg)
			require.NoError(t, err)
			sub := func(x submit) *sched.Request {
				prompt := make([]int32, x.prompt)
				for i := range prompt {
					prompt[i] = int32(len(prompt)*100 + i)
				}
				r, err := s.Submit(prompt, x.opts)
				require.NoError(t, err, "Submit accepts what can fit")
				return r
			}
			var bad *sched.Request
			var others []*sched.Request
			for i, o := range tc.others {
				if i == tc.before && !tc.badLast {
					bad = sub(tc.bad)
				}
				others = append(others, sub(o))
			}
			if bad == nil && !tc.badLast {
				bad = sub(tc.bad)
			}
			if tc.badLast {
				// Submitted once the others run.
				st, err := s.Schedule()
				require.NoError(t, err)
				require.NoError(t, s.Update(make([]int32, st.Outputs)))
				bad = sub(tc.bad)
			}
			// Every sample gets tokens of its own (the same tokens would
			// make the samples' blocks each other's prefix hits).
			tok := int32(1000)
			for steps := 0; s.Busy(); steps++ {
				require.Less(t, steps, 1000, "no progress")
				stepOwnTokens(t, s, &tok)
			}

			assert.Equal(t, sched.Aborted, bad.State())
			require.ErrorIs(t, bad.Err(), sched.ErrNever)
			assert.ErrorContains(t, bad.Err(), tc.msg)
			assert.Equal(t, []*sched.Request{bad}, hooked, "the hook is called once, for the bad request")
			assert.Equal(t, bad.Err(), hookErr)
			for i := range bad.Samples() {
				assert.Zero(t, bad.Seq(i))
			}
			require.ErrorIs(t, s.Cancel(bad), sched.ErrDone)
			for i, o := range others {
				assert.Equal(t, sched.Finished, o.State(), "request %d", i)
				assert.NoError(t, o.Err())
				assert.Equal(t, tc.others[i].opts.MaxTokens, o.Outputs(0), "request %d", i)
			}
			st := s.Stats()
			assert.EqualValues(t, 1, st.Aborted)
			assert.EqualValues(t, len(others), st.Finished)
			assert.False(t, s.Busy())
			assert.Zero(t, s.Running()+s.Waiting())
			ms := m.Stats()
			assert.Equal(t, used, ms.UsedBlocks, "only the external sequence holds blocks")
			assert.Zero(t, ms.Tiers.HostUsed)
			if ext != 0 {
				require.NoError(t, m.Free(ext))
			}
			assert.Zero(t, m.Stats().Sequences)
			require.NoError(t, m.Check())

			// The scheduler is still usable: a new request runs.
			r := sub(submit{2, sched.Options{MaxTokens: 2}})
			drain(t, s, 1)
			assert.Equal(t, sched.Finished, r.State())
		})
	}
}

// TestSwappedOutPastTheChunkComesBack: Submit's floor for a chunked-local
// group with prefix caching is a readmission's after the longest hit,
// which may end at the chunk's start; a decode keeps the group's last
// cached block besides the chunk's (as vLLM does), one block more. A
// sequence that grew so into the blocks the watermark keeps from
// admissions (13 usable blocks of 2, 6 kept) and was then swapped out
// took that block to the host tier, held more than a swap-in may ever
// take, and was aborted when it came back to the head of the queue
// ("can never be swapped in"; this test was TestAbortNeverSwappedIn and
// pinned the abort). paged's SwapOut now releases the block, which no
// query from the next position reads: it comes back and finishes.
func TestSwappedOutPastTheChunkComesBack(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 14, MaxModelLen: 64, Watermark: 0.4, HostBlocks: 64, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 2}}})
	var hooked []*sched.Request
	cfg := sched.Config{MaxBatchTokens: 3, ChunkedPrefill: true, Policy: sched.Priority, Preemption: sched.Swap, AdmitFirst: true}
	cfg.Hooks.Aborted = func(r *sched.Request, err error) { hooked = append(hooked, r) }
	var bad *sched.Request
	never, swaps := false, 0
	cfg.Hooks.Preempted = func(r *sched.Request, i int, swapped bool) {
		if r != bad || !swapped {
			return
		}
		swaps++
		// Swapped out at n tokens, it held more than the 7 blocks a
		// swap-in may take, where Submit's floor fits.
		a, _, err := m.CanSwapIn(r.Seq(i))
		require.NoError(t, err)
		n, err := m.Len(r.Seq(i))
		require.NoError(t, err)
		floor, err := m.PrefillFloor(n, nil, true)
		require.NoError(t, err)
		assert.LessOrEqual(t, floor, 7, "at %d tokens", n)
		never = never || a == paged.AdmitNever
	}
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	prompt := func(i, n int) []int32 {
		p := make([]int32, n)
		for k := range p {
			p[k] = int32(100*i + k)
		}
		return p
	}
	var others []*sched.Request
	tok := int32(1000)
	for steps := 1; bad == nil || s.Busy(); steps++ {
		require.Less(t, steps, 300, "no progress")
		switch steps {
		case 1:
			bad, err = s.Submit(prompt(0, 4), sched.Options{MaxTokens: 9, Priority: 1})
			require.NoError(t, err)
		case 3:
			r, err := s.Submit(prompt(2, 3), sched.Options{MaxTokens: 10, Priority: 1})
			require.NoError(t, err)
			others = append(others, r)
		case 4:
			r, err := s.Submit(prompt(1, 2), sched.Options{MaxTokens: 11})
			require.NoError(t, err)
			others = append(others, r)
		}
		stepOwnTokens(t, s, &tok)
	}
	assert.Positive(t, swaps, "never swapped out: the test checks nothing")
	assert.False(t, never, "swapped out holding more than a swap-in may take")
	assert.Equal(t, sched.Finished, bad.State(), "%v", bad.Err())
	assert.Empty(t, hooked)
	for i, o := range others {
		assert.Equal(t, sched.Finished, o.State(), "request %d", i)
	}
	assert.Zero(t, m.Stats().UsedBlocks)
	assert.Zero(t, m.Stats().Tiers.HostUsed)
	assert.Zero(t, m.Stats().Sequences)
}

// stepOwnTokens runs one step of s whose every output samples a token of
// its own (*tok, counting up), and checks the manager after it.
func stepOwnTokens(t *testing.T, s *sched.Scheduler, tok *int32) {
	t.Helper()
	st, err := s.Schedule()
	require.NoError(t, err)
	tokens := make([]int32, st.Outputs)
	for i := range tokens {
		*tok++
		tokens[i] = *tok
	}
	require.NoError(t, s.Update(tokens))
	require.NoError(t, s.Manager().Check())
}
