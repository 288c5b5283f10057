package paged_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// TestMultiKindHit: on a Hymba-like layout (full attention, a state group
// and two sliding windows of different sizes) three requests share a
// system prompt: the first computes it, the second branches after it (a
// checkpoint of every state group is taken there), the third hits it
// whole: full-attention blocks [0, L), each window's own blocks before L,
// and the checkpoint at L, copied into its own state pages.
func TestMultiKindHit(t *testing.T) {
	const bs = 4
	groups := []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.SlidingWindow, Window: 5}, {Kind: paged.SlidingWindow, Window: 12}, {Kind: paged.State, Pages: 1}}
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 128, Groups: groups})
	require.NoError(t, err)
	system := seqOf(1, 24) // 6 blocks
	prompt := func(tail int) []int32 { return append(append([]int32(nil), system...), seqOf(tail, 6)...) }
	var cached [3]int
	for i := range 3 {
		id, n, err := m.Create(prompt(1000*(i+1)), nil)
		require.NoError(t, err)
		cached[i] = n
		cks := m.TakeCheckpoints(nil)
		if i == 1 {
			require.Len(t, cks, 2, "the branch point's checkpoint, one per state group")
			for _, c := range cks {
				assert.Equal(t, 24, c.Tokens)
				assert.Len(t, c.Pages, groups[c.Group].Pages)
			}
		}
		if i == 2 {
			copies := m.TakeCopies(nil)
			assert.Len(t, copies, 3, "the checkpoint's pages copied into the sequence's state")
			win5, err := m.TableGroup(id, 2)
			require.NoError(t, err)
			win12, err := m.TableGroup(id, 3)
			require.NoError(t, err)
			// A hit at 24 needs ceil(4/4) = 1 block of the 5-token
			// window and ceil(11/4) = 3 of the 12-token one.
			assert.Equal(t, []allocator.BlockID{0, 0, 0, 0, 0}, win5[:5])
			assert.NotEqual(t, allocator.BlockID(0), win5[5])
			assert.Equal(t, []allocator.BlockID{0, 0, 0}, win12[:3])
			assert.NotContains(t, win12[3:6], allocator.BlockID(0))
		}
		require.NoError(t, m.Check())
		require.NoError(t, m.Free(id))
		m.EndStep() // each request's step runs before the next comes
	}
	assert.Equal(t, [3]int{0, 0, 24}, cached, "the second branches, the third hits")
}

// A model with state, sliding-window and full-attention layers (Hymba's
// layout): requests sharing a system prompt hit it once a checkpoint of
// the state is cached at its end, with the window before it.
func ExampleGroup_severalKinds() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Groups: []paged.Group{
		{Kind: paged.FullAttention},
		{Kind: paged.State, Pages: 2},
		{Kind: paged.SlidingWindow, Window: 8},
	}})
	system := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for turn := range 3 {
		prompt := append([]int32(nil), system...)
		for k := range int32(5) { // the request's own tokens
			prompt = append(prompt, int32(100*turn)+k)
		}
		id, cached, _ := m.Create(prompt, nil)
		// The server writes the checkpoints the manager asks for while
		// computing the step, and applies the copies before it.
		for _, c := range m.TakeCheckpoints(nil) {
			fmt.Printf("request %d: write group %d's state after %d tokens\n", turn, c.Group, c.Tokens)
		}
		fmt.Printf("request %d: %d tokens cached, %d state pages copied\n", turn, cached, len(m.TakeCopies(nil)))
		_ = m.Free(id)
	}
	// Output:
	// request 0: 0 tokens cached, 0 state pages copied
	// request 1: write group 1's state after 12 tokens
	// request 1: 0 tokens cached, 0 state pages copied
	// request 2: 12 tokens cached, 2 state pages copied
}

// TestMultiKindUnifiedWithoutCaching: without prefix caching vLLM v1 takes
// any groups (its coordinator without a prefix cache), and so does the
// vLLM-compatible mode: every group grows, slides and is released by its
// own rule, with no hits.
func TestMultiKindUnifiedWithoutCaching(t *testing.T) {
	groups := []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 6}, {Kind: paged.ChunkedLocal, Chunk: 12}, {Kind: paged.State, Pages: 2}, {Kind: paged.SlidingWindow, Window: 17}}
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 200, Groups: groups, UnifiedFreeQueue: true, DisablePrefixCaching: true})
	require.NoError(t, err)
	var ids []paged.SeqID
	for i := range 4 {
		id, cached, err := m.Create(seqOf(1, 30), nil) // one prompt: no hit all the same
		require.NoError(t, err)
		assert.Zero(t, cached)
		for k := range 3 + 7*i {
			require.NoError(t, m.Append(id, int32(100+k)))
		}
		ids = append(ids, id)
		require.NoError(t, m.Check())
	}
	n := 30 + 3 + 7*3
	win, err := m.TableGroup(ids[3], 1)
	require.NoError(t, err)
	// The next query, at n, reads [n-5, n]: blocks before (n-5)/4 are null.
	released := slices.IndexFunc(win, func(b allocator.BlockID) bool { return b != 0 })
	assert.Equal(t, (n-5)/4, released)
	c, err := m.Fork(ids[3])
	require.NoError(t, err)
	assert.Len(t, m.TakeCopies(nil), 2, "the child's own state pages")
	require.NoError(t, m.Preempt(ids[0]))
	require.NoError(t, m.Free(c))
	require.NoError(t, m.Check())
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	require.NoError(t, m.Check())
	assert.Zero(t, m.Stats().UsedBlocks)
}

// TestMultiKindSteadyStateAllocs: on a layout of several kinds (full
// attention, two windows, two state groups, a chunk) the fixed-point
// lookup, admission with a checkpoint hit, decode with the windows and
// the chunk sliding, preemption and resumption, and finishing allocate
// nothing once buffers have grown.
func TestMultiKindSteadyStateAllocs(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 1024, Groups: []paged.Group{
		{}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}, {Kind: paged.ChunkedLocal, Chunk: 12},
		{Kind: paged.SlidingWindow, Window: 19}, {Kind: paged.State, Pages: 1},
	}})
	require.NoError(t, err)
	cycle, hits := steadyChurn(m, seqOf(1, 16), 5, 8)
	for range 20 {
		cycle()
	}
	require.NoError(t, m.Check())
	require.Positive(t, *hits, "the shared prefix is hit through its checkpoint")
	assert.Zero(t, testing.AllocsPerRun(50, cycle))
	require.NoError(t, m.Check())
}
