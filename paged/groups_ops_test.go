package paged_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// windowSharedConfig is full attention, a window of 8 and a group sharing
// the window group's KV, at 4 tokens a block.
func windowSharedConfig(blocks, host int) paged.Config {
	return paged.Config{BlockSize: 4, NumBlocks: blocks, Events: 256, HostBlocks: host, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.Shared, Target: 1}}}
}

func tablesOf(t *testing.T, m *paged.Manager, id paged.SeqID) [][]allocator.BlockID {
	t.Helper()
	var out [][]allocator.BlockID
	for g := range len(m.Config().Groups) {
		tb, err := m.TableGroup(id, g)
		require.NoError(t, err)
		out = append(out, append([]allocator.BlockID(nil), tb...))
	}
	return out
}

// TestGroupsForkCopyOnWrite: a child shares every attention group's
// blocks, null entries included; the first write into a shared partly
// filled block copies it in each group that holds one, and the other
// sequence then writes its own in place.
func TestGroupsForkCopyOnWrite(t *testing.T) {
	m, err := paged.New(windowSharedConfig(64, 0))
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 14), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(p, 1)) // slides the window: block 0 released
	before := tablesOf(t, m, p)
	require.Equal(t, allocator.BlockID(0), before[1][0])
	c, err := m.Fork(p)
	require.NoError(t, err)
	assert.Equal(t, before, tablesOf(t, m, c), "the child shares every table")
	assert.Empty(t, m.TakeCopies(nil), "fork copies nothing without a state group")
	require.NoError(t, m.Check())

	require.NoError(t, m.Append(c, 2))
	copies := m.TakeCopies(nil)
	require.Len(t, copies, 2, "one copy per group holding a shared partly filled block")
	assert.Equal(t, before[0][3], copies[0].Src)
	assert.Equal(t, before[1][3], copies[1].Src)
	after := tablesOf(t, m, c)
	assert.Equal(t, copies[0].Dst, after[0][3])
	assert.Equal(t, copies[1].Dst, after[1][3])
	assert.Equal(t, after[1], after[2], "the shared group reads the window group's table")
	assert.Equal(t, before, tablesOf(t, m, p), "the parent keeps its blocks")
	require.NoError(t, m.Append(p, 3))
	assert.Empty(t, m.TakeCopies(nil), "the parent is now the last block's only owner")
	assert.Equal(t, uint64(2), m.Stats().Copies)
	require.NoError(t, m.Check())
}

// TestGroupsForkState: a child gets state pages of its own, filled by Copy
// directives from the parent's, and Fork refuses with ErrNoSpace, changing
// nothing, when the pool cannot give them.
func TestGroupsForkState(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 6), nil) // 2 full-attention blocks + 2 pages
	require.NoError(t, err)
	c, err := m.Fork(p)
	require.NoError(t, err)
	pp, _ := m.TableGroup(p, 1)
	cp, _ := m.TableGroup(c, 1)
	assert.Equal(t, []paged.Copy{{Src: pp[0], Dst: cp[0]}, {Src: pp[1], Dst: cp[1]}}, m.TakeCopies(nil))
	require.NoError(t, m.Check())

	_, err = m.Fork(p) // 2 pages needed, 8-2-2-2 = 2 available
	require.NoError(t, err)
	before := m.Stats()
	_, err = m.Fork(p)
	assert.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, before, m.Stats())
	require.NoError(t, m.Check())
}

// TestGroupsSpeculative: drafts do not slide a window group; rejecting
// them all leaves the accepted tokens' window readable, and accepted
// drafts are committed in every group.
func TestGroupsSpeculative(t *testing.T) {
	m, err := paged.New(windowSharedConfig(64, 0))
	require.NoError(t, err)
	id, _, err := m.Create(seqOf(1, 9), nil)
	require.NoError(t, err)
	stored := m.Stats().BlocksStored
	require.NoError(t, m.AppendSpeculative(id, seqOf(100, 12)...))
	win, _ := m.TableGroup(id, 1)
	assert.NotContains(t, win, allocator.BlockID(0), "drafts slide nothing: the window of position 9 reads block 0")
	assert.Equal(t, stored, m.Stats().BlocksStored, "drafts are not committed")
	require.NoError(t, m.Check())
	require.NoError(t, m.AcceptSpeculative(id, 0))
	n, _ := m.Len(id)
	assert.Equal(t, 9, n)
	require.NoError(t, m.Check())

	require.NoError(t, m.AppendSpeculative(id, seqOf(100, 12)...))
	require.NoError(t, m.AcceptSpeculative(id, 7)) // 16 tokens: blocks 2 and 3 fill
	assert.Equal(t, stored+2*2, m.Stats().BlocksStored, "two blocks in each of the two groups holding blocks")
	require.NoError(t, m.Append(id, 1))
	win, _ = m.TableGroup(id, 1)
	assert.Equal(t, allocator.BlockID(0), win[1], "accepted tokens slide the window")
	require.NoError(t, m.Check())
}

// TestGroupsSwap: swapping moves every group's blocks to the host and
// back; committed blocks the device index still holds under their (hash,
// group) key are reclaimed rather than copied back.
func TestGroupsSwap(t *testing.T) {
	m, err := paged.New(windowSharedConfig(64, 32))
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 14), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(a, 1, 2, 3))
	require.NoError(t, m.Append(a, 4)) // 18 tokens; from 17 on the window releases blocks 0 and 1
	b, err := m.Fork(a)
	require.NoError(t, err)
	require.NoError(t, m.Append(b, 4)) // b's last blocks are copies
	m.TakeCopies(nil)
	before := tablesOf(t, m, a)
	require.Equal(t, []allocator.BlockID{0, 0}, before[1][:2])

	require.NoError(t, m.SwapOut(a, b))
	swaps := m.TakeSwaps(nil)
	// a: 5 full + 3 window blocks; b shares all but its 2 copied last blocks.
	assert.Len(t, swaps, 5+3+2)
	for _, s := range swaps {
		assert.Equal(t, paged.SwapOut, s.Kind)
	}
	assert.Equal(t, 10, m.Stats().Tiers.HostUsed)
	require.NoError(t, m.Check())

	require.NoError(t, m.SwapIn(a, b))
	swaps = m.TakeSwaps(nil)
	// The 4 full blocks and the window's 2 full live blocks are still in
	// the device cache: only the 4 partly filled last blocks come back by
	// copy.
	assert.Len(t, swaps, 4)
	after := tablesOf(t, m, a)
	assert.Equal(t, before[0][:4], after[0][:4], "full-attention blocks reclaimed")
	assert.Equal(t, before[1][:4], after[1][:4], "window blocks reclaimed, released entries null")
	assert.Equal(t, after[1], after[2])
	assert.Zero(t, m.Stats().Tiers.HostUsed)
	require.NoError(t, m.Check())
	require.NoError(t, m.Append(a, 5))
	require.NoError(t, m.Append(b, 5))
	require.NoError(t, m.Check())
}

// TestGroupsSwapAllocationFree: a swap-out and swap-in cycle of a hybrid
// sequence allocates nothing once its buffers have grown.
func TestGroupsSwapAllocationFree(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 1025, HostBlocks: 1024, DisablePrefixCaching: true,
		Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 128}, {Kind: paged.Shared, Target: 0}}})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(400*16, 0), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(id, 1))
	buf := make([]paged.Swap, 0, 1024)
	var errs [2]error
	cycle := func() {
		errs[0] = m.SwapOut(id)
		buf = m.TakeSwaps(buf[:0])
		errs[1] = m.SwapIn(id)
		buf = m.TakeSwaps(buf[:0])
	}
	cycle()
	allocs := testing.AllocsPerRun(20, cycle)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	assert.Zero(t, allocs)
	// The window of position 6400 reads blocks 392 to 400.
	assert.Len(t, buf, 401+9, "every full block and the window's live blocks")
	require.NoError(t, m.Check())
}

// forkAndWrite forks parent, writes one token into the child, takes the
// copies into copies and frees the child.
func forkAndWrite(m *paged.Manager, parent paged.SeqID, copies []paged.Copy) ([]paged.Copy, error) {
	child, err := m.Fork(parent)
	if err != nil {
		return copies, err
	}
	if err := m.Append(child, 7); err != nil {
		return copies, err
	}
	copies = m.TakeCopies(copies[:0])
	return copies, m.Free(child)
}

// TestGroupsForkAllocationFree: forking a hybrid sequence, writing into
// the child (copies in every group, or of the state pages at the fork) and
// freeing it allocates nothing once the buffers have grown.
func TestGroupsForkAllocationFree(t *testing.T) {
	for _, other := range []paged.Group{
		{Kind: paged.SlidingWindow, Window: 64},
		{Kind: paged.ChunkedLocal, Chunk: 64},
		{Kind: paged.State, Pages: 3},
	} {
		m, err := paged.New(paged.Config{NumBlocks: 1024, Groups: []paged.Group{{}, other, {}}})
		require.NoError(t, err)
		parent, _, err := m.Create(seqOf(1, 1000), nil)
		require.NoError(t, err)
		var copies []paged.Copy
		cycle := func() { copies, err = forkAndWrite(m, parent, copies) }
		cycle()
		allocs := testing.AllocsPerRun(50, cycle)
		require.NoError(t, err, other.Kind)
		assert.Zero(t, allocs, other.Kind)
		want := 3 // the last block of each attention group
		if other.Kind == paged.State {
			want = 2 + 3 // two attention groups, and the state's pages at the fork
		}
		assert.Len(t, copies, want, other.Kind)
		require.NoError(t, m.Check())
	}
}

// ExampleGroup_fork: a forked sequence of a model with linear-attention
// layers (a State group) shares the attention blocks but gets its own
// state pages, copied from its parent's before the next step.
func ExampleGroup_fork() {
	m, err := paged.New(paged.Config{
		BlockSize: 4,
		NumBlocks: 64,
		Groups: []paged.Group{
			{Kind: paged.FullAttention},
			{Kind: paged.State, Pages: 2},
		},
	})
	if err != nil {
		panic(err)
	}
	parent, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
	child, _ := m.Fork(parent)
	for _, id := range []paged.SeqID{parent, child} {
		full, _ := m.TableGroup(id, 0)
		state, _ := m.TableGroup(id, 1)
		fmt.Println("full:", full, "state:", state)
	}
	fmt.Println("copies:", m.TakeCopies(nil))
	// Output:
	// full: [1 2] state: [3 4]
	// full: [1 2] state: [5 6]
	// copies: [{3 5} {4 6}]
}

// BenchmarkGroupsForkCopyOnWrite is BenchmarkForkCopyOnWrite with KV cache
// groups: fork a 1,000-token sequence, write one token into the child (a
// copy in every attention group; a state group's pages are copied at the
// fork), free the child. x-one-group is the time over the single-group
// cycle measured in the same sub-benchmark.
func BenchmarkGroupsForkCopyOnWrite(b *testing.B) {
	setup := func(groups []paged.Group) (*paged.Manager, paged.SeqID) {
		m, err := paged.New(paged.Config{NumBlocks: 1024, Groups: groups})
		if err != nil {
			b.Fatal(err)
		}
		parent, _, err := m.Create(seqOf(1, 1000), nil)
		if err != nil {
			b.Fatal(err)
		}
		return m, parent
	}
	var copies []paged.Copy
	cycle := func(m *paged.Manager, parent paged.SeqID) {
		var err error
		if copies, err = forkAndWrite(m, parent, copies); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		other paged.Group
	}{
		{"full+window", paged.Group{Kind: paged.SlidingWindow, Window: 128}},
		{"full+state", paged.Group{Kind: paged.State, Pages: 4}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			one, oneParent := setup(nil)
			const probeRuns = 20000
			start := time.Now()
			for range probeRuns {
				cycle(one, oneParent)
			}
			single := float64(time.Since(start).Nanoseconds()) / probeRuns
			m, parent := setup([]paged.Group{{}, tc.other})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cycle(m, parent)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/single, "x-one-group")
		})
	}
}

// TestGroupsForkDraftsStoredOnce: a block a fork shares while it holds
// drafts is committed by whichever accepts first and reported once per
// group; the other's acceptance finds it committed.
func TestGroupsForkDraftsStoredOnce(t *testing.T) {
	m, err := paged.New(windowSharedConfig(64, 0))
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 8), nil)
	require.NoError(t, err)
	require.NoError(t, m.AppendSpeculative(p, seqOf(50, 5)...)) // fills block 2 with drafts
	c, err := m.Fork(p)
	require.NoError(t, err)
	m.DrainEvents(nil)
	require.NoError(t, m.AcceptSpeculative(p, 5))
	require.NoError(t, m.AcceptSpeculative(c, 5))
	stored := map[int]int{}
	for _, e := range m.DrainEvents(nil) {
		if e.Kind == paged.BlockStored {
			require.NotEmpty(t, e.Hashes, "no empty BlockStored event")
			stored[e.Group] += len(e.Hashes)
		}
	}
	assert.Equal(t, map[int]int{0: 1, 1: 1}, stored, "block 2 stored once in each group holding blocks")
	require.NoError(t, m.Check())
}

// TestGroupsHostile: bad calls of the operations groups gained return
// their sentinel error and change nothing: statistics, every group's
// tables, pending directives.
func TestGroupsHostile(t *testing.T) {
	type world struct {
		m                 *paged.Manager
		run, swapped, wai paged.SeqID
	}
	build := func(t *testing.T, blocks, host int) *world {
		m, err := paged.New(windowSharedConfig(blocks, host))
		require.NoError(t, err)
		w := &world{m: m}
		w.run, _, err = m.Create(seqOf(1, 14), nil)
		require.NoError(t, err)
		require.NoError(t, m.Append(w.run, 1, 2, 3, 4)) // window block 0 released
		w.swapped, _, err = m.Create(seqOf(500, 6), nil)
		require.NoError(t, err)
		stepDone(m)
		require.NoError(t, m.SwapOut(w.swapped))
		w.wai, err = m.Add(seqOf(900, 5), nil)
		require.NoError(t, err)
		m.TakeSwaps(nil)
		return w
	}
	observe := func(w *world) string {
		out := fmt.Sprintf("%+v", w.m.Stats())
		for _, id := range []paged.SeqID{w.run, w.swapped, w.wai} {
			for g := range 3 {
				tb, _ := w.m.TableGroup(id, g)
				out += fmt.Sprint(tb)
			}
		}
		return out + fmt.Sprint(w.m.TakeCopies(nil), w.m.TakeSwaps(nil))
	}
	for _, tc := range []struct {
		name        string
		blocks      int
		host        int
		want        error
		call        func(w *world) error
		stateLayout bool
		fill        bool // exhaust the device pool first
	}{
		{"truncate to 0", 64, 32, paged.ErrInvalid, func(w *world) error { return w.m.Truncate(w.run, 0) }, false, false},
		{"truncate past the end", 64, 32, paged.ErrInvalid, func(w *world) error { return w.m.Truncate(w.run, 19) }, false, false},
		{"truncate past the window", 64, 32, paged.ErrInvalid, func(w *world) error { return w.m.Truncate(w.run, 10) }, false, false},
		{"truncate swapped", 64, 32, paged.ErrSequenceState, func(w *world) error { return w.m.Truncate(w.swapped, 2) }, false, false},
		{"accept without drafts", 64, 32, paged.ErrInvalid, func(w *world) error { return w.m.AcceptSpeculative(w.run, 1) }, false, false},
		{"draft to waiting", 64, 32, paged.ErrSequenceState, func(w *world) error { return w.m.AppendSpeculative(w.wai, 1) }, false, false},
		{"fork waiting", 64, 32, paged.ErrSequenceState, func(w *world) error { _, err := w.m.Fork(w.wai); return err }, false, false},
		{"fork swapped", 64, 32, paged.ErrSequenceState, func(w *world) error { _, err := w.m.Fork(w.swapped); return err }, false, false},
		{"swap out twice", 64, 32, paged.ErrInvalid, func(w *world) error { return w.m.SwapOut(w.run, w.run) }, false, false},
		{"swap out swapped", 64, 32, paged.ErrSequenceState, func(w *world) error { return w.m.SwapOut(w.swapped) }, false, false},
		{"swap in running", 64, 32, paged.ErrSequenceState, func(w *world) error { return w.m.SwapIn(w.run) }, false, false},
		{"swap out, host full", 64, 4, paged.ErrNoSpace, func(w *world) error { return w.m.SwapOut(w.run) }, false, false},
		{"swap in, device full", 16, 32, paged.ErrNoSpace, func(w *world) error { return w.m.SwapIn(w.swapped) }, false, true},
		{"drafts with a state, pool full", 64, 0, paged.ErrNoSpace, func(w *world) error { return w.m.AppendSpeculative(w.run, 1) }, true, true},
		{"drafts a state could never hold", 64, 0, paged.ErrNever, func(w *world) error { return w.m.AppendSpeculative(w.run, seqOf(1, 30)...) }, true, false},
		{"truncate a state", 64, 0, paged.ErrInvalid, func(w *world) error { return w.m.Truncate(w.run, 17) }, true, false},
		{"fork a state, pool full", 64, 0, paged.ErrNoSpace, func(w *world) error { _, err := w.m.Fork(w.run); return err }, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w *world
			if tc.stateLayout {
				m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: tc.blocks,
					Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.Shared}}})
				require.NoError(t, err)
				w = &world{m: m}
				w.run, _, err = m.Create(seqOf(1, 18), nil)
				require.NoError(t, err)
				m.TakeCopies(nil)
			} else {
				w = build(t, tc.blocks, tc.host)
			}
			if tc.fill {
				// Fill the device: a sequence grows block by block until
				// the pool is exhausted.
				filler, _, err := w.m.Create(seqOf(2000, 1), nil)
				require.NoError(t, err)
				for err == nil {
					err = w.m.Append(filler, 7, 7, 7, 7)
				}
				require.ErrorIs(t, err, paged.ErrNoSpace)
			}
			before := observe(w)
			require.ErrorIs(t, tc.call(w), tc.want)
			assert.Equal(t, before, observe(w), "a refused call changed the manager")
			require.NoError(t, w.m.Check())
		})
	}
}
