package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// The Audit124 tests close the gaps the seventy-seventh mutation round
// found in fleet's layouts (docs/testing.md, "Mutation testing,
// seventy-seventh round").

// TestAudit124SharedNeedsItsTarget (M3235): "shared" is read only with
// its target; without one it is bad text, not a group sharing group 0.
func TestAudit124SharedNeedsItsTarget(t *testing.T) {
	_, err := fleet.ParseLayout("b2 full shared")
	require.ErrorIs(t, err, fleet.ErrInvalid)
	l, err := fleet.ParseLayout("b2 full shared:0")
	require.NoError(t, err)
	require.Equal(t, fleet.Layout{BlockSize: 2, Groups: []paged.Group{{}, {Kind: paged.Shared}}}, l)
}

// TestAudit124FullGroupsHitTogether (M3237): two full-attention groups
// are one class, whose hit is the run of blocks both hold, on either
// tier, not group 0's run alone (the hybrid property's paged managers
// never had their full groups differ on a scored prefix; a vLLM pod's
// events may). Group 0 holds blocks 0-2 on the device, group 1 block 0
// on the device and block 1 on the host: a hit of 2 blocks, 1 of them
// on the device.
func TestAudit124FullGroupsHitTogether(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("gpu", fleet.Layout{BlockSize: 2, Groups: []paged.Group{{}, {}}}))
	host := stored(3, 1, 1)
	host.Medium = paged.Host
	require.NoError(t, x.Apply("gpu", []paged.Event{stored(1, 0, 0, 1, 2), stored(2, 1, 0), host}))
	sc, err := x.Lookup(fleettest.Hs(0, 1, 2), nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	require.False(t, sc[0].Partial)
	require.Equal(t, 2, sc[0].Blocks, "group 1 has no block 2; its block 1 on the host is a hit")
	require.Equal(t, 1, sc[0].Device)
	require.Equal(t, 3, sc[0].Affinity, "group 0's run")
}
