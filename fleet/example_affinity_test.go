package fleet_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
)

// Two hybrid servers, neither able to hit a request of 10 blocks: a
// holds 8 of them in group 0 (its checkpoint or window there is gone), b
// none, and b is idle. By the exact hit alone the request goes to b, and
// its family's next request finds nothing anywhere again; with the
// affinity gain it goes to a, which it leaves able to hit the 8 blocks.
func ExampleCostAware_affinity() {
	cands := []fleet.Candidate{
		{Score: fleet.Score{Name: "a", Affinity: 8}, Load: 1, Prompt: 160},
		{Score: fleet.Score{Name: "b"}, Load: 0, Prompt: 160},
	}
	r := fleet.CostAware{BlockSize: 16}
	fmt.Println("with affinity:", cands[r.Route(cands)].Name)
	r.IgnoreAffinity = true
	fmt.Println("exact hit alone:", cands[r.Route(cands)].Name)
	// Output:
	// with affinity: a
	// exact hit alone: b
}
