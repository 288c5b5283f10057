package llmd_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet/llmd"
	"github.com/pagedkv/pagedkv/paged"
)

// A router and a paged server agree on block keys with llm-d.
func Example() {
	p, err := llmd.New(llmd.Config{BlockSize: 4, HashSeed: "fleet", Model: "llama-3-8b"})
	if err != nil {
		panic(err)
	}
	prompt := []int32{101, 2023, 2003, 1037, 3231, 1012, 102, 7, 8}
	keys := p.AppendKeys(nil, 0, prompt) // what an llm-d router computes

	m, err := paged.New(paged.Config{NumBlocks: 8, BlockSize: 4, Hasher: p.Hasher()})
	if err != nil {
		panic(err)
	}
	hashes, err := m.BlockHashes(nil, prompt, nil) // what the server caches under
	if err != nil {
		panic(err)
	}
	for i, k := range keys {
		fmt.Println(i, hashes[i] == llmd.HashOf(k))
	}
	// Output:
	// 0 true
	// 1 true
}

// The keys a vLLM engine with prefix_caching_hash_algo sha256_cbor and
// PYTHONHASHSEED=0 publishes for a prompt, as llm-d's sha256_cbor token
// processor computes them.
func ExampleSHA256CBOR() {
	s, err := llmd.NewSHA256CBOR(llmd.Config{BlockSize: 16, HashSeed: "0"})
	if err != nil {
		panic(err)
	}
	prompt := make([]int32, 20)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	fmt.Println(s.AppendKeys(nil, prompt)) // one full block; 4 tokens left over
	// Output:
	// [3236607068019569386]
}
