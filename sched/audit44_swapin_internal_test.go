package sched

import (
	"errors"
	"math/rand"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// audit44Sub is a request of audit44Run's workload: submitted at step
// at, a prompt of n tokens, out tokens to generate, of priority pri
// (one Submit refuses as never fitting is left out).
type audit44Sub struct{ at, n, out, pri int }

// audit44Run runs a workload under the Priority policy with swap, and
// after every step checks that a swapped-out head of the queue the step
// left out did not fit: its unsent tokens (a decode token its
// preemption's step dropped) exceed the budget left, or CanSwapIn or its
// next token's blocks (nextFits) refuse it. It returns how many steps
// left such a head out with exactly its unsent tokens of budget left.
func audit44Run(t *testing.T, mcfg paged.Config, cfg Config, subs []audit44Sub) (ties int) {
	t.Helper()
	m, err := paged.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy, cfg.Preemption = Priority, Swap
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok := int32(1000)
	for step := 0; step < 400; step++ {
		for i, x := range subs {
			if x.at == step {
				prompt := make([]int32, x.n)
				for k := range prompt {
					prompt[k] = int32(100*i + k)
				}
				if _, err := s.Submit(prompt, Options{MaxTokens: x.out, Priority: x.pri}); err != nil && !errors.Is(err, ErrNever) {
					t.Fatal(err)
				}
			}
		}
		if !s.Busy() {
			continue
		}
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		if s.waiting.len() > 0 && s.waiting.peek().where == inSwapped && st.Preempted == 0 {
			e := s.waiting.peek()
			unsent, left := e.length-e.computed, s.cfg.MaxBatchTokens-st.Tokens
			a, need, err := m.CanSwapIn(e.seq)
			if err != nil {
				t.Fatal(err)
			}
			fits := a == paged.AdmitOK && (len(s.running) == 0 || s.nextFits(e, need))
			if unsent > 0 && unsent <= left && fits && len(s.running)+s.reserved+1 <= s.cfg.MaxRunning {
				t.Fatalf("step %d: request %d swapped out at the head, %d unsent tokens, %d of the budget left and room: not swapped in",
					st.Number, e.req.id, unsent, left)
			}
			if unsent > 0 && unsent == left {
				ties++
			}
		}
		tokens := make([]int32, st.Outputs)
		for i := range tokens {
			tok++
			tokens[i] = tok
		}
		if err := s.Update(tokens); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if s.Busy() {
		t.Fatal("no progress in 400 steps")
	}
	return ties
}

// TestAudit44SwapInTakesTheLastTokensOfTheBudget: a sequence swapped out
// in a step that had already appended its decode token carries that
// token, unsent (length past computed), and swapIn gives it to the step
// that swaps it in; it must wait only if that token exceeds the budget
// left (mutation M204 made a tie wait too, leaving the token of budget
// unused). Blocks of 1, 17 of them, a budget of 3 tokens under Priority
// with swap: at step 13 two sequences decode and the third, swapped out
// with its decode token, is swapped in with the last token of the
// budget (the mutant runs a step of 2 tokens there). A sweep of 2,000
// drawn workloads of the same kind checks the same after every step.
func TestAudit44SwapInTakesTheLastTokensOfTheBudget(t *testing.T) {
	mcfg := paged.Config{BlockSize: 1, NumBlocks: 17, HostBlocks: 64, DisableOffload: true, DisablePrefixCaching: true}
	subs := []audit44Sub{{2, 5, 11, 2}, {0, 1, 12, 1}, {5, 5, 2, 1}, {6, 2, 6, 1}, {4, 1, 3, 1}, {2, 5, 10, 2}}
	if ties := audit44Run(t, mcfg, Config{ChunkedPrefill: true, MaxBatchTokens: 3}, subs); ties != 0 {
		t.Fatalf("%d ties left out", ties)
	}
	reached := 0
	for seed := int64(0); seed < 2000; seed++ {
		r := rand.New(rand.NewSource(seed))
		mcfg := paged.Config{BlockSize: []int{1, 2, 4}[r.Intn(3)], NumBlocks: 8 + r.Intn(40), HostBlocks: 64, DisableOffload: true,
			DisablePrefixCaching: r.Intn(2) == 0}
		cfg := Config{ChunkedPrefill: r.Intn(2) == 0, MaxBatchTokens: 2 + r.Intn(4)}
		subs := subs[:0:0]
		for range 3 + r.Intn(6) {
			subs = append(subs, audit44Sub{r.Intn(8), 1 + r.Intn(6), 1 + r.Intn(12), r.Intn(3)})
		}
		reached += audit44Run(t, mcfg, cfg, subs)
	}
	t.Logf("%d steps left a swapped-out head with exactly its unsent tokens of budget (each refused room)", reached)
}
