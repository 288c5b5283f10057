package kvevents_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// TestOnboardedBlocksReachFrames: a prefix offloaded to the host and
// onboarded again by a hit is on the device, and a router fed the
// server's events as vLLM frames must see it there. vLLM's schema has no
// move, so the encoder writes a move as a removal; before, nothing told
// the frame reader the blocks were back, and the router scored the server
// nothing for a prefix it holds on the device until the blocks were
// evicted and computed again. The manager's onboard move now carries the
// blocks' tokens and parent, and the encoder adds a BlockStored.
func TestOnboardedBlocksReachFrames(t *testing.T) {
	for _, groups := range [][]paged.Group{nil, {{}, {Kind: paged.SlidingWindow, Window: 3}}} {
		cfg := paged.Config{BlockSize: 2, NumBlocks: 12, HostBlocks: 16, Events: 1024, Groups: groups}
		m, err := paged.New(cfg)
		require.NoError(t, err)
		exact, err := fleet.New(fleet.Config{})
		require.NoError(t, err)
		framed, err := fleet.New(fleet.Config{})
		require.NoError(t, err)
		for _, x := range []*fleet.Index{exact, framed} {
			require.NoError(t, x.SetLayout("s", fleet.LayoutOf(cfg)))
		}
		enc, err := kvevents.NewEncoder(kvevents.EncoderConfig{Layout: kvevents.MapLayout})
		require.NoError(t, err)
		var stream kvevents.Stream
		var batch uint64
		var evs []paged.Event
		feed := func() {
			evs = m.DrainEvents(evs[:0])
			require.NoError(t, exact.Apply("s", evs))
			frame, err := enc.AppendBatch(nil, 0, evs)
			require.NoError(t, err)
			got, err := stream.Decode(batch, frame)
			batch++
			require.NoError(t, err)
			require.NoError(t, framed.Apply("s", got))
		}
		prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
		id, _, err := m.Create(prompt, nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
		// Other prompts push it out to the host.
		for k := range 2 {
			other := []int32{int32(100 * (k + 1)), 2, 3, 4, 5, 6, 7, 8, 9}
			o, _, err := m.Create(other, nil)
			require.NoError(t, err)
			require.NoError(t, m.Free(o))
		}
		require.Positive(t, m.Stats().Tiers.Offloads)
		id, cached, err := m.Create(prompt, nil)
		require.NoError(t, err)
		require.Positive(t, cached, "%v: the prefix comes back from the host", groups)
		require.Positive(t, m.Stats().Tiers.Onboards)
		m.TakeSwaps(nil)
		feed()
		hashes, err := m.BlockHashes(nil, prompt, nil)
		require.NoError(t, err)
		want, err := exact.Lookup(hashes[:4], nil)
		require.NoError(t, err)
		got, err := framed.Lookup(hashes[:4], nil)
		require.NoError(t, err)
		require.Equal(t, cached/2, want[0].Device, "%v", groups)
		require.Equal(t, want[0].Blocks, got[0].Blocks, "%v: the prefix onboarded back to the device, scored through vLLM frames", groups)
		require.Equal(t, want[0].Device, got[0].Device, "%v", groups)
		require.NoError(t, m.Free(id))
	}
}
