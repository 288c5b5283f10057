package bench_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/bench"
)

// Replay the first requests of the Mooncake trace over four servers, each
// a scheduler whose steps take what the step-time model says, behind the
// cost-aware router.
func ExampleRunFleet() {
	reqs := bench.MooncakeSynthetic()[:200]
	var router bench.FleetRouter
	for _, r := range bench.FleetRouters(1, 8) {
		if r.Name == "cost-aware" {
			router = r
		}
	}
	res, err := bench.RunFleet(reqs, bench.FleetConfig{Servers: 4, Speed: 2}, router)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d requests served by %d servers, every one once: %v\n", res.Requests, len(res.PerServer),
		res.PerServer[0]+res.PerServer[1]+res.PerServer[2]+res.PerServer[3] == len(reqs))
	// Output:
	// 200 requests served by 4 servers, every one once: true
}
