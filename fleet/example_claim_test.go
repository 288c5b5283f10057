package fleet_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// A server with a full-attention and a state group holds the first 4
// blocks of a family's prompts in group 0 but no checkpoint: it can hit
// none of them, and its Affinity says it holds 4. A request of 6 blocks
// routed there will take a checkpoint at its branch point, after block
// 4, and none at its own end: Claim records that, so the next request
// of the family is scored the 4 blocks it will hit there, while
// Affinity counts the 6 that group 0 will hold.
func ExamplePending_Claim() {
	layout, _ := fleet.ParseLayout("b16 full state")
	index, _ := fleet.New(fleet.Config{})
	_ = index.SetLayout("a", layout)
	pending, _ := fleet.NewPending(fleet.PendingConfig{})
	prompt := []paged.Hash{{1}, {2}, {3}, {4}, {5}, {6}}
	_ = index.Apply("a", []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: prompt[:4], BlockSize: 16}})

	scores, _ := index.Lookup(prompt, nil)
	pending.Extend(prompt, scores)
	s := scores[0]
	fmt.Printf("first: hit %d, affinity %d\n", s.Blocks, s.Affinity)
	_ = pending.Claim(s.Server, prompt, s, layout)

	scores, _ = index.Lookup(prompt, nil)
	pending.Extend(prompt, scores)
	s = scores[0]
	fmt.Printf("next: hit %d (%d pending), affinity %d\n", s.Blocks, s.Pending, s.Affinity)
	// Output:
	// first: hit 0, affinity 4
	// next: hit 4 (4 pending), affinity 6
}
