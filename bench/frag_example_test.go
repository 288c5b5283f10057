package bench_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/bench"
)

// Three requests on a budget of 16 token slots, maximum length 8: the
// contiguous models reserve ahead, the paged one (2-token blocks) grows.
func ExampleFrag() {
	reqs := []bench.Request{
		{InputTokens: 2, OutputTokens: 1},
		{InputTokens: 4, OutputTokens: 1},
		{InputTokens: 5, OutputTokens: 3},
	}
	cfg := bench.FragConfig{MaxLen: 8, KVTokens: 16}
	for _, m := range []bench.MemoryModel{bench.ModelMax, bench.ModelPow2, bench.ModelOracle, bench.ModelPaged} {
		r, err := bench.Frag(reqs, m, 2, cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%-6s tokens %4.1f%%  internal %4.1f%%  external %4.1f%%  running %.2f  steps %d\n",
			m, 100*r.TokenStates, 100*r.Internal, 100*r.External, r.AvgRunning, r.Steps)
	}
	// Output:
	// max    tokens 41.7%  internal 16.7%  external  0.0%  running 1.33  steps 6
	// pow2   tokens 41.7%  internal  8.3%  external  0.0%  running 1.33  steps 6
	// oracle tokens 41.7%  internal  0.0%  external 16.7%  running 1.33  steps 6
	// paged  tokens 62.5%  internal  3.1%  external  0.0%  running 2.00  steps 4
}

// A buddy allocator hands out exact sizes but needs aligned power-of-two
// holes: 4 free slots in two pieces cannot take a request of 4.
func ExampleBuddy() {
	b, _ := bench.NewBuddy(8)
	x, _ := b.Alloc(2)
	y, _ := b.Alloc(2)
	z, _ := b.Alloc(2)
	_ = b.Release(y)
	_, err := b.Alloc(4)
	fmt.Println(x, y, z, b.Free(), b.Largest(), err)
	// Output:
	// 0 2 4 4 2 bench: buddy: no free block large enough
}

// Parallel sampling shares the prompt's blocks between the samples.
func ExampleSharing() {
	reqs := []bench.Request{{InputTokens: 64, OutputTokens: 16}}
	r, err := bench.Sharing(reqs, bench.SharingParallel, 4, 16, bench.FragConfig{MaxLen: 128, KVTokens: 1024})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d samples: %.1f%% of blocks saved, %d steps\n", r.Width, 100*r.Saved, r.Steps)
	// Output:
	// 4 samples: 60.7% of blocks saved, 17 steps
}

// First fit takes the lowest hole that holds a request, with no alignment:
// after freeing the middle range, 2 slots fit at 2, and 3 fit only at the
// end.
func ExampleFirstFit() {
	f, _ := bench.NewFirstFit(10)
	x, _ := f.Alloc(2)
	y, _ := f.Alloc(3)
	z, _ := f.Alloc(2)
	_ = f.Release(y)
	a, _ := f.Alloc(2)
	b, _ := f.Alloc(3)
	fmt.Println(x, y, z, a, b, f.Free(), f.Largest())
	// Output: 0 2 5 2 7 1 1
}
