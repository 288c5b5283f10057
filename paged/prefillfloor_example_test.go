package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// A scheduler about to queue a request of four parallel samples asks
// whether its samples can ever fork: in the step that computes its last
// prompt token, the prompt holds at least PrefillFloor blocks, and each
// other sample's fork takes the state pages at once.
func ExampleManager_PrefillFloor() {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 200, Groups: []paged.Group{
		{Kind: paged.FullAttention},
		{Kind: paged.SlidingWindow, Window: 128},
		{Kind: paged.State, Pages: 8},
	}})
	if err != nil {
		panic(err)
	}
	// A 1,000-token prompt: 63 blocks of full attention, 8 state pages
	// and the 9 window blocks its last step reads.
	floor, err := m.PrefillFloor(1000, nil, true)
	if err != nil {
		panic(err)
	}
	for _, samples := range []int{4, 16} {
		need := floor + (samples-1)*8
		fmt.Printf("%d samples: %d blocks of %d: can fork %v\n", samples, need, m.Stats().UsableBlocks, need <= m.Stats().UsableBlocks)
	}
	// Output:
	// 4 samples: 104 blocks of 199: can fork true
	// 16 samples: 200 blocks of 199: can fork false
}
