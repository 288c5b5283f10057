package fleet_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
)

// The cost-aware router weighs what a server's cache saves against the
// prompt tokens queued there and the sequences its prefill would stall,
// all in tokens of prefill. A 100-token request that finds 64 of its
// tokens cached on a "warm" server computes 36 there instead of 100.
func ExampleCostAware() {
	router := fleet.CostAware{BlockSize: 16}
	cands := []fleet.Candidate{
		{Score: fleet.Score{Name: "warm", Blocks: 4, Device: 4}, Work: 40, Prompt: 100},
		{Score: fleet.Score{Name: "idle"}, Prompt: 100},
	}
	show := func(what string) {
		fmt.Printf("%s: warm %.0f, idle %.0f: %s\n", what, router.Cost(&cands[0]), router.Cost(&cands[1]), cands[router.Route(cands)].Name)
	}
	show("40 tokens queued")
	cands[0].Work = 100
	show("100 tokens queued")
	// With 3 sequences resident on each, every prefill token stalls them
	// too, and the cache is worth four times as much.
	cands[0].Load, cands[1].Load = 3, 3
	show("and 3 resident each")
	// Output:
	// 40 tokens queued: warm 76, idle 100: warm
	// 100 tokens queued: warm 136, idle 100: idle
	// and 3 resident each: warm 244, idle 400: warm
}
