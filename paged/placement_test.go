package paged_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

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

// TestPlacementReadBack drives random placements and checks that every
// token's KV, written at the slot the placement gave it, reads back through
// the shard tables at the shard and local block the layout names.
func TestPlacementReadBack(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "blockSize")
		devices := rapid.IntRange(1, 4).Draw(t, "devices")
		layout := rapid.SampledFrom([]paged.Layout{paged.Contiguous, paged.RoundRobin}).Draw(t, "layout")
		p, err := paged.NewPlacement(paged.PlacementConfig{
			Device:      paged.Config{BlockSize: bs, NumBlocks: rapid.IntRange(2, 12).Draw(t, "blocks")},
			Devices:     devices,
			Layout:      layout,
			ShardBlocks: rapid.IntRange(0, 4).Draw(t, "shard"),
		})
		if err != nil {
			t.Fatal(err)
		}
		shadow := make([]map[int64]uint64, devices)
		for d := range shadow {
			shadow[d] = map[int64]uint64{}
		}
		model := map[paged.SeqID][]int32{}
		var ids []paged.SeqID
		write := func(id paged.SeqID, from int) {
			toks := model[id]
			for pos := from; pos < len(toks); pos++ {
				d, sl, err := p.Slot(id, pos)
				if err != nil {
					t.Fatalf("Slot: %v", err)
				}
				shadow[d][sl] = kvOf(0, toks[:pos+1])
			}
		}
		var batch paged.PlacementBatch
		t.Repeat(map[string]func(*rapid.T){
			"create": func(t *rapid.T) {
				toks := rapid.SliceOfN(rapid.Int32Range(1, 9), 1, 12).Draw(t, "prompt")
				id, err := p.Create(toks, rapid.IntRange(1, devices).Draw(t, "ways"))
				if err != nil {
					if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatalf("Create: %v", err)
					}
					return
				}
				model[id] = toks
				ids = append(ids, id)
				write(id, 0)
			},
			"append": func(t *rapid.T) {
				if len(ids) == 0 {
					return
				}
				id := rapid.SampledFrom(ids).Draw(t, "seq")
				toks := rapid.SliceOfN(rapid.Int32Range(1, 9), 1, 9).Draw(t, "tokens")
				if err := p.Append(id, toks...); err != nil {
					if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatalf("Append: %v", err)
					}
					return
				}
				from := len(model[id])
				model[id] = append(model[id], toks...)
				write(id, from)
				if err := p.BuildBatch(&batch, []paged.Scheduled{{ID: id, NewTokens: len(toks)}}); err != nil {
					t.Fatalf("BuildBatch: %v", err)
				}
				slots := 0
				for _, sb := range batch.Devices {
					slots += len(sb.Slots)
				}
				if slots != len(toks) {
					t.Fatalf("batch has %d new-token slots, want %d", slots, len(toks))
				}
			},
			"free": func(t *rapid.T) {
				if len(ids) == 0 {
					return
				}
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "victim")
				if err := p.Free(ids[i]); err != nil {
					t.Fatalf("Free: %v", err)
				}
				delete(model, ids[i])
				ids = append(ids[:i], ids[i+1:]...)
			},
			"": func(t *rapid.T) {
				if err := p.Check(); err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					toks := model[id]
					shards, _ := p.Shards(id)
					ways := len(shards)
					// Contiguous fills shard 0 before shard 1 is used, so
					// shard 0's table length is the shard length whenever
					// it matters.
					t0, _ := p.Table(id, 0)
					for pos := range toks {
						k := pos / bs
						shard, local := k%ways, k/ways
						if layout == paged.Contiguous {
							shard, local = k/len(t0), k%len(t0)
						}
						table, err := p.Table(id, shard)
						if err != nil || local >= len(table) {
							t.Fatalf("shard %d of %v has no local block %d: %v", shard, id, local, err)
						}
						sl := int64(table[local])*int64(bs) + int64(pos%bs)
						if shadow[shards[shard]][sl] != kvOf(0, toks[:pos+1]) {
							t.Fatalf("read-back of %v position %d (device %d slot %d): other content", id, pos, shards[shard], sl)
						}
					}
				}
			},
		})
	})
}
