package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// snapshotKey names one cached (content, group, tier) of a snapshot.
type snapshotKey struct {
	h paged.Hash
	g int
	m paged.Medium
}

// a61Held counts the cached blocks of a snapshot by content, group and
// tier.
func a61Held(snap *paged.Snapshot) map[snapshotKey]int {
	held := map[snapshotKey]int{}
	for _, b := range snap.Blocks {
		held[snapshotKey{b.Hash, b.Group, b.Medium}]++
	}
	return held
}

// a61Follow folds the events numbered after the snapshot's Seq into its
// counts, as a consumer that resynced from it does.
func a61Follow(t *testing.T, held map[snapshotKey]int, seq uint64, evs []paged.Event) {
	t.Helper()
	for _, ev := range evs {
		if ev.Seq <= seq {
			continue
		}
		for _, h := range ev.Hashes {
			switch ev.Kind {
			case paged.BlockStored:
				held[snapshotKey{h, ev.Group, ev.Medium}]++
			case paged.BlockRemoved, paged.BlockMoved:
				k := snapshotKey{h, ev.Group, ev.Medium}
				if ev.Kind == paged.BlockMoved {
					held[k]++
					k.m = ev.From
				}
				require.Positive(t, held[k], "event %d takes content the snapshot and the stream do not hold", ev.Seq)
				if held[k]--; held[k] == 0 {
					delete(held, k)
				}
			default:
				t.Fatalf("event %d: %v not expected here", ev.Seq, ev.Kind)
			}
		}
	}
}

// TestAudit61SnapshotSealsQueuedEvents: a Snapshot includes every event
// up to its Seq and none after, so a consumer that resyncs from it and
// follows the events numbered after Seq knows the cache. Consecutive
// removals of one group merge into one queued event, and one queued
// before a Snapshot took in a removal made after it, under the number
// the snapshot reported: the consumer skipped it and kept the content
// for good. fleet's TestHybridScoresAreManagerHits found it (seed
// 6031255117283609365: a sliding-window server scored a block it no
// longer held, after a resync).
func TestAudit61SnapshotSealsQueuedEvents(t *testing.T) {
	for _, groups := range [][]paged.Group{nil, {{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}}} {
		// Two usable blocks: a freed prompt caches both, and each prompt
		// of one token after it evicts one, with no store (its block is
		// not full).
		m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 3, Events: 64})
		if groups != nil {
			m, err = paged.New(paged.Config{BlockSize: 2, NumBlocks: 5, Events: 64, Groups: groups})
		}
		require.NoError(t, err)
		id, _, err := m.Create([]int32{1, 2, 3, 4}, nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
		// Drained twice, the queue is empty and back on the arena the
		// stores filled, which has room: a removal after another merges.
		m.DrainEvents(nil)
		m.DrainEvents(nil)
		one := func(tok int32) {
			t.Helper()
			_, _, err := m.Create([]int32{tok}, nil)
			require.NoError(t, err)
		}
		one(7)
		var snap paged.Snapshot
		require.NoError(t, m.Snapshot(&snap))
		held := a61Held(&snap)
		require.NotEmpty(t, held, "the snapshot has a cached block left to evict")
		one(8)
		a61Follow(t, held, snap.Seq, m.DrainEvents(nil))
		var now paged.Snapshot
		require.NoError(t, m.Snapshot(&now))
		require.Equal(t, a61Held(&now), held, "groups %v: the snapshot and the events after it", groups)
	}
}

// TestAudit61SnapshotSealsQueuedOnboards: blocks onboarded one after
// another along a chain merge into one queued event too, and one a
// Snapshot reported took in an onboard made after it. The host tier
// holds a chain of two blocks; the device has room for both, so the two
// onboards make two consecutive moves, the snapshot between them.
func TestAudit61SnapshotSealsQueuedOnboards(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 4, HostBlocks: 8, Events: 64})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	// Three prompts of one token evict (offload) the chain's two blocks;
	// freed, their blocks are free (nothing in them is cached).
	var ones []paged.SeqID
	for _, tok := range []int32{9, 8, 7} {
		q, _, err := m.Create([]int32{tok}, nil)
		require.NoError(t, err)
		ones = append(ones, q)
	}
	for _, q := range ones {
		require.NoError(t, m.Free(q))
	}
	m.TakeSwaps(nil)
	m.DrainEvents(nil)
	m.DrainEvents(nil)
	onboard := func(prompt ...int32) {
		t.Helper()
		x, err := m.Add(prompt, nil)
		require.NoError(t, err)
		n, err := m.Onboard(x)
		require.NoError(t, err)
		require.Equal(t, 1, n, "blocks onboarded for %v", prompt)
		m.TakeSwaps(nil)
	}
	onboard(1, 2, 5)
	var snap paged.Snapshot
	require.NoError(t, m.Snapshot(&snap))
	held := a61Held(&snap)
	onboard(1, 2, 3, 4, 5)
	a61Follow(t, held, snap.Seq, m.DrainEvents(nil))
	var now paged.Snapshot
	require.NoError(t, m.Snapshot(&now))
	require.Equal(t, a61Held(&now), held, "the snapshot and the events after it")
}
