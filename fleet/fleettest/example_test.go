package fleettest_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// The model applies the index's sequence rules the obvious way: a lost
// event drops the server's entries and marks it partial.
func ExampleModel() {
	m := fleettest.NewModel()
	m.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2, 3)})
	blocks, device := m.Score("a", fleettest.Hs(1, 2, 9))
	fmt.Println(blocks, device, m.Partial("a"))
	m.Apply("a", []paged.Event{fleettest.Stored(3, paged.Host, 1)}) // event 2 was lost
	blocks, device = m.Score("a", fleettest.Hs(1, 2, 9))
	fmt.Println(blocks, device, m.Partial("a"))
	// Output:
	// 2 2 false
	// 1 0 true
}
