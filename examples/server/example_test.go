package main

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// ExampleScheduler drives the step loop by hand: two requests share a
// system prompt, one samples four ways.
func ExampleScheduler() {
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64, BlockSize: 16}})
	if err != nil {
		panic(err)
	}
	system := make([]int32, 40)
	for i := range system {
		system[i] = int32(100 + i)
	}
	a, _ := s.Submit(Spec{Prompt: system, MaxTokens: 4})
	s.Step() // a's prompt is computed; its blocks enter the prefix cache
	b, _ := s.Submit(Spec{Prompt: append(system, 1, 2, 3), MaxTokens: 4, N: 4})
	for s.Step() {
	}
	for name, t := range map[string]Ticket{"a": a, "b": b} {
		st, _ := s.Status(t.ID)
		fmt.Printf("request %s: %s, %d cached prompt tokens, generated %v\n", name, st.State, st.CachedTokens, st.Generated)
	}
	sn := s.Snapshot()
	fmt.Printf("steps %d, tokens %d, forks %d, copies %d, blocks used %d\n",
		sn.Steps, sn.Tokens.Generated, sn.Forks, sn.Copies, sn.Blocks.Used)
	// Unordered output:
	// request a: finished, 0 cached prompt tokens, generated [4]
	// request b: finished, 32 cached prompt tokens, generated [4 4 4 4]
	// steps 5, tokens 20, forks 3, copies 3, blocks used 0
}
