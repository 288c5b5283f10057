package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// parkedAfterFree leaves m with one copy-on-write source parked and
// nothing else held: B, a fork of A (one full block and a partial one),
// copies A's partial block and fills it (so the copy's destination is
// committed to the prefix cache), then B and A finish in the same step.
// The copy is still live (its destination is free but cached, so a hit
// of the step could claim it), so A's partial block is parked until the
// step ends.
func parkedAfterFree(t *testing.T, m *paged.Manager) {
	t.Helper()
	a, err := m.Add([]int32{1, 2, 3, 4, 5, 6}, nil)
	noErr(t, err)
	_, err = m.Admit(a)
	noErr(t, err)
	b, err := m.Fork(a)
	noErr(t, err)
	m.EndStep()
	noErr(t, m.Append(b, 7))
	noErr(t, m.Append(b, 8)) // B's copy of block 2 is full: cached
	noErr(t, m.Free(b))
	noErr(t, m.Free(a))
	noErr(t, m.Check())
	if st := m.Stats(); st.UsedBlocks == 0 || st.Running != 0 {
		t.Fatalf("setup: %d blocks used, %d running; want the parked copy sources alone", st.UsedBlocks, st.Running)
	}
}

// TestResetCacheReleasesParkedSource: a reset with nothing running but a
// copy source parked for the step (blockPool.park) was refused with
// ErrCacheInUse ("1 blocks are held by 0 running sequences and 0 pins"),
// though nothing holds a block the caller could let go: the parked block
// goes at the end of the step, and only because a copy into a free cached
// block might be read by a hit of the step. The reset drops that cached
// block's content, so the copy is moot: the reset releases the parked
// source and drops the step's copies, and every block is free.
func TestResetCacheReleasesParkedSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  paged.Config
	}{
		{"default", paged.Config{BlockSize: 4, NumBlocks: 8}},
		{"unified", paged.Config{BlockSize: 4, NumBlocks: 8, UnifiedFreeQueue: true}},
		{"host+events", paged.Config{BlockSize: 4, NumBlocks: 8, HostBlocks: 8, Events: 64}},
		{"full+window", paged.Config{BlockSize: 4, NumBlocks: 16, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := paged.New(tc.cfg)
			noErr(t, err)
			parkedAfterFree(t, m)
			if err := m.ResetCache(); err != nil {
				t.Fatalf("ResetCache with only a parked copy source held: %v", err)
			}
			noErr(t, m.Check())
			st := m.Stats()
			// (The unified free queue keeps free blocks in the policy:
			// they count as cached there.)
			if st.UsedBlocks != 0 || st.FreeBlocks+st.CachedBlocks != st.UsableBlocks || !tc.cfg.UnifiedFreeQueue && st.CachedBlocks != 0 {
				t.Fatalf("after the reset: used %d, cached %d, free %d of %d; want every block free", st.UsedBlocks, st.CachedBlocks, st.FreeBlocks, st.UsableBlocks)
			}
			if c := m.TakeCopies(nil); len(c) != 0 {
				t.Fatalf("after the reset the step still has copies %v into blocks no one holds or caches", c)
			}
			// The whole pool is there for one long prompt, at once.
			long := make([]int32, st.UsableBlocks/max(1, len(tc.cfg.Groups))*4)
			for i := range long {
				long[i] = int32(100 + i)
			}
			id, err := m.Add(long, nil)
			noErr(t, err)
			_, err = m.Admit(id)
			noErr(t, err)
			noErr(t, m.Check())
			noErr(t, m.Free(id))
			// Nothing of A and B's is cached any more.
			id, err = m.Add([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
			noErr(t, err)
			hit, err := m.Admit(id)
			noErr(t, err)
			if hit != 0 {
				t.Fatalf("a prompt of A and B's tokens hit %d tokens after the reset", hit)
			}
			noErr(t, m.Check())
		})
	}
}

// TestResetCacheRefusedKeepsParkedSource: with the copy's destination
// still held (B runs), the reset is refused and changes nothing: the
// source stays parked, so nothing hands it out before the copy runs, and
// the copy reads what A wrote.
func TestResetCacheRefusedKeepsParkedSource(t *testing.T) {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 8})
	noErr(t, err)
	sh := &shadowKV{bs: bs, slot: map[int64]uint64{}}
	a := []int32{1, 2, 3, 4, 5, 6}
	A := admitAll(t, m, sh, a)[0]
	B, err := m.Fork(A)
	noErr(t, err)
	m.EndStep()
	noErr(t, m.Append(B, 7))
	noErr(t, m.Free(A)) // A's partial block is parked for B's copy
	before := m.Stats()
	if err := m.ResetCache(); !errors.Is(err, paged.ErrCacheInUse) {
		t.Fatalf("ResetCache while B runs: %v, want ErrCacheInUse", err)
	}
	noErr(t, m.Check())
	if after := m.Stats(); after != before {
		t.Fatalf("a refused reset changed the stats:\n%+v\n%+v", before, after)
	}
	// A prompt that takes every free block may not take the parked one.
	c := make([]int32, before.FreeBlocks*bs)
	for i := range c {
		c[i] = int32(50 + i)
	}
	admitAll(t, m, sh, c)
	copies := m.TakeCopies(nil)
	if len(copies) != 1 {
		t.Fatalf("copies %v, want B's one", copies)
	}
	sh.apply(copies)
	b := writeGrown(t, m, sh, B, a, 7)
	sh.readBack(t, m, B, 0, b, len(b))
	noErr(t, m.Check())
}

// TestResetCacheDropsFoldedCopies: with a host tier, a tier directive
// decided after a copy-on-write (here X's SwapOut) folds the copy into
// the tier's stream (a DeviceCopy swap). A reset with only the copy's
// source parked dropped the step's copies from TakeCopies' list but left
// the folded one in TakeSwaps', reading the source the reset had just
// freed, for a destination it had emptied (docs/tiers.md says the reset
// drops the copies): harmless as run in order, but a directive of the
// step that reads a free block. Now the stream loses it too.
func TestResetCacheDropsFoldedCopies(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 16})
	noErr(t, err)
	a, err := m.Add([]int32{1, 2, 3, 4, 5, 6}, nil)
	noErr(t, err)
	_, err = m.Admit(a)
	noErr(t, err)
	x, err := m.Add([]int32{50, 51, 52}, nil)
	noErr(t, err)
	_, err = m.Admit(x)
	noErr(t, err)
	b, err := m.Fork(a)
	noErr(t, err)
	m.EndStep()
	noErr(t, m.Append(b, 7)) // copies A's partial block
	noErr(t, m.Append(b, 8)) // the copy is full: cached, so live
	noErr(t, m.SwapOut(x))   // folds the copy into the tier's stream
	noErr(t, m.Free(x))
	noErr(t, m.Free(b))
	noErr(t, m.Free(a)) // A's partial block is parked
	noErr(t, m.Check())
	if st := m.Stats(); st.UsedBlocks != 1 {
		t.Fatalf("setup: %d blocks used, want the parked source alone", st.UsedBlocks)
	}
	noErr(t, m.ResetCache())
	noErr(t, m.Check())
	for _, d := range m.TakeSwaps(nil) {
		if d.Kind == paged.DeviceCopy {
			t.Errorf("after the reset the stream still copies block %d (free) into block %d (free, emptied)", d.Src, d.Dst)
		}
	}
	if c := m.TakeCopies(nil); len(c) != 0 {
		t.Errorf("after the reset the step still has copies %v", c)
	}
}
