package fleet_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
)

// The cost-aware router weighs what a server's cache saves against the
// work queued there, both in tokens of prefill: a hit of 4 blocks (64
// tokens) is worth a backlog of up to 64 tokens, not more.
func ExampleCostAware() {
	router := fleet.CostAware{BlockSize: 16}
	cands := []fleet.Candidate{
		{Score: fleet.Score{Name: "warm", Blocks: 4, Device: 4}, Work: 40},
		{Score: fleet.Score{Name: "idle"}, Work: 0},
	}
	fmt.Println("backlog 40:", cands[router.Route(cands)].Name)
	cands[0].Work = 100
	fmt.Println("backlog 100:", cands[router.Route(cands)].Name)
	// Output:
	// backlog 40: warm
	// backlog 100: idle
}
