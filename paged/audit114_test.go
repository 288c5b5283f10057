package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The sixty-seventh round of mutation testing (docs/testing.md): the
// placement of context-parallel sequences over device pools.

// newAudit114Placement is a placement of device pools of 9 blocks of 4
// tokens (8 usable).
func newAudit114Placement(t *testing.T, devices int, layout paged.Layout, shard, maxLen int) *paged.Placement {
	t.Helper()
	p, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 9}, Devices: devices, Layout: layout, ShardBlocks: shard, MaxModelLen: maxLen})
	require.NoError(t, err)
	return p
}

// TestAudit114CreateTakesTheFreestDevices: Create places a sequence on the
// devices with the most available blocks, the lowest index on ties, so a
// second one-way sequence goes to the device the first left empty.
func TestAudit114CreateTakesTheFreestDevices(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 0, 0)
	a, err := p.Create(seqTokens(5, 1), 1)
	require.NoError(t, err)
	b, err := p.Create(seqTokens(3, 1), 1)
	require.NoError(t, err)
	sa, err := p.Shards(a)
	require.NoError(t, err)
	sb, err := p.Shards(b)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, sa, "a tie goes to the lowest index")
	assert.Equal(t, []int{1}, sb, "device 1 has 8 blocks available, device 0 6")
	require.NoError(t, p.Check())
}

// TestAudit114DefaultShardHoldsMaxModelLen: the default shard length
// spreads MaxModelLen's blocks over the sequence's devices rounding up, so
// a sequence of exactly MaxModelLen tokens fits: 10 tokens are 3 blocks of
// 4, shards of 2 blocks over 2 devices.
func TestAudit114DefaultShardHoldsMaxModelLen(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 0, 10)
	id, err := p.Create(seqTokens(10, 1), 2)
	require.NoError(t, err)
	require.ErrorIs(t, p.Append(id, 1), paged.ErrNever)
	t0, err := p.Table(id, 0)
	require.NoError(t, err)
	assert.Len(t, t0, 2, "shard 0 holds blocks 0 and 1")
	require.NoError(t, p.Check())
}

// TestAudit114SlotPastTheEndIsInvalid: the position one past the last token
// is ErrInvalid, also when it would open a shard that holds nothing yet.
func TestAudit114SlotPastTheEndIsInvalid(t *testing.T) {
	for _, layout := range []paged.Layout{paged.Contiguous, paged.RoundRobin} {
		p := newAudit114Placement(t, 2, layout, 2, 0)
		id, err := p.Create(seqTokens(4, 1), 2)
		require.NoError(t, err)
		_, _, err = p.Slot(id, 4)
		require.ErrorIs(t, err, paged.ErrInvalid, "%v", layout)
		require.NoError(t, p.Append(id, seqTokens(4, 9)...))
		_, _, err = p.Slot(id, 8)
		require.ErrorIs(t, err, paged.ErrInvalid, "%v", layout)
	}
}

// TestAudit114TableOfAnEmptyShard: a shard that holds no token yet has an
// empty table and no error.
func TestAudit114TableOfAnEmptyShard(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 2, 0)
	id, err := p.Create(seqTokens(3, 1), 2)
	require.NoError(t, err)
	tb, err := p.Table(id, 1)
	require.NoError(t, err)
	assert.Empty(t, tb)
}

// TestAudit114BatchReusedAcrossPlacements: a PlacementBatch filled by a
// placement of three devices and reused by one of two has two devices.
func TestAudit114BatchReusedAcrossPlacements(t *testing.T) {
	big := newAudit114Placement(t, 3, paged.RoundRobin, 0, 0)
	a, err := big.Create(seqTokens(12, 1), 3)
	require.NoError(t, err)
	var b paged.PlacementBatch
	require.NoError(t, big.BuildBatch(&b, []paged.Scheduled{{ID: a, NewTokens: 12}}))
	require.Len(t, b.Devices, 3)
	small := newAudit114Placement(t, 2, paged.RoundRobin, 0, 0)
	c, err := small.Create(seqTokens(5, 1), 2)
	require.NoError(t, err)
	require.NoError(t, small.BuildBatch(&b, []paged.Scheduled{{ID: c, NewTokens: 5}}))
	var fresh paged.PlacementBatch
	require.NoError(t, small.BuildBatch(&fresh, []paged.Scheduled{{ID: c, NewTokens: 5}}))
	require.Len(t, b.Devices, 2)
	assert.Equal(t, fresh.Devices, b.Devices)
}

// TestAudit114DeviceSeqLensAreShardTokens: a device's SeqLens are the
// tokens the sequence keeps there, not its blocks' slots.
func TestAudit114DeviceSeqLensAreShardTokens(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 2, 0)
	id, err := p.Create(seqTokens(10, 1), 2)
	require.NoError(t, err)
	shards, err := p.Shards(id)
	require.NoError(t, err)
	var b paged.PlacementBatch
	require.NoError(t, p.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}))
	assert.Equal(t, []int32{8}, b.Devices[shards[0]].SeqLens)
	assert.Equal(t, []int32{2}, b.Devices[shards[1]].SeqLens)
}

// TestAudit114CheckCountsDeviceSequences: a sequence made on a device
// behind the placement's back is one its placements do not name.
func TestAudit114CheckCountsDeviceSequences(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 0, 0)
	_, err := p.Create(seqTokens(5, 1), 2)
	require.NoError(t, err)
	require.NoError(t, p.Check())
	_, _, err = p.Devices()[1].Create(seqTokens(3, 1), nil)
	require.NoError(t, err)
	require.NoError(t, p.Devices()[1].Check())
	require.ErrorContains(t, p.Check(), "device 1 has 1 sequences, placements name 0")
}

// TestAudit114MaxModelLenBoundsAPlacedSequence: MaxModelLen bounds a
// sequence whose shards would hold more.
func TestAudit114MaxModelLenBoundsAPlacedSequence(t *testing.T) {
	for _, layout := range []paged.Layout{paged.Contiguous, paged.RoundRobin} {
		p := newAudit114Placement(t, 2, layout, 4, 10)
		_, err := p.Create(seqTokens(11, 1), 2)
		require.ErrorIs(t, err, paged.ErrNever, "%v", layout)
		id, err := p.Create(seqTokens(10, 1), 2)
		require.NoError(t, err, "%v", layout)
		require.ErrorIs(t, p.Append(id, 1), paged.ErrNever, "%v", layout)
	}
}
