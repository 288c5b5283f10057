package eviction_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

func ExampleByName() {
	f, err := eviction.ByName("lru")
	if err != nil {
		panic(err)
	}
	p := f(8) // block IDs 0..7
	// Blocks 5, 2 and 7 are released, in that order.
	p.Insert(5)
	p.Insert(2)
	p.Insert(7)
	// A prefix hit claims block 5 back.
	p.Remove(5)
	id, _ := p.Victim()
	fmt.Println(id, p.Len())
	// Output: 2 1
}

func ExampleNames() {
	fmt.Println(eviction.Names())
	// Output: [lru fifo lfu clock sieve s3fifo arc slru priority leaflru chain]
}

func ExampleNewLFU() {
	p := eviction.NewLFU(4)
	hits := p.(eviction.Accessor)
	for id := range allocator.BlockID(4) {
		p.Insert(id)
	}
	// Block 0 is hit twice, block 1 once; each hit claims the block,
	// which is released again later.
	for _, id := range []allocator.BlockID{0, 0, 1} {
		hits.Access(id)
		p.Remove(id)
		p.Insert(id)
	}
	for p.Len() > 0 {
		id, _ := p.Victim()
		fmt.Print(id, " ")
	}
	fmt.Println()
	// Output: 2 3 1 0
}

func ExampleNewPriority() {
	p := eviction.NewPriority(3)
	hint := p.(eviction.Hinter)
	// A system prompt's block at level 90 until tick 100, a default block,
	// and a block its request marked as disposable.
	hint.Hint(0, eviction.Hint{Parent: allocator.NoBlock, Priority: 90, Expires: 100})
	hint.Hint(1, eviction.Hint{Parent: allocator.NoBlock, Priority: eviction.DefaultPriority})
	hint.Hint(2, eviction.Hint{Parent: allocator.NoBlock, Priority: 0})
	p.Insert(0)
	p.Insert(1)
	p.Insert(2)
	id, _ := p.Victim()
	fmt.Println("first:", id)
	// At tick 100 block 0 reverts to the default level, as the most
	// recently released block there.
	p.(eviction.Ticker).Advance(100)
	id, _ = p.Victim()
	fmt.Println("then:", id)
	// Output:
	// first: 2
	// then: 1
}
