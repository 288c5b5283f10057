package paged

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// The twelfth mutation round's gaps in the host tier (tier.go;
// docs/testing.md "Mutation testing, twelfth round").

// a58Fill offloads content to the host tier: prompts of whole blocks,
// freed (cached), then one-token sequences until the pool refuses one
// (each evicting cached content to the host), freed in turn.
func a58Fill(t *testing.T, m *Manager, from int32, prompts, blocks int) {
	t.Helper()
	for p := range prompts {
		toks := make([]int32, blocks*m.bs)
		for i := range toks {
			toks[i] = from + int32(p*len(toks)+i)
		}
		id, _, err := m.Create(toks, nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
	}
	var ids []SeqID
	for k := int32(0); ; k++ {
		id, _, err := m.Create([]int32{from - 1 - k}, nil)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		require.NoError(t, err)
		ids = append(ids, id)
	}
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	m.TakeCopies(nil)
	m.TakeSwaps(nil)
	m.TakeCheckpoints(nil)
}

// TestAudit58CheckCatchesTierCorruption: Check names a host block whose
// reference count exceeds the host tables' entries (M697 let a count
// above them pass), a group's host count below the blocks it holds
// (M698), and host content of a group that caches none (M699).
func TestAudit58CheckCatchesTierCorruption(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		corrupt    func(m *Manager, swapped *sequence)
	}{
		{"extra host reference", "host table entries", func(m *Manager, s *sequence) { m.tier.pool.Ref(s.host[0]) }},
		{"group count too low", "blocks of group 0", func(m *Manager, _ *sequence) { m.tier.groups[0].HostCached-- }},
		{"content of a Shared group", "caches none", func(m *Manager, _ *sequence) {
			id, ok := allocator.BlockID(0), false
			m.tier.index.each(func(_ *Hash, b allocator.BlockID) {
				if !ok && m.tier.groupOf(b) == 1 {
					id, ok = b, true
				}
			})
			require.True(t, ok, "no offloaded window block")
			m.tier.group[id] = 2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 24, HostBlocks: 64,
				Groups: []Group{{}, {Kind: SlidingWindow, Window: 8}, {Kind: Shared, Target: 1}}})
			require.NoError(t, err)
			a58Fill(t, m, 1000, 2, 3)
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
			require.NoError(t, err)
			m.EndStep()
			require.NoError(t, m.SwapOut(id))
			m.TakeSwaps(nil)
			st, _ := m.TierStatsGroup(1)
			require.Positive(t, st.HostCached, "no window content on the host")
			require.NoError(t, m.Check())
			s, _ := m.seq(id)
			tc.corrupt(m, s)
			err = m.Check()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// a58Forgets is a host policy that records Forget calls (an LRU beside).
type a58Forgets struct {
	eviction.Policy
	forgot []allocator.BlockID
}

func (p *a58Forgets) Forget(id allocator.BlockID) { p.forgot = append(p.forgot, id) }

// TestAudit58HostForgetterIsTold: a host policy that keeps history
// (eviction.Forgetter) is told when offloaded content leaves a host block
// other than as its victim: onboarded back to the device (M665 did not
// find the policy's Forget) and given up by ResetCache (M691 skipped it).
// Otherwise its history of the old content carries over to whatever the
// block holds next.
func TestAudit58HostForgetterIsTold(t *testing.T) {
	var pol *a58Forgets
	m, err := New(Config{BlockSize: 4, NumBlocks: 12, HostBlocks: 32,
		HostPolicy: func(n int) eviction.Policy { pol = &a58Forgets{Policy: eviction.NewLRU(n)}; return pol }})
	require.NoError(t, err)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	id, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	a58Fill(t, m, 1000, 0, 0)
	require.Equal(t, 2, m.Stats().Tiers.HostCached, "the prompt's two blocks are on the host")
	id, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.Equal(t, 8, cached)
	require.Len(t, pol.forgot, 2, "onboarding two host blocks forgets them")
	require.NoError(t, m.Free(id))
	m.TakeSwaps(nil)
	a58Fill(t, m, 2000, 1, 2)
	host := m.Stats().Tiers.HostCached
	require.Positive(t, host)
	pol.forgot = pol.forgot[:0]
	require.NoError(t, m.ResetCache())
	require.Len(t, pol.forgot, host, "a reset forgets every host block")
	require.NoError(t, m.Check())
}

// TestAudit58CopiesFoldIntoTheStream: a copy-on-write copy decided before
// a tier directive goes into the stream ahead of it, once: a sequence
// forked, written into its shared last block, and swapped out in the
// same step must be copied before its blocks go to the host, or the host
// gets the block unwritten. M687 left the copy in TakeCopies (run after
// the stream); M688 put it in both.
func TestAudit58CopiesFoldIntoTheStream(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 16})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
	require.NoError(t, err)
	m.EndStep()
	b, err := m.Fork(a)
	require.NoError(t, err)
	require.NoError(t, m.Append(b, 7))
	tb, _ := m.Table(b)
	ta, _ := m.Table(a)
	require.NoError(t, m.SwapOut(b))
	swaps := m.TakeSwaps(nil)
	require.NotEmpty(t, swaps)
	require.Equal(t, Swap{Src: ta[1], Dst: tb[1], Kind: DeviceCopy}, swaps[0], "the copy first: %v", swaps)
	for _, w := range swaps[1:] {
		require.Equal(t, SwapOut, w.Kind, "%v", swaps)
	}
	require.Empty(t, m.TakeCopies(nil), "the copy is in the stream, not pending too")
	require.NoError(t, m.Check())
}

// TestAudit58HostCheckpointGoneIsReported: a state checkpoint whose pages
// the host tier gives up is reported removed (on the host), so a consumer
// replaying the events holds what Snapshot lists. M682 did not tell the
// checkpoint bookkeeping, and the checkpoint stayed on the host for the
// consumer after its pages were gone.
func TestAudit58HostCheckpointGoneIsReported(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 49, HostBlocks: 10, Events: 1 << 14,
		Groups: []Group{{}, {Kind: State, Pages: 2}}})
	require.NoError(t, err)
	base := make([]int32, 16)
	for i := range base {
		base[i] = int32(1 + i)
	}
	var ids []SeqID
	for _, tail := range []int32{1000, 2000} {
		id, _, err := m.Create(append(append([]int32(nil), base...), tail, tail, tail, tail, tail), nil)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Len(t, m.TakeCheckpoints(nil), 1)
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	a58Fill(t, m, 1<<20, 0, 0)
	st, _ := m.TierStatsGroup(1)
	require.Equal(t, 2, st.HostCached, "the checkpoint's pages are on the host")
	for r := range 4 { // new content pushes the pages out of the host
		a58Fill(t, m, int32(2<<20+r*4096), 2, 4)
	}
	st, _ = m.TierStatsGroup(1)
	require.Zero(t, st.HostCached, "the checkpoint's pages are still on the host")
	held := map[Hash]Medium{} // group 1, as a consumer replays it
	for _, e := range m.DrainEvents(nil) {
		if e.Group != 1 {
			continue
		}
		for _, h := range e.Hashes {
			switch e.Kind {
			case BlockStored, BlockMoved:
				held[h] = e.Medium
			case BlockRemoved:
				delete(held, h)
			}
		}
	}
	var snap Snapshot
	require.NoError(t, m.Snapshot(&snap))
	listed := map[Hash]Medium{}
	for _, b := range snap.Blocks {
		if b.Group == 1 {
			listed[b.Hash] = b.Medium
		}
	}
	require.Equal(t, listed, held, "group 1 by the events against the snapshot")
	require.NoError(t, m.Check())
}

// TestAudit58EventNames: every event kind and medium is named as vLLM's
// KV events spell it (M752 and M753 left BlockMoved and AllBlocksCleared
// unnamed; no test printed them), and a kind out of range says so.
func TestAudit58EventNames(t *testing.T) {
	for k, want := range map[EventKind]string{
		BlockStored: "BlockStored", BlockRemoved: "BlockRemoved", AllBlocksCleared: "AllBlocksCleared",
		BlockMoved: "BlockMoved", 0: "EventKind(?)", BlockMoved + 1: "EventKind(?)",
	} {
		require.Equal(t, want, k.String(), "kind %d", uint8(k))
	}
	require.Equal(t, "GPU", Device.String())
	require.Equal(t, "CPU", Host.String())
}
