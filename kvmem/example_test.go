package kvmem_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/kvmem"
)

// ExamplePlan plans Kimi K2's KV cache on eight 141 GB GPUs with
// FP8 weights and 5% of memory reserved: the MLA latent is small, but every
// TP rank holds all of it, and a trillion resident parameters leave little
// room.
func ExamplePlan() {
	model, err := kvmem.LookupModel("Kimi-K2")
	if err != nil {
		panic(err)
	}
	weights, err := model.WeightBytes(kvmem.FP8E4M3)
	if err != nil {
		panic(err)
	}
	d := kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: 0.05}
	for _, name := range []string{"bf16", "fp8_e4m3", "q4_0"} {
		kv, err := kvmem.ParseType(name)
		if err != nil {
			panic(err)
		}
		c, err := kvmem.Plan(model.Spec(kv, kvmem.Type{}), weights, d)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-8s %6d B/token  %6d tokens  %d x 256K  longest %d\n",
			kv, c.TokenBytes, c.Tokens(), c.MaxSequences(262144), c.MaxContext(1))
	}
	// Output:
	// bf16      70272 B/token   80368 tokens  0 x 256K  longest 80368
	// fp8_e4m3  35136 B/token  160752 tokens  0 x 256K  longest 160752
	// q4_0      19764 B/token  285792 tokens  1 x 256K  longest 285792
}

// ExampleSpec_PoolBlocks sizes a manager's pool for Llama-3.1-8B with FP8
// KV in a 10 GB budget: 9,536 blocks of 16 tokens, block 0 being the null
// block. The two numbers are a paged.Config's BlockSize and NumBlocks.
func ExampleSpec_PoolBlocks() {
	model, err := kvmem.LookupModel("Llama-3.1-8B")
	if err != nil {
		panic(err)
	}
	spec := model.Spec(kvmem.FP8E4M3, kvmem.Type{})
	perToken, _ := spec.TokenBytes()
	numBlocks, err := spec.PoolBlocks(10e9, 16)
	if err != nil {
		panic(err)
	}
	fmt.Println(perToken, numBlocks)
	// Output:
	// 65536 9536
}

// ExampleSpec_SequenceBytes describes Gemma 3 27B's layers, ten full
// attention and 52 with a 1,024-token window, and compares the bytes one
// 128K-token sequence takes with what counting every layer as full
// attention would say.
func ExampleSpec_SequenceBytes() {
	hybrid := kvmem.Spec{KVHeads: 16, HeadDim: 128, Key: kvmem.BF16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 10},
		{Kind: kvmem.Window, Layers: 52, Window: 1024},
	}}
	allFull := kvmem.Spec{Layers: 62, KVHeads: 16, HeadDim: 128, Key: kvmem.BF16}
	for _, s := range []kvmem.Spec{allFull, hybrid} {
		b, err := s.SequenceBytes(131072, 16)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%.1f GB\n", float64(b)/1e9)
	}
	// Output:
	// 66.6 GB
	// 11.2 GB
}

// ExampleLookupModel plans the hybrid presets at a 128K context on one
// 141 GB GPU with FP8 weights and KV: sequences that fit, and the KV one
// sequence holds.
func ExampleLookupModel() {
	for _, name := range []string{"gpt-oss-120b", "Gemma-3-27B", "Llama-4-Scout", "Qwen3-Next-80B-A3B"} {
		m, err := kvmem.LookupModel(name)
		if err != nil {
			panic(err)
		}
		w, err := m.WeightBytes(kvmem.FP8E4M3)
		if err != nil {
			panic(err)
		}
		c, err := kvmem.Plan(m.Spec(kvmem.FP8E4M3, kvmem.Type{}), w, kvmem.Deployment{GPUMemory: 141e9, Reserve: 0.05})
		if err != nil {
			fmt.Printf("%-19s %v\n", m.Name, err)
			continue
		}
		fmt.Printf("%-19s %3d x 128K, %.2f GB each\n", m.Name, c.MaxSequences(131072), float64(c.SequenceBytes(131072))/1e9)
	}
	// Output:
	// gpt-oss-120b          7 x 128K, 2.42 GB each
	// Gemma-3-27B          18 x 128K, 5.81 GB each
	// Llama-4-Scout         6 x 128K, 3.83 GB each
	// Qwen3-Next-80B-A3B   31 x 128K, 1.73 GB each
}

// ExampleDeployment_prefillChunk plans Gemma 3 27B at a 128K context on
// one 141 GB GPU for prompts prefilled a token at a time (the decode
// peak), in 8,192-token chunks, and whole: each step's tokens and the
// window before them stay in every window layer until the step is
// computed, so larger chunks fit fewer sequences. It plans for a manager
// that pins nothing for hybrid hits (vLLM's; NoHybridPins): paged's
// default mode also pins each sequence's window before its branch point,
// 6 sequences at the decode peak.
func ExampleDeployment_prefillChunk() {
	model, err := kvmem.LookupModel("Gemma-3-27B")
	if err != nil {
		panic(err)
	}
	weights, err := model.WeightBytes(kvmem.BF16)
	if err != nil {
		panic(err)
	}
	for _, chunk := range []int{1, 8192, 131072} {
		d := kvmem.Deployment{GPUMemory: 141e9, Reserve: 0.05, PrefillChunk: chunk, NoHybridPins: true}
		c, err := kvmem.Plan(model.Spec(kvmem.BF16, kvmem.Type{}), weights, d)
		if err != nil {
			panic(err)
		}
		fmt.Printf("chunk %6d: %.1f GB a sequence, %d sequences\n", chunk, float64(c.SequenceBytes(131072))/1e9, c.MaxSequences(131072))
	}
	// Output:
	// chunk      1: 11.2 GB a sequence, 7 sequences
	// chunk   8192: 14.7 GB a sequence, 5 sequences
	// chunk 131072: 66.6 GB a sequence, 1 sequences
}
