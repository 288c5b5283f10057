package paged_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// flushDevice holds the whole pool with sequences of fresh tokens, so
// every cached block is evicted (offloaded, with a host tier that
// offloads), then frees them.
func flushDevice(t *testing.T, m *paged.Manager, next *int32) {
	t.Helper()
	var ids []paged.SeqID
	for {
		*next++
		id, _, err := m.Create([]int32{*next}, nil)
		if errors.Is(err, paged.ErrNoSpace) {
			break
		}
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Zero(t, m.Stats().CachedBlocks, "the flush left cached blocks on the device")
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	m.TakeCopies(nil)
	m.TakeCheckpoints(nil)
}

// TestGroupsOffloadHit: a prefix cached in every group, evicted from the
// device to the host tier, is a hit for the next sequence sharing it under
// each kind's rule, onboarded group by group (directives, statistics and
// events naming the group); without offloading it is lost. Onboard ahead
// of admission moves the same blocks.
func TestGroupsOffloadHit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []paged.Group
		// onboards is the blocks each group must onboard for the hit.
		onboards []int
	}{
		// The hit is 4 blocks: full attention needs all 4, a window of 8
		// tokens the last ceil(7/4) = 2, a chunk of 12 tokens the blocks
		// of the chunk holding position 16 (block 3), a state group its
		// checkpoint's 2 pages.
		{"full and window", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}}, []int{4, 2}},
		{"full and chunked", []paged.Group{{}, {Kind: paged.ChunkedLocal, Chunk: 12}}, []int{4, 1}},
		{"two full", []paged.Group{{}, {}}, []int{4, 4}},
		{"full and two windows", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.SlidingWindow, Window: 8}}, []int{4, 2, 2}},
		{"full, state and shared", []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.Shared}}, []int{4, 2, 0}},
	} {
		for _, ahead := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ahead=%v", tc.name, ahead), func(t *testing.T) {
				hit := func(offload bool) (int, *paged.Manager, paged.SeqID) {
					m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 49, HostBlocks: 64, Events: 1024,
						Groups: tc.groups, DisableOffload: !offload})
					require.NoError(t, err)
					prefix := seqOf(1, 16)
					with := func(tail int32) []int32 {
						return append(append([]int32(nil), prefix...), tail, tail+1, tail+2, tail+3, tail+4)
					}
					// Two sequences branching after the prefix: the second
					// asks for a state checkpoint there (checkpoint.go).
					a, _, err := m.Create(with(1000), nil)
					require.NoError(t, err)
					b, _, err := m.Create(with(2000), nil)
					require.NoError(t, err)
					m.TakeCheckpoints(nil)
					require.NoError(t, m.Free(a))
					require.NoError(t, m.Free(b))
					next := int32(1 << 20)
					flushDevice(t, m, &next)
					m.TakeSwaps(nil)
					m.DrainEvents(nil)
					c, err := m.Add(append(append([]int32(nil), prefix...), 3000), nil)
					require.NoError(t, err)
					if ahead {
						n, err := m.Onboard(c)
						require.NoError(t, err)
						want := 0
						if offload {
							for _, o := range tc.onboards {
								want += o
							}
						}
						assert.Equal(t, want, n, "Onboard")
						require.NoError(t, m.Check())
					}
					cached, err := m.Admit(c)
					require.NoError(t, err)
					require.NoError(t, m.Check())
					return cached, m, c
				}
				cached, m, c := hit(true)
				assert.Equal(t, 16, cached, "with offloading")
				// The onboard directives name their group, and the
				// statistics and events count them per group.
				per := make([]int, len(tc.groups))
				for _, d := range m.TakeSwaps(nil) {
					if d.Kind == paged.Onboard {
						per[d.Group]++
					}
				}
				moved := make([]int, len(tc.groups))
				for _, e := range m.DrainEvents(nil) {
					if e.Kind == paged.BlockMoved && e.From == paged.Host && e.Medium == paged.Device {
						moved[e.Group] += len(e.Hashes)
						if tc.groups[e.Group].Kind == paged.State {
							// As a BlockStored of it: vLLM's frames store it again.
							assert.Len(t, e.Tokens, m.BlockSize(), "the checkpoint's block's tokens")
							assert.False(t, e.HasParent)
						}
					}
				}
				for g, want := range tc.onboards {
					st, err := m.TierStatsGroup(g)
					require.NoError(t, err)
					assert.EqualValues(t, want, st.Onboards, "group %d onboards", g)
					assert.Equal(t, want, per[g], "group %d onboard directives", g)
					if tc.groups[g].Kind == paged.State {
						// Its pages are no KV events: the checkpoint is one,
						// back on the device once its last page is.
						assert.Equal(t, min(want, 1), moved[g], "the checkpoint moves once")
					} else {
						assert.Equal(t, want, moved[g], "group %d BlockMoved events", g)
					}
				}
				if tc.groups[1].Kind == paged.State {
					// The hit copies the onboarded checkpoint into the
					// sequence's own state pages.
					own, err := m.TableGroup(c, 1)
					require.NoError(t, err)
					copies := m.TakeCopies(nil)
					require.Len(t, copies, 2)
					assert.Equal(t, own, []allocator.BlockID{copies[0].Dst, copies[1].Dst})
				}
				cached, _, _ = hit(false)
				assert.Zero(t, cached, "without offloading the evicted prefix is lost")
			})
		}
	}
}

// TestGroupsOffloadPerGroupKey: the same content cached in two groups is
// two host entries, and one group's host copy is no hit for the other.
func TestGroupsOffloadPerGroupKey(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17, HostBlocks: 32,
		Groups: []paged.Group{{}, {}}})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 9), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	st := m.Stats().Tiers
	g0, err := m.TierStatsGroup(0)
	require.NoError(t, err)
	g1, err := m.TierStatsGroup(1)
	require.NoError(t, err)
	assert.Equal(t, 2, g0.HostCached, "group 0's two full blocks")
	assert.Equal(t, 2, g1.HostCached, "group 1's, the same hashes")
	assert.EqualValues(t, g0.Offloads+g1.Offloads, st.Offloads)
	require.NoError(t, m.Check())
	// A snapshot lists each host copy under its group.
	var snap paged.Snapshot
	m.Snapshot(&snap)
	host := map[int]int{}
	for _, b := range snap.Blocks {
		if b.Medium == paged.Host {
			host[b.Group]++
		}
	}
	assert.Equal(t, map[int]int{0: 2, 1: 2}, host)
}

// TestGroupsOffloadCheckpointEvents: a checkpoint is one KV event of its
// state group; offloading its pages keeps it whole, and moves it to the
// host: one BlockMoved of the checkpoint, not one per page, and a
// snapshot lists it once, on the host (removals are checked against
// snapshots by TestAudit14MultiKindFastPathsLookupAndReads). Before, its
// events and snapshots always said the device, though a hit had to
// onboard it.
func TestGroupsOffloadCheckpointEvents(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 49, HostBlocks: 64, Events: 4096,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	var ids []paged.SeqID
	for _, tail := range []int32{1000, 2000} {
		id, _, err := m.Create(append(seqOf(1, 16), tail, tail, tail, tail, tail), nil)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Len(t, m.TakeCheckpoints(nil), 1)
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	st, err := m.TierStatsGroup(1)
	require.NoError(t, err)
	assert.Equal(t, 2, st.HostCached, "the checkpoint's pages are on the host")
	var kinds []paged.EventKind
	var hashes []paged.Hash
	for _, e := range m.DrainEvents(nil) {
		if e.Group == 1 {
			kinds = append(kinds, e.Kind)
			hashes = append(hashes, e.Hashes...)
			if e.Kind == paged.BlockMoved {
				assert.Equal(t, paged.Device, e.From)
				assert.Equal(t, paged.Host, e.Medium)
			}
		}
	}
	assert.Equal(t, []paged.EventKind{paged.BlockStored, paged.BlockMoved}, kinds, "stored, then moved once")
	require.Len(t, hashes, 2)
	assert.Equal(t, hashes[0], hashes[1], "the checkpoint's hash both times")
	var snap paged.Snapshot
	m.Snapshot(&snap)
	state := 0
	for _, b := range snap.Blocks {
		if b.Group == 1 {
			state++
			assert.Equal(t, paged.Host, b.Medium, "the checkpoint is on the host")
		}
	}
	assert.Equal(t, 1, state, "the offloaded checkpoint, once")
	require.NoError(t, m.Check())
}

// TestGroupsOffloadHostileTierStatsGroup: TierStatsGroup refuses a group
// out of range, and any group without a host tier.
func TestGroupsOffloadHostileTierStatsGroup(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 8,
		Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}}})
	require.NoError(t, err)
	for _, g := range []int{-1, 2, 1 << 30} {
		_, err := m.TierStatsGroup(g)
		assert.ErrorIs(t, err, paged.ErrInvalid, "group %d", g)
	}
	none, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	_, err = none.TierStatsGroup(0)
	assert.ErrorIs(t, err, paged.ErrNoHostTier)
	single, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 8})
	require.NoError(t, err)
	_, err = single.TierStatsGroup(0)
	assert.NoError(t, err, "a model of one kind has group 0")
	_, err = single.TierStatsGroup(1)
	assert.ErrorIs(t, err, paged.ErrInvalid)
}

// TestGroupsOffloadHostileOnboard: Onboard of a hybrid manager refuses a
// stale handle, a running sequence and a pool too full to take the
// blocks, changing nothing.
func TestGroupsOffloadHostileOnboard(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 21, HostBlocks: 32,
		Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}}})
	require.NoError(t, err)
	prompt := seqOf(1, 17)
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	_, err = m.Onboard(a)
	assert.ErrorIs(t, err, paged.ErrSequenceState, "a running sequence")
	require.NoError(t, m.Free(a))
	_, err = m.Onboard(a)
	assert.ErrorIs(t, err, paged.ErrUnknownSequence, "a freed handle")
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	// Hold the whole pool again: the host hit has nowhere to go.
	var held []paged.SeqID
	for {
		next++
		id, _, err := m.Create([]int32{next}, nil)
		if err != nil {
			break
		}
		held = append(held, id)
	}
	b, err := m.Add(prompt, nil)
	require.NoError(t, err)
	before := m.Stats()
	_, err = m.Onboard(b)
	assert.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, before, m.Stats(), "a refused Onboard changes nothing")
	require.NoError(t, m.Check())
	for _, id := range held {
		require.NoError(t, m.Free(id))
	}
	n, err := m.Onboard(b)
	require.NoError(t, err)
	assert.Equal(t, 6, n, "4 full-attention blocks and the window's 2")
	require.NoError(t, m.Check())
}

// TestGroupsOffloadKeepsHitsOnAReplay: on a small W1-H-like replay
// (conversations whose turns extend the previous turn, over a pool that
// cannot keep them all, with a sliding-window group), a host tier that
// offloads makes hits survive GPU eviction: more admitted hit tokens than
// the same replay without offloading, every step checked.
func TestGroupsOffloadKeepsHitsOnAReplay(t *testing.T) {
	replay := func(offload bool) (hits int, onboards uint64) {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 97, HostBlocks: 256, DisableOffload: !offload,
			Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 16}}})
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(1, 2))
		const convs = 24
		history := make([][]int32, convs)
		system := seqOf(1, 32) // a system prompt every conversation shares
		next := int32(1 << 20)
		for turn := range 200 {
			c := rng.IntN(convs)
			if history[c] == nil {
				history[c] = append([]int32(nil), system...)
			}
			// The user's message, then the reply the model decodes.
			for range 4 + rng.IntN(12) {
				next++
				history[c] = append(history[c], next)
			}
			if len(history[c]) > 160 {
				history[c] = append([]int32(nil), system...) // a new conversation
			}
			id, cached, err := m.Create(history[c], nil)
			require.NoError(t, err, "turn %d", turn)
			hits += cached
			for range 2 + rng.IntN(10) {
				next++
				require.NoError(t, m.Append(id, next))
				history[c] = append(history[c], next)
			}
			require.NoError(t, m.Free(id))
			require.NoError(t, m.Check(), "turn %d", turn)
			m.TakeSwaps(nil)
			m.TakeCopies(nil)
		}
		return hits, m.Stats().Tiers.Onboards
	}
	with, onboards := replay(true)
	without, _ := replay(false)
	t.Logf("admitted hit tokens: %d with offloading (%d blocks onboarded), %d without", with, onboards, without)
	assert.Positive(t, onboards)
	assert.Greater(t, with, without, "offloading must keep hits the device evicted")
}

// TestGroupsOffloadSteadyStateAllocs: a hybrid admission whose hit comes
// back from the host tier (the lookup on both tiers, the onboarding, the
// offloads its allocations cause) allocates nothing once buffers have
// grown.
func TestGroupsOffloadSteadyStateAllocs(t *testing.T) {
	for _, other := range []paged.Group{{Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 49, HostBlocks: 256,
			Groups: []paged.Group{{}, other}})
		require.NoError(t, err)
		prompt := make([]int32, 0, 64)
		fresh := make([]int32, 1)
		swaps := make([]paged.Swap, 0, 256)
		copies := make([]paged.Copy, 0, 64)
		cks := make([]paged.Checkpoint, 0, 8)
		held := make([]paged.SeqID, 0, 64)
		next := int32(1 << 20)
		create := func(p []int32) paged.SeqID {
			id, err := m.Add(p, nil)
			if err != nil {
				panic(err)
			}
			if _, err := m.Admit(id); err != nil {
				panic(err)
			}
			return id
		}
		round := int32(0)
		cycle := func() {
			round++
			// Two sequences branch after a prefix (a state checkpoint is
			// taken there), end, and are flushed to the host by traffic
			// holding the pool; a third shares the prefix.
			prefix := func() {
				prompt = prompt[:0]
				for k := range int32(16) {
					prompt = append(prompt, round*100+k)
				}
			}
			var ab [2]paged.SeqID
			for i := range ab {
				prefix()
				prompt = append(prompt, int32(i), int32(i), int32(i), int32(i), int32(i))
				ab[i] = create(prompt)
			}
			cks = m.TakeCheckpoints(cks[:0])
			for _, id := range ab {
				_ = m.Free(id)
			}
			held = held[:0]
			for {
				next++
				fresh[0] = next
				id, err := m.Add(fresh, nil)
				if err != nil {
					panic(err)
				}
				if a, _ := m.CanAdmit(id); a != paged.AdmitOK { // an error would allocate
					_ = m.Free(id)
					break
				}
				if _, err := m.Admit(id); err != nil {
					panic(err)
				}
				held = append(held, id)
			}
			for _, id := range held {
				_ = m.Free(id)
			}
			prefix()
			id := create(append(prompt, 7))
			swaps = m.TakeSwaps(swaps[:0])
			copies = m.TakeCopies(copies[:0])
			cks = m.TakeCheckpoints(cks[:0])
			_ = m.Free(id)
		}
		for range 4 {
			cycle()
		}
		before := m.Stats().Tiers.Onboards
		assert.Zero(t, testing.AllocsPerRun(20, cycle), "%v", other.Kind)
		assert.Greater(t, m.Stats().Tiers.Onboards, before, "the cycles must onboard")
		require.NoError(t, m.Check())
	}
}

// BenchmarkGroupsOffloadChurn is BenchmarkOffloadChurn with a sliding
// window group: prompts of 33 tokens (2 full blocks of 16 and one token)
// take turns on a device that holds one of them, so every Create finds its
// prefix on the host in both groups (2 full-attention blocks, the window's
// 1), onboards it and offloads the previous prompt's blocks. The
// one-group figure is measured beside it (x-one-group).
func BenchmarkGroupsOffloadChurn(b *testing.B) {
	var one float64
	for _, layout := range []struct {
		name   string
		groups []paged.Group
		blocks int
	}{
		{"one", nil, 4},
		{"full+window16", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 16}}, 7},
	} {
		b.Run(layout.name, func(b *testing.B) {
			m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: layout.blocks, HostBlocks: 64, Groups: layout.groups})
			require.NoError(b, err)
			prompts := make([][]int32, 8)
			for i := range prompts {
				prompts[i] = seqTokens(33, int32(100*i))
			}
			buf := make([]paged.Swap, 0, 64)
			i, hits := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				id, cached, _ := m.Create(prompts[i%len(prompts)], nil)
				_ = m.Free(id)
				buf = m.TakeSwaps(buf[:0])
				i, hits = i+1, hits+cached
			}
			st := m.Stats().Tiers
			b.ReportMetric(float64(st.Onboards)/float64(b.N), "onboards/op")
			b.ReportMetric(float64(hits)/float64(b.N), "hit-tokens/op")
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if layout.groups == nil {
				one = perOp
			} else if one > 0 {
				b.ReportMetric(perOp/one, "x-one-group")
			}
		})
	}
}
