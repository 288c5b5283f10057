package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// forkPinLayout: full attention, a sliding window of 1 token and a State
// group of 1 page: a prompt that branches from a cached prefix pins the
// window block before its branch point (paged's retention pins).
var forkPinLayout = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}, {Kind: paged.State, Pages: 1}}

// warmRun serves prompt alone with one sample, leaving its blocks cached.
func warmRun(t *testing.T, s *sched.Scheduler, prompt []int32) {
	t.Helper()
	r, err := s.Submit(prompt, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 7)
	require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
}

// TestForkSamplesWarmPins: a 2-token prompt with 3 samples, alone in a
// pool of 6 blocks of 1 token, with chunked prefill: it holds 4 blocks
// when it forks, and its 2 forks take a state page each. With an empty
// cache it is served. With its first token cached (a one-sample request
// before it), the prompt branches there and pins the window block of
// token 1: the first fork took the last free block, and the manager
// refused the second (its first fork counted as another sequence
// running, so the pins were kept), so the scheduler aborted the request
// ("its 3 samples' state pages do not fit beside its prompt with nothing
// else running"). Pins are a soft cost (docs/hybrid.md): the second fork
// now takes the pin's block.
func TestForkSamplesWarmPins(t *testing.T) {
	serveForkPinned(t, []int32{1, 2}, 3)
}

// TestForkSetAsideIdlePins: a 3-token prompt with 2 samples, alone in a
// pool of 6 blocks of 1 token, with chunked prefill: it holds 5 blocks
// when it forks, and its fork takes a state page. With an empty cache it
// is served. With its first token cached, it branches there: its
// admission asks for a state checkpoint at the branch point and it pins
// the window block there (paged's retention), blocks the set-aside
// (forkRoom) counts as taken, so it refused the admission at every step,
// and the request was aborted as one that does not fit an empty pool.
// Waiting in an idle pool changes nothing: the admission is kept, and
// the fork takes the pins' blocks (the manager releases them for a fork
// alone in the pool).
func TestForkSetAsideIdlePins(t *testing.T) {
	serveForkPinned(t, []int32{1, 2, 3}, 2)
}

// serveForkPinned serves prompt with n samples alone in a pool of 6
// blocks of forkPinLayout, with chunked prefill, once with an empty cache
// and once after its first token was served alone (warm): it finishes
// both times, forks n-1 times, and leaves the pool empty.
func serveForkPinned(t *testing.T, prompt []int32, n int) {
	t.Helper()
	for _, warm := range []bool{false, true} {
		m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: 7, Groups: forkPinLayout})
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 1})
		require.NoError(t, err)
		if warm {
			warmRun(t, s, []int32{1})
		}
		r, err := s.Submit(prompt, sched.Options{MaxTokens: 1, N: n})
		require.NoError(t, err)
		drain(t, s, 7)
		assert.Equal(t, sched.Finished, r.State(), "warm %v: %v", warm, r.Err())
		assert.EqualValues(t, n-1, s.Stats().Forks, "warm %v", warm)
		assert.Zero(t, m.Stats().UsedBlocks)
	}
}

// TestForkWarmAloneRapid: TestForkAloneWithinBoundRapid with a warm
// cache: a forking request within the bound a cold pool serves
// (paged.Manager.PrefillFloor in chunks without prefix caching, its
// samples' state pages, one block spare at most two), alone in the pool
// with chunked prefill, finishes when a prefix of its prompt was served
// before it (perhaps branching off: the prompt then branches from a
// cached prefix and holds paged's retention pins there). Layouts of full
// attention, one or two sliding windows and a State group, both modes.
// Before, the pins it held made its set-aside refuse every admission
// (TestForkSetAsideIdlePins) or its second fork fail
// (TestForkSamplesWarmPins), and the request was aborted. CI may run it
// longer (-rapid.checks).
func TestForkWarmAloneRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		compat := rapid.Bool().Draw(t, "compat") // vLLM's mode: UnifiedFreeQueue
		for range rapid.IntRange(1, 2).Draw(t, "locals") {
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 4*bs).Draw(t, "window")})
		}
		pages := rapid.IntRange(1, 3).Draw(t, "pages")
		groups = append(groups, paged.Group{Kind: paged.State, Pages: pages})
		p := rapid.IntRange(2, 8*bs).Draw(t, "prompt")
		n := rapid.IntRange(2, 3).Draw(t, "samples")
		m, s, prompt, floor, blocks := forkAlonePool(t, groups, bs, p, n, pages, true, compat)
		serve := func(prompt []int32, n int) *sched.Request {
			r, err := s.Submit(prompt, sched.Options{MaxTokens: 1, N: n})
			if err != nil {
				t.Fatalf("Submit of %d tokens, %d samples: %v", len(prompt), n, err)
			}
			for steps := 0; s.Busy(); steps++ {
				if steps > 10*p+100 {
					t.Fatalf("no progress")
				}
				st, err := s.Schedule()
				if err != nil {
					t.Fatal(err)
				}
				var batch paged.Batch // as a server: the step's copies taken
				if err := s.BuildBatch(&batch); err != nil {
					t.Fatal(err)
				}
				if err := s.Update(make([]int32, st.Outputs)); err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			return r
		}
		q := rapid.IntRange(1, p).Draw(t, "warm")
		warm := prompt[:q:q]
		if rapid.Bool().Draw(t, "branch") {
			warm = append(warm, 500, 501, 502)[:min(p, q+rapid.IntRange(1, 3).Draw(t, "tail"))]
		}
		if r := serve(warm, 1); r.State() != sched.Finished {
			t.Skipf("the warm-up: %v %v", r.State(), r.Err())
		}
		if r := serve(prompt, n); r.State() != sched.Finished {
			t.Fatalf("floor %d, %d samples of %d pages, %d blocks, %d tokens served before: %v %v", floor, n, pages, blocks, len(warm), r.State(), r.Err())
		}
	})
}
