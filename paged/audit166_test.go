package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The hundred-and-eighteenth round of mutation testing (docs/testing.md):
// BuildBatch's layout and the placement of sequences over devices.

// audit166Rows requires b's rows to be the tables of its sequences,
// null-padded to the stride, and its slots to be what Slot says of each
// new token.
func audit166Rows(t *testing.T, m *paged.Manager, b *paged.Batch) {
	t.Helper()
	require.Len(t, b.Tables, len(b.Seqs)*b.Stride)
	slot := 0
	for i, id := range b.Seqs {
		table, err := m.Table(id)
		require.NoError(t, err)
		want := make([]int32, b.Stride)
		for k, blk := range table {
			want[k] = int32(blk)
		}
		assert.Equal(t, want, b.Tables[i*b.Stride:(i+1)*b.Stride], "row %d (%v)", i, id)
		for pos := int(b.SeqLens[i] - b.QueryLens[i]); pos < int(b.SeqLens[i]); pos++ {
			want, err := m.Slot(id, pos)
			require.NoError(t, err)
			assert.Equal(t, want, b.Slots[slot], "%v position %d", id, pos)
			slot++
		}
	}
	assert.Len(t, b.Slots, slot)
}

// TestAudit166AutomaticStrideIsAPowerOfTwo: an automatic Stride starts at
// 16 and grows to the next power of two that fits, 64 for 33 blocks.
func TestAudit166AutomaticStrideIsAPowerOfTwo(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 80})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(4, 1), nil)
	require.NoError(t, err)
	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: a, NewTokens: 4}}))
	assert.Equal(t, 16, b.Stride, "one block")
	audit166Rows(t, m, &b)
	require.NoError(t, m.Append(a, seqTokens(128, 10)...))
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: a, NewTokens: 128}}))
	assert.Equal(t, 64, b.Stride, "33 blocks")
	audit166Rows(t, m, &b)
}

// TestAudit166ScheduledTwiceIsNamed: the error for a sequence scheduled
// twice says so (its table fits the stride).
func TestAudit166ScheduledTwiceIsNamed(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(4, 1), nil)
	require.NoError(t, err)
	var b paged.Batch
	err = m.BuildBatch(&b, []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: a, NewTokens: 1}})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.ErrorContains(t, err, "scheduled twice")
}

// TestAudit166FullDeviceLeavesTheOtherFree: a one-way sequence that
// fills device 0 leaves device 1 to the next one, whose blocks the dry
// run counts on device 1; a third is then ErrNoSpace (later), not
// ErrNever.
func TestAudit166FullDeviceLeavesTheOtherFree(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 0, 0)
	_, err := p.Create(seqTokens(32, 1), 1)
	require.NoError(t, err)
	b, err := p.Create(seqTokens(32, 100), 1)
	require.NoError(t, err)
	shards, err := p.Shards(b)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, shards)
	_, err = p.Create(seqTokens(4, 200), 1)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	require.NotErrorIs(t, err, paged.ErrNever)
	require.NoError(t, p.Check())
}

// TestAudit166DeviceOptionsTurnedOff: a device's Watermark and
// MaxModelLen do not bound a shard: on one device of 8 blocks, with a
// watermark of 0.5 (4 blocks) and a MaxModelLen of 8 tokens, a sequence
// of 20 tokens is placed (5 blocks), and a second of 12 (its first block
// admitted with 3 available, below the watermark) fills the device.
func TestAudit166DeviceOptionsTurnedOff(t *testing.T) {
	p, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 9, Watermark: 0.5, MaxModelLen: 8}, Devices: 1})
	require.NoError(t, err)
	a, err := p.Create(seqTokens(20, 1), 1)
	require.NoError(t, err)
	b, err := p.Create(seqTokens(12, 100), 1)
	require.NoError(t, err)
	for id, want := range map[paged.SeqID]int{a: 20, b: 12} {
		n, err := p.Len(id)
		require.NoError(t, err)
		assert.Equal(t, want, n)
	}
	assert.Zero(t, p.Devices()[0].Stats().FreeBlocks)
	require.NoError(t, p.Check())
}

// TestAudit166IdleDeviceRowsAreNull: a device holding no shard of the
// scheduled sequences still has one null entry per sequence (Stride 1)
// and no tokens.
func TestAudit166IdleDeviceRowsAreNull(t *testing.T) {
	p := newAudit114Placement(t, 2, paged.Contiguous, 0, 0)
	a, err := p.Create(seqTokens(5, 1), 1)
	require.NoError(t, err)
	var b paged.PlacementBatch
	require.NoError(t, p.BuildBatch(&b, []paged.Scheduled{{ID: a, NewTokens: 5}}))
	require.Len(t, b.Devices, 2)
	idle := b.Devices[1]
	assert.Equal(t, 1, idle.Stride)
	assert.Equal(t, []int32{0}, idle.Tables)
	assert.Equal(t, []int32{0}, idle.SeqLens)
	assert.Empty(t, idle.Slots)
}

// TestAudit166UnknownLayoutIsRefused: a Layout past RoundRobin is
// ErrInvalid, the first one past it too.
func TestAudit166UnknownLayoutIsRefused(t *testing.T) {
	for _, l := range []paged.Layout{paged.RoundRobin + 1, paged.RoundRobin + 2} {
		_, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 9}, Devices: 1, Layout: l})
		require.ErrorIs(t, err, paged.ErrInvalid, "layout %d", l)
	}
}
