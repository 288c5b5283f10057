package paged

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit9DrainedEventsOutliveLaterEvents checks DrainEvents' promise:
// drained events' slices stay as they were until the next DrainEvents,
// however many events are queued meanwhile (the queue and its arenas
// grow and merge events as they come).
func TestAudit9DrainedEventsOutliveLaterEvents(t *testing.T) {
	const bs = 4
	m, err := New(Config{BlockSize: bs, NumBlocks: 12, Events: 1 << 10, HostBlocks: 8})
	require.NoError(t, err)
	prompt := func(k int) []int32 {
		p := make([]int32, 3*bs)
		for i := range p {
			p[i] = int32(k*100 + i)
		}
		return p
	}
	for round := range 3 {
		id, _, err := m.Create(prompt(round), nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
		drained := m.DrainEvents(nil)
		require.NotEmpty(t, drained)
		kept := make([]Event, len(drained))
		for i, e := range drained {
			kept[i] = e
			kept[i].Hashes, kept[i].Tokens = slices.Clone(e.Hashes), slices.Clone(e.Tokens)
		}
		// Queue many more events (stores, evictions, offloads) undrained.
		for k := range 12 {
			id, _, err := m.Create(prompt(10+round*20+k), nil)
			require.NoError(t, err)
			require.NoError(t, m.Free(id))
		}
		for i, e := range drained {
			require.Equal(t, kept[i].Hashes, e.Hashes, "round %d event %d", round, i)
			require.Equal(t, kept[i].Tokens, e.Tokens, "round %d event %d", round, i)
		}
		m.DrainEvents(nil)
	}
}

// TestAudit9PlacementDevicesIsACopy checks that the slice Devices returns
// is the caller's: writing it does not change which manager a shard of
// the placement lives on.
func TestAudit9PlacementDevicesIsACopy(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Devices: 2, Device: Config{BlockSize: 2, NumBlocks: 9}, ShardBlocks: 2})
	require.NoError(t, err)
	id, err := p.Create([]int32{1, 2, 3, 4, 5, 6, 7}, 2)
	require.NoError(t, err)
	devs := p.Devices()
	d0, d1 := devs[0], devs[1]
	devs[0], devs[1] = d1, d0
	require.NoError(t, p.Append(id, 8))
	require.NoError(t, p.Check())
	require.Same(t, d0, p.Devices()[0], "Devices returned the placement's own slice")
	require.Equal(t, []int{2, 2}, []int{d0.Stats().UsedBlocks, d1.Stats().UsedBlocks}, "each shard keeps its blocks on its own device")
}

// TestAudit9PlacementBatchRowsAreRewritten checks that a caller may
// overwrite every row of a PlacementBatch between steps (its doc makes
// none persistent): the next BuildBatch gives what a fresh batch gets.
func TestAudit9PlacementBatchRowsAreRewritten(t *testing.T) {
	for _, layout := range []Layout{Contiguous, RoundRobin} {
		p, err := NewPlacement(PlacementConfig{Devices: 3, Device: Config{BlockSize: 2, NumBlocks: 40}, ShardBlocks: 8, Layout: layout})
		require.NoError(t, err)
		var ids []SeqID
		for k := range 3 {
			id, err := p.Create(slices.Repeat([]int32{int32(k + 1)}, 5+3*k), 3)
			require.NoError(t, err)
			ids = append(ids, id)
		}
		var reused PlacementBatch
		for step := range 6 {
			sc := []Scheduled{{ID: ids[step%3], NewTokens: 1}, {ID: ids[(step+1)%3], NewTokens: 1}}
			for _, s := range sc {
				require.NoError(t, p.Append(s.ID, int32(step)))
			}
			var fresh PlacementBatch
			require.NoError(t, p.BuildBatch(&fresh, sc))
			require.NoError(t, p.BuildBatch(&reused, sc))
			require.Equal(t, placementRows(&fresh), placementRows(&reused), "%v step %d", layout, step)
			for i := range reused.Devices {
				d := &reused.Devices[i]
				scribble32(d.Tables)
				scribble32(d.SeqLens)
				scribble32(d.Positions)
				for j := range d.Slots {
					d.Slots[j] = -1
				}
			}
			scribble32(reused.SeqLens)
			scribble32(reused.QueryLens)
			scribble32(reused.QueryStart)
		}
		require.NoError(t, p.Check())
	}
}

// placementRows copies b's rows, nil for empty.
func placementRows(b *PlacementBatch) []any {
	out := []any{cl(b.Seqs), cl(b.SeqLens), cl(b.QueryLens), cl(b.QueryStart)}
	for _, d := range b.Devices {
		out = append(out, d.Stride, cl(d.Tables), cl(d.SeqLens), cl(d.Slots), cl(d.Positions))
	}
	return out
}
