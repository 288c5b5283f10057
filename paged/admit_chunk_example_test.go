package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// A long prompt prefilled in chunks of 8 tokens: the manager holds only
// the cached prefix and the chunk the step computes, and hands back the
// rest, which the caller appends as the steps go.
func ExampleManager_AdmitChunk() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	prompt := make([]int32, 20)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	id, _ := m.Add(prompt, nil)
	cached, rest, _ := m.AdmitChunk(id, 8, nil)
	n, _ := m.Len(id)
	fmt.Println("cached", cached, "admitted", n, "rest", len(rest), "blocks", m.Stats().UsedBlocks)
	for len(rest) > 0 { // one chunk a step, after the step computed the last
		k := min(8, len(rest))
		_ = m.Append(id, rest[:k]...)
		rest = rest[k:]
	}
	n, _ = m.Len(id)
	fmt.Println("admitted", n, "blocks", m.Stats().UsedBlocks)
	// Output:
	// cached 0 admitted 8 rest 12 blocks 2
	// admitted 20 blocks 5
}

// A sequence whose newest token was given to the manager but whose step
// was dropped (the scheduler preempted it): Uncompute keeps the block
// that token completed out of the prefix cache.
func ExampleManager_Uncompute() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	id, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6, 7}, nil)
	_ = m.Append(id, 8)    // fills block 1; the step never runs
	_ = m.Uncompute(id, 7) // position 7 has no KV
	_ = m.Preempt(id)      // released: block 0 stays cached, block 1 not
	fmt.Println("cached blocks", m.Stats().CachedBlocks)
	// Output:
	// cached blocks 1
}

// The dry run of a chunked admission: a 40-token prompt does not fit
// beside a running sequence, but its first 8-token chunk does.
func ExampleManager_CanAdmitChunk() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	running, _, _ := m.Create(make([]int32, 40), nil) // holds 10 blocks
	prompt := make([]int32, 40)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	id, _ := m.Add(prompt, nil)
	whole, _ := m.CanAdmit(id)
	chunk, _ := m.CanAdmitChunk(id, 8)
	fmt.Println("whole prompt", whole, "first chunk", chunk)
	_ = m.Free(running)
	whole, _ = m.CanAdmit(id)
	fmt.Println("whole prompt after the other ends", whole)
	// Output:
	// whole prompt later first chunk ok
	// whole prompt after the other ends ok
}
