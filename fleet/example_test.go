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

// A vLLM engine's ZMQ messages carry a batch sequence number and a msgpack
// KVEventBatch; VLLMStream turns them into events for the same index.
func ExampleVLLMStream() {
	// [ts, [["BlockStored", [1, 2], nil, [1, 2, 3, 4], 2, nil, "GPU"]], 0]
	frame := []byte{0x93, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x91, 0x97,
		0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd',
		0x92, 0x01, 0x02, 0xc0, 0x94, 0x01, 0x02, 0x03, 0x04, 0x02, 0xc0,
		0xa3, 'G', 'P', 'U', 0x00}
	index, err := fleet.New(fleet.Config{})
	if err != nil {
		panic(err)
	}
	var stream fleet.VLLMStream
	events, err := stream.Decode(0, frame)
	if err != nil {
		panic(err)
	}
	if err := index.Apply("vllm-pod-0", events); err != nil {
		panic(err)
	}
	request := []paged.Hash{fleet.HashFromVLLMInt(1), fleet.HashFromVLLMInt(2)}
	scores, err := index.Lookup(request, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(events[0].Kind, len(events[0].Hashes), "blocks")
	fmt.Println(scores[0].Name, scores[0].Blocks, "leading blocks, partial:", scores[0].Partial)
	// Output:
	// BlockStored 2 blocks
	// vllm-pod-0 2 leading blocks, partial: false
}
