package paged_test

import (
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

func ExampleManager_SwapOut() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 8, DisablePrefixCaching: true})
	id, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil) // 2 device blocks
	// Its prompt is computed by the step being built: nothing to swap yet.
	fmt.Println("same step:", errors.Is(m.SwapOut(id), paged.ErrUncomputed))
	var b paged.Batch
	_ = m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 6}}) // the step runs
	_ = m.SwapOut(id)                                               // preempt by swap: the KV goes to the host
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
	// same step: true
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

// ExampleManager_TierStatsGroup: a model with sliding-window layers keeps
// its prefix cache beyond the device. A conversation's blocks, evicted by
// other traffic, move to the host tier group by group and come back for
// the next turn: all four full-attention blocks of the 16 tokens hit, and
// the window group's last two, which is all a window of 8 tokens reads.
// The window blocks of the other request no hit can use were given up
// first (retention.go) and wait on the host too.
func ExampleManager_TierStatsGroup() {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 25, HostBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}}})
	if err != nil {
		panic(err)
	}
	tokens := func(from, n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(from + i)
		}
		return out
	}
	turn, _, _ := m.Create(tokens(1, 17), nil)
	_ = m.Free(turn)
	other, _, _ := m.Create(tokens(1000, 48), nil) // the whole pool
	_ = m.Free(other)
	next, cached, _ := m.Create(append(tokens(1, 17), 99), nil)
	fmt.Println("cached tokens:", cached)
	onboards := map[int]int{}
	for _, s := range m.TakeSwaps(nil) {
		if s.Kind == paged.Onboard {
			onboards[s.Group]++
		}
	}
	fmt.Println("onboard directives per group:", onboards)
	for g := range 2 {
		st, _ := m.TierStatsGroup(g)
		fmt.Printf("group %d: %d offloaded, %d onboarded, %d still on the host\n", g, st.Offloads, st.Onboards, st.HostCached)
	}
	table, _ := m.TableGroup(next, 1)
	fmt.Println("window table:", table)
	// Output:
	// cached tokens: 16
	// onboard directives per group: map[0:4 1:2]
	// group 0: 4 offloaded, 4 onboarded, 0 still on the host
	// group 1: 12 offloaded, 2 onboarded, 10 still on the host
	// window table: [0 0 6 7 23]
}
