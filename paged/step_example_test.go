package paged_test

import (
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// A decode step in one call: each running sequence takes the token the
// model sampled for it, and the step's batch comes back filled. When the
// pool runs out, the entries before the refused one have their tokens:
// the scheduler preempts a sequence and finishes the step.
func ExampleManager_DecodeStep() {
	m, _ := paged.New(paged.Config{BlockSize: 2, NumBlocks: 7}) // 6 usable blocks
	a, _, _ := m.Create([]int32{1, 2, 3}, nil)                  // 2 blocks each,
	b, _, _ := m.Create([]int32{4, 5, 6}, nil)                  // the last half full
	c, _, _ := m.Create([]int32{7}, nil)                        // 1 block
	sched := []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: b, NewTokens: 1}, {ID: c, NewTokens: 1}}
	var batch paged.Batch // reuse one Batch every step
	n, err := m.DecodeStep(&batch, sched, []int32{10, 20, 30})
	fmt.Println(n, err, "lens", batch.SeqLens, "slots", batch.Slots)

	// Every sequence now needs a new block, and one is free.
	tokens := []int32{11, 21, 31}
	n, err = m.DecodeStep(&batch, sched, tokens)
	fmt.Println(n, errors.Is(err, paged.ErrNoSpace))
	_ = m.Preempt(c) // the last in priority waits and frees its block
	_, _ = m.AppendStep(sched[n:2], tokens[n:2])
	_ = m.BuildBatch(&batch, sched[:2])
	fmt.Println("lens", batch.SeqLens, "slots", batch.Slots)
	// Output:
	// 3 <nil> lens [4 4 2] slots [5 9 11]
	// 1 true
	// lens [5 5] slots [12 10]
}
