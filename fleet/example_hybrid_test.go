package fleet_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// A hybrid server (full attention and a 4-token sliding window) is
// scored the prefix it can hit once its layout is recorded: after some
// evictions it still holds the full-attention blocks of a prompt but not
// the window blocks a hit needs. The same events under a name without a
// layout score group 0's run.
func ExampleIndex_SetLayout() {
	cfg := paged.Config{BlockSize: 2, NumBlocks: 12, Events: 1024,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}}
	m, err := paged.New(cfg)
	if err != nil {
		panic(err)
	}
	x, err := fleet.New(fleet.Config{})
	if err != nil {
		panic(err)
	}
	if err := x.SetLayout("hybrid", fleet.LayoutOf(cfg)); err != nil {
		panic(err)
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, p := range [][]int32{prompt, {100, 101, 102, 103, 104}} {
		id, _, err := m.Create(p, nil)
		if err != nil {
			panic(err)
		}
		_ = m.Free(id) // its blocks stay cached, evictable
	}
	events := m.DrainEvents(nil)
	for _, name := range []string{"hybrid", "no-layout"} {
		if err := x.Apply(name, events); err != nil {
			panic(err)
		}
	}
	next := prompt[:7]
	hashes, _ := m.BlockHashes(nil, next, nil)
	scores, _ := x.Lookup(hashes[:3], nil) // the last token is always computed
	for _, s := range scores {
		fmt.Printf("%s: %d blocks\n", s.Name, s.Blocks)
	}
	id, _ := m.Add(next, nil)
	cached, _ := m.Admit(id)
	fmt.Println("the server hits", cached, "tokens")
	// Output:
	// hybrid: 0 blocks
	// no-layout: 3 blocks
	// the server hits 0 tokens
}
