package paged_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// longest appends to one sequence placed over ways devices until the
// placement refuses, and returns its length.
func longest(t *testing.T, layout paged.Layout, devices, ways int) int {
	p, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 9}, Devices: devices, Layout: layout})
	require.NoError(t, err)
	id, err := p.Create(seqTokens(3, 1), ways)
	require.NoError(t, err)
	for {
		err := p.Append(id, 7)
		if err != nil {
			require.True(t, errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever), "%v", err)
			break
		}
	}
	require.NoError(t, p.Check())
	n, err := p.Len(id)
	require.NoError(t, err)
	return n
}

func TestPlacementCapacityGrowsLinearly(t *testing.T) {
	const perDevice = 8 * 4 // usable blocks * block size
	for _, layout := range []paged.Layout{paged.Contiguous, paged.RoundRobin} {
		t.Run(layout.String(), func(t *testing.T) {
			for d := 1; d <= 4; d++ {
				assert.Equal(t, d*perDevice, longest(t, layout, 4, d), "over %d devices", d)
			}
		})
	}
}

func TestPlacementLayoutAndBatch(t *testing.T) {
	for _, layout := range []paged.Layout{paged.Contiguous, paged.RoundRobin} {
		t.Run(layout.String(), func(t *testing.T) {
			p, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 9}, Devices: 3, Layout: layout, ShardBlocks: 2})
			require.NoError(t, err)
			a, err := p.Create(seqTokens(10, 1), 2)
			require.NoError(t, err)
			b, err := p.Create(seqTokens(5, 50), 3)
			require.NoError(t, err)
			require.NoError(t, p.Append(a, 11, 12, 13))
			require.NoError(t, p.Check())

			shards, err := p.Shards(a)
			require.NoError(t, err)
			require.Len(t, shards, 2)
			// a has 13 tokens: logical blocks 0..3.
			t0, err := p.Table(a, 0)
			require.NoError(t, err)
			t1, err := p.Table(a, 1)
			require.NoError(t, err)
			assert.Len(t, t0, 2)
			assert.Len(t, t1, 2)
			if layout == paged.Contiguous {
				// Shard 0 holds blocks 0 and 1: position 5 is local 5.
				dev, sl, err := p.Slot(a, 5)
				require.NoError(t, err)
				assert.Equal(t, shards[0], dev)
				assert.Equal(t, int64(t0[1])*4+1, sl)
			} else {
				// Block 1 is shard 1's local block 0.
				dev, sl, err := p.Slot(a, 5)
				require.NoError(t, err)
				assert.Equal(t, shards[1], dev)
				assert.Equal(t, int64(t1[0])*4+1, sl)
			}

			var batch paged.PlacementBatch
			require.NoError(t, p.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 3}, {ID: b, NewTokens: 5}}))
			assert.Equal(t, []int32{13, 5}, batch.SeqLens)
			assert.Equal(t, []int32{0, 3, 8}, batch.QueryStart)
			require.Len(t, batch.Devices, 3)
			slots := 0
			for _, sb := range batch.Devices {
				require.Len(t, sb.Slots, len(sb.Positions))
				slots += len(sb.Slots)
				assert.Len(t, sb.Tables, 2*sb.Stride)
			}
			assert.Equal(t, 8, slots, "every new token has one slot on one device")
			// Each new token's slot agrees with Slot.
			for _, want := range []struct {
				id  paged.SeqID
				pos int
			}{{a, 10}, {a, 12}, {b, 0}, {b, 4}} {
				dev, sl, err := p.Slot(want.id, want.pos)
				require.NoError(t, err)
				assert.Contains(t, batch.Devices[dev].Slots, sl)
			}
			// The device tables are the shard tables.
			row := batch.Devices[shards[0]].Tables[:batch.Devices[shards[0]].Stride]
			assert.Equal(t, int32(t0[0]), row[0])

			require.NoError(t, p.Free(a))
			require.NoError(t, p.Free(b))
			require.NoError(t, p.Check())
			for _, m := range p.Devices() {
				assert.Equal(t, 0, m.Stats().UsedBlocks)
			}
		})
	}
}

func TestPlacementBadInput(t *testing.T) {
	p, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 9}, Devices: 2})
	require.NoError(t, err)
	_, err = p.Create(seqTokens(4, 1), 3)
	require.ErrorIs(t, err, paged.ErrInvalid, "D larger than the device count")
	_, err = p.Create(seqTokens(4, 1), 0)
	require.ErrorIs(t, err, paged.ErrInvalid)
	_, err = p.Create(nil, 1)
	require.ErrorIs(t, err, paged.ErrInvalid)
	_, err = p.Create(seqTokens(65, 1), 2)
	require.ErrorIs(t, err, paged.ErrNever)
	id, err := p.Create(seqTokens(4, 1), 2)
	require.NoError(t, err)
	require.ErrorIs(t, p.Append(id), paged.ErrInvalid)
	_, err = p.Table(id, 2)
	require.ErrorIs(t, err, paged.ErrInvalid)
	var batch paged.PlacementBatch
	require.ErrorIs(t, p.BuildBatch(&batch, []paged.Scheduled{{ID: id, NewTokens: 1}, {ID: id, NewTokens: 1}}), paged.ErrInvalid)
	require.NoError(t, p.Free(id))
	require.ErrorIs(t, p.Free(id), paged.ErrUnknownSequence)
	require.NoError(t, p.Check())
	for _, m := range p.Devices() {
		assert.Equal(t, 0, m.Stats().Sequences)
	}
	_, err = paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{NumBlocks: 9}, Devices: 0})
	require.ErrorIs(t, err, paged.ErrInvalid)
}
