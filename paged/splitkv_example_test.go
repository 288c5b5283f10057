package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// A decode batch of one long and two short sequences on 4 compute units:
// the long sequence is split, the short ones share a unit, and the merge map
// says which partial results make each sequence's output.
func ExampleSplitPlan() {
	blocksPerSeq := []int32{90, 3, 7}
	var plan paged.SplitPlan
	if err := plan.Build(blocksPerSeq, 4, 8); err != nil {
		fmt.Println(err)
		return
	}
	for _, it := range plan.Items {
		fmt.Printf("seq %d blocks [%d,%d) on unit %d\n", it.Seq, it.First, it.End, it.Unit)
	}
	for s := range blocksPerSeq {
		fmt.Printf("seq %d merges items %d..%d\n", s, plan.Merge[s], plan.Merge[s+1]-1)
	}
	fmt.Printf("busiest unit %d blocks, ideal %.0f\n", plan.MaxUnitBlocks, plan.Ideal())
	// Output:
	// seq 0 blocks [0,25) on unit 0
	// seq 0 blocks [25,50) on unit 1
	// seq 0 blocks [50,75) on unit 2
	// seq 0 blocks [75,90) on unit 3
	// seq 1 blocks [0,3) on unit 3
	// seq 2 blocks [0,7) on unit 3
	// seq 0 merges items 0..3
	// seq 1 merges items 4..4
	// seq 2 merges items 5..5
	// busiest unit 25 blocks, ideal 25
}

// A sliding-window sequence reads only its last blocks: BuildFrom plans
// blocks 12 to 15 of its 16, and the full-attention sequence beside it
// whole, so the four units share 4+12 blocks, not 16+12.
func ExampleSplitPlan_BuildFrom() {
	var plan paged.SplitPlan
	if err := plan.BuildFrom([]int32{12, 0}, []int32{16, 12}, 4, 2); err != nil {
		fmt.Println(err)
		return
	}
	for _, it := range plan.Items {
		fmt.Printf("seq %d blocks [%d,%d) on unit %d\n", it.Seq, it.First, it.End, it.Unit)
	}
	fmt.Println("total", plan.TotalBlocks)
	// Output:
	// seq 0 blocks [12,16) on unit 0
	// seq 1 blocks [0,4) on unit 1
	// seq 1 blocks [4,8) on unit 2
	// seq 1 blocks [8,12) on unit 3
	// total 16
}
