package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit166WrappedStampClearsMarks: when Placement.BuildBatch's stamp
// wraps, the marks of earlier steps are cleared, so a sequence last
// scheduled when the stamp was 1 is not taken as scheduled twice.
func TestAudit166WrappedStampClearsMarks(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Device: Config{BlockSize: 4, NumBlocks: 9}, Devices: 2})
	require.NoError(t, err)
	id, err := p.Create([]int32{1, 2, 3}, 2)
	require.NoError(t, err)
	var b PlacementBatch
	sched := []Scheduled{{ID: id, NewTokens: 1}}
	require.NoError(t, p.BuildBatch(&b, sched))
	p.stamp = ^uint32(0) // as after 2^32-1 steps
	require.NoError(t, p.BuildBatch(&b, sched))
	require.NoError(t, p.BuildBatch(&b, sched))
}

// TestAudit166CheckChecksTheDevices: Placement.Check reports a device
// manager whose own Check fails (two tables naming one block once), even
// when every shard holds the tokens its layout deals it.
func TestAudit166CheckChecksTheDevices(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Device: Config{BlockSize: 4, NumBlocks: 9}, Devices: 1})
	require.NoError(t, err)
	a, err := p.Create([]int32{1, 2, 3}, 1)
	require.NoError(t, err)
	b, err := p.Create([]int32{4, 5, 6}, 1)
	require.NoError(t, err)
	require.NoError(t, p.Check())
	sa, _ := p.get(a)
	sb, _ := p.get(b)
	dev := p.devs[0]
	dev.seqAt(sa.sub[0]).blocks[0] = dev.seqAt(sb.sub[0]).blocks[0]
	require.ErrorContains(t, p.Check(), "device 0: ")
}
