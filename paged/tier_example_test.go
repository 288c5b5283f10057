package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

func ExampleManager_SwapOut() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 8, DisablePrefixCaching: true})
	id, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil) // 2 device blocks
	_ = m.SwapOut(id)                                    // preempt by swap: the KV goes to the host
	fmt.Println("out:", m.TakeSwaps(nil))
	other, _, _ := m.Create(make([]int32, 16), nil) // the device is free for others
	_ = m.Free(other)
	a, need, _ := m.CanSwapIn(id)
	fmt.Println("swap-in:", a, need, "blocks")
	_ = m.SwapIn(id)
	fmt.Println("in:", m.TakeSwaps(nil))
	table, _ := m.Table(id)
	fmt.Println("table:", table)
	// Output:
	// out: [{1 0 swap-out 0} {2 1 swap-out 0}]
	// swap-in: ok 2 blocks
	// in: [{0 1 swap-in 0} {1 2 swap-in 0}]
	// table: [1 2]
}

func ExampleManager_offload() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 3, HostBlocks: 4})
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	a, _, _ := m.Create(prompt[:5], nil)
	_ = m.Free(a) // block [1 2 3 4] stays cached on the device
	b, _, _ := m.Create([]int32{7, 7, 7, 7, 7}, nil)
	_ = m.Free(b)                         // evicting it offloaded it to the host
	_, cached, _ := m.Create(prompt, nil) // onboards it (and offloads b's block)
	st := m.Stats().Tiers
	fmt.Println("cached:", cached, "offloads:", st.Offloads, "onboards:", st.Onboards)
	// Output:
	// cached: 4 offloads: 2 onboards: 1
}

func ExamplePlacement() {
	// Four devices of 8 usable blocks: one sequence over all four holds
	// four times what one device holds.
	p, _ := paged.NewPlacement(paged.PlacementConfig{
		Device:  paged.Config{BlockSize: 4, NumBlocks: 9},
		Devices: 4,
		Layout:  paged.RoundRobin,
	})
	id, _ := p.Create(make([]int32, 128), 4)
	var b paged.PlacementBatch
	_ = p.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}})
	for d, sb := range b.Devices {
		fmt.Println("device", d, "holds", sb.SeqLens[0], "tokens; new-token slots", sb.Slots)
	}
	// Output:
	// device 0 holds 32 tokens; new-token slots []
	// device 1 holds 32 tokens; new-token slots []
	// device 2 holds 32 tokens; new-token slots []
	// device 3 holds 32 tokens; new-token slots [35]
}
