package attention_test

import (
	"fmt"
	"math"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// A sequence's KV is written at the slots the manager hands out, a fork
// shares its blocks and copies on write, and split-KV paged attention over
// the block tables matches dense attention over each sequence's own KV.
func Example() {
	sh := attention.Shape{BlockSize: 4, KVHeads: 1, QueryHeads: 2, HeadDim: 2}
	m, _ := paged.New(paged.Config{BlockSize: sh.BlockSize, NumBlocks: 16})
	store, _ := attention.NewStore(sh, 16, nil, nil)

	// The KV of token t is a simple function of t here.
	kvOf := func(t int) []float32 { return []float32{float32(t%3) - 1, float32(t) / 10} }
	parent, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
	for pos := range 6 {
		slot, _ := m.Slot(parent, pos)
		_ = store.Write(slot, kvOf(pos), kvOf(pos))
	}
	child, _ := m.Fork(parent)
	_ = m.Append(child, 7) // the shared last block is copied first
	var b paged.Batch
	_ = m.BuildBatch(&b, []paged.Scheduled{{ID: parent, NewTokens: 1}, {ID: child, NewTokens: 1}})
	_ = store.Copy(b.Copies)
	slot, _ := m.Slot(child, 6)
	_ = store.Write(slot, kvOf(6), kvOf(6))
	fmt.Println("copies:", len(b.Copies))

	var plan paged.SplitPlan
	_ = plan.Build(attention.BlocksPerSeq(nil, &b, sh.BlockSize), 4, 1)
	q := []float32{1, 0, 0, 1, 1, 0, 0, 1}
	out := make([]float32, len(q))
	_ = attention.New(store).Decode(out, q, &b, &plan)

	var k []float32
	for t := range 7 {
		k = append(k, kvOf(t)...)
	}
	want := make([]float32, 4)
	for i, n := range b.SeqLens {
		_ = attention.Dense(want, q[i*4:(i+1)*4], k, k, int(n), sh)
		diff := 0.0
		for j := range want {
			diff = max(diff, math.Abs(float64(want[j]-out[i*4+j])))
		}
		fmt.Printf("sequence of %d tokens: %d partials, paged == dense: %v\n", n, plan.Merge[i+1]-plan.Merge[i], diff < 1e-6)
	}
	// Output:
	// copies: 1
	// sequence of 6 tokens: 2 partials, paged == dense: true
	// sequence of 7 tokens: 2 partials, paged == dense: true
}
