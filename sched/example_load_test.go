package sched_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// A router in front of several servers reads each scheduler's Load: the
// sequences there and the prompt tokens still to compute, which a new
// request would wait for.
func ExampleScheduler_Load() {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64})
	if err != nil {
		panic(err)
	}
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 64, ChunkedPrefill: true})
	if err != nil {
		panic(err)
	}
	for i := range 2 {
		prompt := make([]int32, 100)
		for j := range prompt {
			prompt[j] = int32(1000*i + j)
		}
		if _, err := s.Submit(prompt, sched.Options{MaxTokens: 10}); err != nil {
			panic(err)
		}
	}
	show := func(when string) {
		l := s.Load()
		fmt.Printf("%s: %d running, %d waiting, %d prompt tokens to compute, at most %d to decode\n",
			when, l.Running, l.Waiting, l.PrefillTokens, l.DecodeTokens)
	}
	show("submitted")
	st, err := s.Schedule() // the first prompt's first 64 tokens
	if err != nil {
		panic(err)
	}
	show("first step")
	if err := s.Update(make([]int32, st.Outputs)); err != nil {
		panic(err)
	}
	// Output:
	// submitted: 0 running, 2 waiting, 200 prompt tokens to compute, at most 20 to decode
	// first step: 1 running, 1 waiting, 136 prompt tokens to compute, at most 20 to decode
}
