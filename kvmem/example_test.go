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
