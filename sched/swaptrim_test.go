package sched_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// neverSwapPool is the layout TestStateMachine found the defect on: full
// attention and a chunked-local group of one block's chunk, blocks of 2,
// 14 usable blocks of which the watermark keeps 6, no prefix caching.
func neverSwapPool(t *testing.T) *paged.Manager {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 15, HostBlocks: 30, DisablePrefixCaching: true, DisableOffload: true, Watermark: 0.4,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSwappedOutAfterChunkComesBack: a sample swapped out right after a
// step of several tokens comes back. Its chunked-local group released
// the blocks no query reads only when the next step appended, so swapped
// out after that step (here the prompt's last chunk, of positions 5 to
// 10, which forks the request's three samples) it held every block the
// chunk read: 6 of the full attention group and 4 chunked-local ones, 10
// blocks, more than the 8 an admission may take beside the watermark.
// Submit had accepted the request, counting on a swapped-in sample
// holding what its next decode reads (paged.Manager.PrefillFloor: 7 at 13
// tokens, 8 at 14), and the scheduler aborted it: "request 2: seq2.1 can
// never be swapped in" (TestStateMachine, the failfile of session 15). Now
// SwapOut keeps only what the next step reads, and both requests finish.
func TestSwappedOutAfterChunkComesBack(t *testing.T) {
	m := neverSwapPool(t)
	s, err := sched.New(m, sched.Config{MaxRunning: 4, MaxBatchTokens: 7, ChunkedPrefill: true, Preemption: sched.Swap, MaxDrafts: 5})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, sched.Options{MaxTokens: 3, N: 3})
	if err != nil {
		t.Fatalf("Submit of the request at the edge: %v", err)
	}
	// Drafts for the first sample in step 3, which take the room its
	// siblings grow into: two of them are swapped out, right after the
	// chunk that forked them. Every draft is accepted.
	drafts := map[[3]int]int{{3, 2, 0}: 2}
	runDrafted(t, m, s, []*sched.Request{r1, r2}, drafts, nil)
}

// TestSwappedOutAfterDraftsComesBack is TestSwappedOutAfterChunkComesBack
// after a step of drafts: the first request's sample verifies its pending
// token and 5 drafts in step 3 (positions 3 to 8), all accepted, and is
// preempted in step 4 (the Priority policy's victim) before its next
// decode. Swapped out, it held the 4 chunked-local blocks step 3 read (1
// to 4) beside 5 of full attention, 9, more than the 8 an admission may
// take; its next step, at position 9, reads one of them (block 4): it
// comes back with 6. Before the fix: "request 1: seq0.1 can never be
// swapped in".
func TestSwappedOutAfterDraftsComesBack(t *testing.T) {
	m := neverSwapPool(t)
	s, err := sched.New(m, sched.Config{MaxRunning: 4, MaxBatchTokens: 9, ChunkedPrefill: true, Preemption: sched.Swap, MaxDrafts: 5, Policy: sched.Priority})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Submit([]int32{1}, sched.Options{MaxTokens: 11, Priority: 2})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 11})
	if err != nil {
		t.Fatal(err)
	}
	drafts := map[[3]int]int{{2, 1, 0}: 2, {2, 2, 0}: 5, {3, 1, 0}: 5}
	accept := map[[2]int]int{{2, 1}: 1, {2, 2}: 4, {3, 1}: 5}
	runDrafted(t, m, s, []*sched.Request{r1, r2}, drafts, accept)
}

// runDrafted steps s until it is idle, proposing before step k drafts[{k,
// i, j}] drafts for sample j of request i (its ID, from 1), of which the
// step accepts accept[{k, i}] (at most as many as it verifies; nil: all),
// and fails when a request is aborted, when none was swapped out, or when
// a request does not finish.
func runDrafted(t *testing.T, m *paged.Manager, s *sched.Scheduler, reqs []*sched.Request, drafts map[[3]int]int, accept map[[2]int]int) {
	t.Helper()
	for step := 1; s.Busy(); step++ {
		if step > 50 {
			t.Fatal("50 steps and not done")
		}
		for _, r := range reqs {
			for j := range r.Samples() {
				if n := drafts[[3]int{step, int(r.ID()), j}]; n > 0 {
					if err := s.Propose(r, j, make([]int32, n)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			if r.Err() != nil {
				t.Fatalf("step %d: request %d, which Submit accepted, aborted: %v", st.Number, r.ID(), r.Err())
			}
		}
		tokens := make([]int32, st.Outputs)
		for i := range tokens {
			tokens[i] = int32(100 + i)
		}
		accepted := make([]int, len(st.Scheduled))
		for i, sc := range st.Scheduled {
			accepted[i] = len(sc.Drafts)
			if accept != nil {
				accepted[i] = min(len(sc.Drafts), accept[[2]int{step, int(sc.Request.ID())}])
			}
		}
		if err := s.UpdateSpeculative(tokens, accepted, nil); err != nil {
			t.Fatal(err)
		}
	}
	if s.Stats().SwappedOut == 0 {
		t.Fatal("no sample was swapped out: the test no longer reaches the case")
	}
	for _, r := range reqs {
		if r.State() != sched.Finished {
			t.Errorf("request %d: %v (%v), want finished", r.ID(), r.State(), r.Err())
		}
	}
}

// TestSwappedOutMidPromptComesBack: a prompt preempted by swap in the step
// that appended its last chunk gives that chunk back to the chunks to
// come, and computes it again after the swap-in in chunks that fit.
// Blocks of 4, a chunked-local group of 11 tokens (positions 0-10, then
// 11-21), 13 usable blocks of which the watermark keeps 6. Request 1's
// prompt of 13 tokens is computed to position 9 when step 3 appends its
// last chunk, positions 9 to 12, then swaps it out to make room for
// request 2's samples (the Priority policy's victim). That chunk reads
// every chunked-local block (positions 9 and 10 the first chunk's, 11 and
// 12 the second's): left in the manager, it came back as 4 blocks of full
// attention and 4 chunked-local ones, 8 of the 7 an admission may take,
// and the request was aborted: "request 1: seq0.1 can never be swapped
// in". Submit had accepted it: in smaller chunks it fits (its last token
// computed alone holds 6, paged.Manager.PrefillFloor).
func TestSwappedOutMidPromptComesBack(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 14, HostBlocks: 40, DisablePrefixCaching: true, DisableOffload: true, Watermark: 0.4,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 11}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(m, sched.Config{MaxRunning: 6, MaxBatchTokens: 8, ChunkedPrefill: true, Preemption: sched.Swap, MaxDrafts: 5, Policy: sched.Priority, AdmitFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	prompt := func(n int) []int32 {
		p := make([]int32, n)
		for i := range p {
			p[i] = int32(i + 1)
		}
		return p
	}
	var reqs []*sched.Request
	for _, o := range []struct{ p, n, max, prio int }{{13, 2, 1, 1}, {4, 2, 9, 0}, {15, 3, 1, 1}} {
		r, err := s.Submit(prompt(o.p), sched.Options{MaxTokens: o.max, N: o.n, Priority: o.prio})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	drafts := map[[3]int]int{{2, 2, 0}: 2, {3, 2, 0}: 1, {4, 2, 1}: 2}
	accept := map[[2]int]int{{2, 2}: 2, {4, 2}: 1}
	runDrafted(t, m, s, reqs, drafts, accept)
}
