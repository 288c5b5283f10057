package fleet_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestMemoryChurn: 100 pod names come and go through an index of 4
// servers; every name is accepted while at most 4 are live, and no block
// is ever scored to the wrong server.
func TestMemoryChurn(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fleettest.CheckChurn(t, memory(t, 64), fmt.Sprint("churn-", seed), seed)
		})
	}
}

func TestMemoryLateEventsOfReclaimedID(t *testing.T) {
	fleettest.CheckLateEvents(t, "late", memory(t, 64))
}

func TestMemoryConcurrentChurn(t *testing.T) {
	fleettest.CheckConcurrentChurn(t, "concurrent", memory(t, 1024))
}

// TestUnregisterRefusals: bad names change nothing.
func TestUnregisterRefusals(t *testing.T) {
	x, err := fleet.New(fleet.Config{MaxServers: 1})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	require.ErrorIs(t, x.Unregister(""), fleet.ErrInvalid)
	err = x.Unregister("b")
	require.ErrorIs(t, err, fleet.ErrUnknownServer)
	require.ErrorContains(t, err, `"b"`)
	sc, err := x.Lookup(fleettest.Hs(1), nil)
	require.NoError(t, err)
	require.Equal(t, "a", sc[0].Name)
	require.Equal(t, 1, sc[0].Blocks)
	// With the one ID live, a new name is refused; once a is
	// unregistered, the ID is free and b takes it with none of a's blocks.
	_, err = x.Register("b")
	require.ErrorIs(t, err, fleet.ErrTooManyServers)
	require.NoError(t, x.Unregister("a"))
	sc, err = x.Lookup(fleettest.Hs(1), nil)
	require.NoError(t, err)
	require.Equal(t, []fleet.Score{{Server: 0, Partial: true}}, sc, "a freed id")
	id, err := x.Register("b")
	require.NoError(t, err)
	require.Equal(t, fleet.ServerID(0), id)
	sc, err = x.Lookup(fleettest.Hs(1), nil)
	require.NoError(t, err)
	require.Equal(t, []fleet.Score{{Server: 0, Name: "b"}}, sc)
}

// TestMemoryRenameRefusals: the backend call behind reclamation.
func TestMemoryRenameRefusals(t *testing.T) { fleettest.CheckRename(t, memory(t, 8), "rename") }
