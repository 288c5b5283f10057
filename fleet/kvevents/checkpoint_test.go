package kvevents_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// TestCheckpointEventsRoundTrip: a hybrid manager's events, state
// checkpoints included (one block of their state group), go through
// vLLM's frames in both layouts with their group_idx, and an index fed
// the decoded events scores the server as one fed the manager's own.
func TestCheckpointEventsRoundTrip(t *testing.T) {
	cfg := paged.Config{BlockSize: 2, NumBlocks: 32, Events: 256,
		Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 3}, {Kind: paged.State, Pages: 2}}}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	shared := []int32{1, 2, 3, 4, 5, 6}
	for _, tail := range []int32{10, 20} {
		_, _, err := m.Create(append(append([]int32(nil), shared...), tail, tail+1, tail+2), nil)
		require.NoError(t, err)
		m.TakeCheckpoints(nil)
		m.TakeCopies(nil)
	}
	events := m.DrainEvents(nil)
	state := 0
	for _, ev := range events {
		if ev.Group == 2 {
			state++
		}
	}
	require.Equal(t, 1, state, "the checkpoint at the shared prefix's end")
	hashes, err := m.BlockHashes(nil, append(append([]int32(nil), shared...), 30), nil)
	require.NoError(t, err)

	direct, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	require.NoError(t, direct.SetLayout("gpu", fleet.LayoutOf(cfg)))
	require.NoError(t, direct.Apply("gpu", events))
	want, err := direct.Lookup(hashes, nil)
	require.NoError(t, err)
	require.Equal(t, 3, want[0].Blocks, "full, window and checkpoint after the shared 3 blocks")

	for _, layout := range []kvevents.Layout{kvevents.ArrayLayout, kvevents.MapLayout} {
		enc, err := kvevents.NewEncoder(kvevents.EncoderConfig{Layout: layout})
		require.NoError(t, err)
		frame, err := enc.AppendBatch(nil, 1, events)
		require.NoError(t, err)
		var stream kvevents.Stream
		got, err := stream.Decode(0, frame)
		require.NoError(t, err)
		require.Len(t, got, len(events))
		for i := range got {
			require.Equal(t, events[i].Group, got[i].Group, "event %d", i)
			require.Equal(t, events[i].Hashes, got[i].Hashes, "event %d", i)
		}
		x, err := fleet.New(fleet.Config{})
		require.NoError(t, err)
		require.NoError(t, x.SetLayout("gpu", fleet.LayoutOf(cfg)))
		require.NoError(t, x.Apply("gpu", got))
		sc, err := x.Lookup(hashes, nil)
		require.NoError(t, err)
		require.Equal(t, want[0].Blocks, sc[0].Blocks, "layout %v", layout)
	}
}
