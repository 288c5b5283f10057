package paged_test

import (
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

func Example() {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 8})
	if err != nil {
		panic(err)
	}
	id, cached, _ := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
	_ = m.Append(id, 7) // one decode step
	table, _ := m.Table(id)
	slot, _ := m.Slot(id, 6)
	fmt.Println("cached:", cached, "table:", table, "slot of token 6:", slot)
	// Output:
	// cached: 0 table: [1 2] slot of token 6: 10
}

func ExampleManager_Fork() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 8})
	parent, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
	child, _ := m.Fork(parent) // parallel sampling: share everything
	_ = m.Append(child, 42)    // the shared last block is copied first
	pt, _ := m.Table(parent)
	ct, _ := m.Table(child)
	fmt.Println("parent", pt, "child", ct, "copies", m.TakeCopies(nil))
	// Output:
	// parent [1 2] child [1 3] copies [{2 3}]
}

func ExampleManager_Admit() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 4}) // 3 usable blocks
	system := []int32{9, 9, 9, 9, 8, 8, 8, 8}
	a, _, _ := m.Create(append(system, 1), nil) // 3 blocks
	b, _ := m.Add(append(system, 2), nil)       // waiting
	verdict, _ := m.CanAdmit(b)
	fmt.Println("while A runs:", verdict)
	_ = m.Free(a) // A's full blocks stay cached
	verdict, _ = m.CanAdmit(b)
	cached, _ := m.Admit(b)
	fmt.Println("after A:", verdict, "cached tokens:", cached)
	_, err := m.Add(make([]int32, 13), nil)
	fmt.Println(errors.Is(err, paged.ErrNever))
	// Output:
	// while A runs: later
	// after A: ok cached tokens: 8
	// true
}

// A scheduler with a token budget admits a prompt whose uncached tokens
// fit what is left of the step's budget, though the whole prompt does not.
func ExampleManager_CanAdmitCached() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	system := []int32{9, 9, 9, 9, 8, 8, 8, 8}
	a, _, _ := m.Create(append(system, 1), nil)
	_ = m.Free(a) // its two full blocks stay cached
	b, _ := m.Add(append(system, 2, 3, 4), nil)
	left := 5 // of the step's budget
	verdict, cached, _ := m.CanAdmitCached(b)
	n, _ := m.Len(b)
	fmt.Println(verdict, "cached:", cached, "to compute:", n-cached, "fits:", n-cached <= left)
	got, _ := m.Admit(b)
	fmt.Println("Admit cached:", got)
	// Output:
	// ok cached: 8 to compute: 3 fits: true
	// Admit cached: 8
}

func ExampleManager_BuildBatch() {
	m, _ := paged.New(paged.Config{BlockSize: 2, NumBlocks: 16})
	a, _, _ := m.Create([]int32{1, 2, 3}, nil)
	b, _, _ := m.Create([]int32{4}, nil)
	batch := paged.Batch{Stride: 4} // reuse one Batch every step
	_ = m.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 3}, {ID: b, NewTokens: 1}})
	fmt.Println("tables", batch.Tables)
	fmt.Println("lens", batch.SeqLens, "slots", batch.Slots)
	// Output:
	// tables [1 2 0 0 3 0 0 0]
	// lens [3 1] slots [2 3 4 6]
}

func ExampleManager_DrainEvents() {
	m, _ := paged.New(paged.Config{BlockSize: 2, NumBlocks: 3, Events: 16})
	a, _, _ := m.Create([]int32{1, 2, 3}, nil)
	_ = m.Free(a)
	b, _, _ := m.Create([]int32{7, 8, 9, 10}, nil) // needs both blocks: evicts
	_ = b
	for _, e := range m.DrainEvents(nil) {
		fmt.Println(e.Seq, e.Kind, len(e.Hashes), e.Medium)
	}
	// Output:
	// 1 BlockStored 1 GPU
	// 2 BlockRemoved 1 GPU
	// 3 BlockStored 2 GPU
}
