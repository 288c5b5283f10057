package allocator_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

func Example() {
	// Eight blocks; block 0 is reserved (for example as a null block).
	p, err := allocator.New(allocator.Config{NumBlocks: 8, Reserved: 1})
	if err != nil {
		panic(err)
	}
	blocks, _ := p.AppendAlloc(nil, 3)
	fmt.Println("allocated", blocks, "free", p.Free())

	p.Ref(blocks[0]) // a second sequence shares the first block
	fmt.Println("freed?", p.Release(blocks[0]), "count", p.RefCount(blocks[0]))

	// Keep the last block's content as a cache entry instead of freeing it.
	p.ReleaseToCache(blocks[2])
	fmt.Printf("%+v\n", p.Stats())
	// Output:
	// allocated [1 2 3] free 4
	// freed? false count 1
	// {Total:8 Reserved:1 Free:4 Cached:1 Held:2 Allocs:3 Releases:1}
}
