package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// ExampleRetention: a system prompt cached by a request at level 0 ("give
// up first") and reused by one at level 90 for 10 ticks is kept at 90 for
// those ticks, ahead of default content; then it is back at 0.
func ExampleRetention() {
	m, _ := paged.New(paged.Config{BlockSize: 2, NumBlocks: 7, Policy: eviction.NewPriority})
	sys := []int32{1, 2, 3, 4} // two blocks
	serve := func(prompt []int32, r *paged.Retention) {
		id, _, err := m.Create(prompt, &paged.SeqOptions{Retention: r})
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = m.Free(id)
	}
	cached := func() int { // the tokens of sys a request hits
		id, _ := m.Add(append(sys, 0), nil)
		n, _ := m.Admit(id)
		_ = m.Free(id)
		return n
	}
	serve(append(sys, 9), &paged.Retention{Priority: 0})
	serve(append(sys, 8), &paged.Retention{Priority: 90, Ticks: 10})
	fmt.Println("retained hits:", m.Stats().RetainedHits)
	serve([]int32{5, 6, 7, 8, 0}, nil) // default content: two cached blocks
	serve([]int32{7, 7, 7, 7, 0}, nil) // one eviction: default content goes
	fmt.Println("system prompt tokens cached at tick 0:", cached())
	m.Advance(10) // the reuse's promise lapses: back to level 0
	serve([]int32{6, 6, 6, 6, 0}, nil)
	fmt.Println("system prompt tokens cached at tick 10:", cached())
	// Output:
	// retained hits: 2
	// system prompt tokens cached at tick 0: 4
	// system prompt tokens cached at tick 10: 0
}
