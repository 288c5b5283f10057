package fleet_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Pods come and go (new names on every restart); an index with room for
// two servers keeps accepting them: Unregister frees a deleted pod's ID,
// and a pod silent past the TTL gives its ID to the next new name.
func ExampleIndex_Unregister() {
	clk := fleettest.NewClock()
	x, _ := fleet.New(fleet.Config{MaxServers: 2, TTL: time.Minute, Now: clk.Now})
	_ = x.Apply("pod-a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)})
	_ = x.Apply("pod-b", []paged.Event{fleettest.Stored(1, paged.Device, 1)})
	_, err := x.Register("pod-c")
	fmt.Println(errors.Is(err, fleet.ErrTooManyServers)) // both live

	_ = x.Unregister("pod-a") // pod-a was deleted
	id, _ := x.Register("pod-c")
	fmt.Println("pod-c has id", id)

	clk.Advance(2 * time.Minute) // pod-b went away without a word
	_ = x.Heartbeat("pod-c")
	id, _ = x.Register("pod-d")
	fmt.Println("pod-d has id", id)

	scores, _ := x.Lookup(fleettest.Hs(1, 2), nil)
	for _, s := range scores {
		fmt.Println(s.Server, s.Name, s.Blocks)
	}
	// Output:
	// true
	// pod-c has id 0
	// pod-d has id 1
	// 0 pod-c 0
	// 1 pod-d 0
}
