package fleet_test

import (
	"encoding/binary"
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// blockHash names a block by a number, standing in for a real chained
// hash that every server and the router compute alike.
func blockHash(n uint64) paged.Hash {
	var h paged.Hash
	binary.LittleEndian.PutUint64(h[:], n)
	return h
}

// Two servers feed their managers' KV events into one index; a request
// whose prefix one of them holds is routed there.
func Example() {
	index, err := fleet.New(fleet.Config{Model: "llama-3-8b"})
	if err != nil {
		panic(err)
	}
	names := []string{"gpu-a", "gpu-b"}
	servers := map[string]*paged.Manager{}
	for _, name := range names {
		m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64, Events: 256})
		if err != nil {
			panic(err)
		}
		servers[name] = m
	}
	system := []paged.Hash{blockHash(1), blockHash(2), blockHash(3)}
	// gpu-a serves a request that starts with a 3-block system prompt.
	a := servers["gpu-a"]
	id, _, err := a.CreateFromHashes(system, 3*16+5, nil)
	if err != nil {
		panic(err)
	}
	if err := a.Free(id); err != nil { // its blocks stay cached
		panic(err)
	}
	for _, name := range names { // in a real router, one goroutine per server stream
		if err := index.Apply(name, servers[name].DrainEvents(nil)); err != nil {
			panic(err)
		}
	}

	// A new request shares the first two blocks.
	request := []paged.Hash{blockHash(1), blockHash(2), blockHash(9)}
	scores, err := index.Lookup(request, nil)
	if err != nil {
		panic(err)
	}
	cands := make([]fleet.Candidate, len(scores))
	for i, s := range scores {
		cands[i] = fleet.Candidate{Score: s, Load: 0}
		fmt.Printf("%s: %d leading blocks\n", s.Name, s.Blocks)
	}
	fmt.Println("route to", scores[fleet.PrefixAware{}.Route(cands)].Name)
	// Output:
	// gpu-a: 2 leading blocks
	// gpu-b: 0 leading blocks
	// route to gpu-a
}
