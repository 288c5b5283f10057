package fleet_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// A burst of requests shares a prompt no server has computed yet. The
// index knows only what the servers' events report, so without a
// Pending record the second request finds the prompt nowhere; with it,
// it follows the first to the server that is computing it. The claim
// ends when that server's events report the blocks.
func ExamplePending() {
	index, _ := fleet.New(fleet.Config{})
	a, _ := index.Register("a")
	_, _ = index.Register("b")
	pending, _ := fleet.NewPending(fleet.PendingConfig{})
	prompt := []paged.Hash{{1}, {2}, {3}, {4}}

	show := func(what string) {
		scores, _ := index.Lookup(prompt, nil)
		pending.Extend(prompt, scores)
		for _, s := range scores {
			fmt.Printf("%s: %s holds %d blocks, %d of them pending\n", what, s.Name, s.Blocks, s.Pending)
		}
	}
	// The first request is routed to a, which holds nothing yet.
	_ = pending.Add(a, prompt)
	show("routed")
	// a schedules the first chunk and reports two blocks.
	events := []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: prompt[:2]}}
	_ = index.Apply("a", events)
	_ = pending.Observe(a, events)
	show("first chunk")
	// Output:
	// routed: a holds 4 blocks, 4 of them pending
	// routed: b holds 0 blocks, 0 of them pending
	// first chunk: a holds 4 blocks, 2 of them pending
	// first chunk: b holds 0 blocks, 0 of them pending
}
