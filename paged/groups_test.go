package paged_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

func hybridConfig(bs, blocks, window int) paged.Config {
	return paged.Config{BlockSize: bs, NumBlocks: blocks, Events: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: window}}}
}

func TestGroupsConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []paged.Group
		host   int
		ok     bool
		// compat: the vLLM-compatible mode (UnifiedFreeQueue, prefix
		// caching on) takes the layout too; only one kind besides full
		// attention, of one size, as vLLM v1's hybrid coordinator.
		compat bool
	}{
		{"one full group", []paged.Group{{}}, 0, true, true},
		{"full and window", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 128}}, 0, true, true},
		{"two full, two windows", []paged.Group{{}, {}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.SlidingWindow, Window: 8}}, 0, true, true},
		{"window first", []paged.Group{{Kind: paged.SlidingWindow, Window: 8}, {}}, 0, false, false},
		{"window of zero", []paged.Group{{}, {Kind: paged.SlidingWindow}}, 0, false, false},
		{"full with a window", []paged.Group{{}, {Window: 8}}, 0, false, false},
		{"two window sizes", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.SlidingWindow, Window: 16}}, 0, true, false},
		// Hymba: state heads, sliding-window and full-attention layers.
		{"state, window and full", []paged.Group{{}, {Kind: paged.State, Pages: 3}, {Kind: paged.SlidingWindow, Window: 1024}}, 0, true, false},
		// Phi-4-mini-flash (SambaY): as Hymba, and later layers reading
		// the full-attention layer's KV.
		{"state, window, full and shared", []paged.Group{{}, {Kind: paged.State, Pages: 3}, {Kind: paged.SlidingWindow, Window: 512}, {Kind: paged.Shared}}, 0, true, false},
		{"chunked, window and state", []paged.Group{{}, {Kind: paged.ChunkedLocal, Chunk: 64}, {Kind: paged.SlidingWindow, Window: 16}, {Kind: paged.State, Pages: 1}}, 16, true, false},
		{"two state sizes", []paged.Group{{}, {Kind: paged.State, Pages: 1}, {Kind: paged.State, Pages: 2}}, 0, true, false},
		{"a multi-kind state too large", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 64}}, 0, false, false},
		{"a multi-kind window of zero", []paged.Group{{}, {Kind: paged.State, Pages: 1}, {Kind: paged.SlidingWindow}}, 0, false, false},
		{"unknown kind", []paged.Group{{}, {Kind: 9}}, 0, false, false},
		{"with a host tier that offloads", []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 8}}, 16, true, true},
		{"state groups with a host tier", []paged.Group{{}, {Kind: paged.State, Pages: 2}, {Kind: paged.State, Pages: 2}}, 16, true, true},
		{"too many", make([]paged.Group, 256), 0, false, false},
		// 64 blocks: 63 usable, so a state of 63 pages is the largest a
		// sequence could hold (with no room for its tokens besides:
		// admission says ErrNever).
		{"state as large as the pool", []paged.Group{{}, {Kind: paged.State, Pages: 63}}, 0, true, true},
		{"state larger than the pool", []paged.Group{{}, {Kind: paged.State, Pages: 64}}, 0, false, false},
		{"state of 2^40 pages", []paged.Group{{}, {Kind: paged.State, Pages: min(1<<40, math.MaxInt)}}, 0, false, false},
		{"state of MaxInt pages", []paged.Group{{}, {Kind: paged.State, Pages: math.MaxInt}}, 0, false, false},
	} {
		_, err := paged.New(paged.Config{NumBlocks: 64, Groups: tc.groups, HostBlocks: tc.host})
		if tc.host > 0 {
			// Swapping alone works with groups, as offloading does.
			_, swapOnly := paged.New(paged.Config{NumBlocks: 64, Groups: tc.groups, HostBlocks: tc.host, DisableOffload: true})
			assert.NoError(t, swapOnly, tc.name)
		}
		if tc.ok {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, paged.ErrInvalid, tc.name)
		}
		_, err = paged.New(paged.Config{NumBlocks: 64, Groups: tc.groups, HostBlocks: tc.host, UnifiedFreeQueue: true})
		if tc.compat {
			assert.NoError(t, err, "%s, vLLM-compatible", tc.name)
		} else {
			assert.ErrorIs(t, err, paged.ErrInvalid, "%s, vLLM-compatible", tc.name)
		}
		// Without prefix caching vLLM v1 takes any groups, and so does
		// the vLLM-compatible mode.
		_, err = paged.New(paged.Config{NumBlocks: 64, Groups: tc.groups, HostBlocks: tc.host, UnifiedFreeQueue: true, DisablePrefixCaching: true})
		assert.Equal(t, tc.ok, err == nil, "%s, vLLM-compatible without prefix caching: %v", tc.name, err)
	}
}

// TestGroupsHit: a hit needs the full-attention blocks of the whole prefix
// but, in the window group, only the blocks the window of the hit point
// reaches; the others are the null block.
func TestGroupsHit(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 64, 8))
	require.NoError(t, err)
	prompt := seqOf(1, 21) // 5 full blocks and one token
	a, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	assert.Zero(t, cached)
	for g := range 2 {
		tb, err := m.TableGroup(a, g)
		require.NoError(t, err)
		assert.Len(t, tb, 6, "group %d: every group allocates the whole prompt at admission", g)
		assert.NotContains(t, tb, allocator.BlockID(0))
	}
	require.NoError(t, m.Append(a, 99))
	win, err := m.TableGroup(a, 1)
	require.NoError(t, err)
	// The next query, at position 22, reads [15, 22]: blocks 3 to 5.
	assert.Equal(t, []allocator.BlockID{0, 0, 0}, win[:3], "blocks before the window are released")
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(a))

	b, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	assert.Equal(t, 20, cached, "the whole prefix but the last token hits")
	win, err = m.TableGroup(b, 1)
	require.NoError(t, err)
	// A window of 8 needs ceil(7/4) = 2 blocks before the hit point (20):
	// blocks 3 and 4; 0 to 2 stay null.
	assert.Equal(t, allocator.BlockID(0), win[0])
	assert.Equal(t, allocator.BlockID(0), win[2])
	assert.NotEqual(t, allocator.BlockID(0), win[3])
	assert.NotEqual(t, allocator.BlockID(0), win[4])
	require.NoError(t, m.Check())

	var groups []int
	for _, e := range m.DrainEvents(nil) {
		if e.Kind == paged.BlockStored {
			groups = append(groups, e.Group)
		}
	}
	assert.Contains(t, groups, 0)
	assert.Contains(t, groups, 1, "window-group blocks are stored events of group 1")
}

// TestGroupsRefused: what groups cannot do is refused with ErrInvalid and
// changes nothing: a per-sequence window, a group out of range, a rollback
// past a window's released blocks, and rolling back a state (past its
// drafts: TestStateDraftsFlow).
func TestGroupsRefused(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 64, 6))
	require.NoError(t, err)
	id, _, err := m.Create(seqOf(1, 10), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(id, 1, 2, 3))
	win, _ := m.TableGroup(id, 1)
	require.Equal(t, allocator.BlockID(0), win[0], "the window of position 13 released block 0")
	st, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	sid, _, err := st.Create(seqOf(1, 10), nil)
	require.NoError(t, err)
	for _, mm := range []*paged.Manager{m, st} {
		before := mm.Stats()
		for name, call := range map[string]func() error{
			"window option": func() error {
				_, err := mm.Add(seqOf(1, 4), &paged.SeqOptions{Window: 4})
				return err
			},
			"group out of range":   func() error { _, err := mm.TableGroup(id, 2); return err },
			"truncate past window": func() error { return m.Truncate(id, 8) },
			"truncate a state":     func() error { return st.Truncate(sid, 9) },
		} {
			assert.ErrorIs(t, call(), paged.ErrInvalid, name)
			assert.Equal(t, before, mm.Stats(), name)
		}
		require.NoError(t, mm.Check())
	}
	// The shortest length the window allows: the query at 9 reads [4, 9].
	require.NoError(t, m.Truncate(id, 9))
	require.NoError(t, m.Check())
}

// TestGroupsBatch: every group's row and slots in the batch, kept
// incrementally across steps, equal a batch built from scratch, and a
// steady decode step allocates nothing.
func TestGroupsBatch(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 512, 10))
	require.NoError(t, err)
	var sched []paged.Scheduled
	for i := range 8 {
		id, _, err := m.Create(seqOf(100*i, 5+i), &paged.SeqOptions{MaxTokens: 200})
		require.NoError(t, err)
		sched = append(sched, paged.Scheduled{ID: id, NewTokens: 1})
	}
	var kept paged.Batch
	for step := range 60 {
		for _, sc := range sched {
			require.NoError(t, m.Append(sc.ID, int32(step)))
		}
		require.NoError(t, m.BuildBatch(&kept, sched))
		var fresh paged.Batch
		require.NoError(t, m.BuildBatch(&fresh, sched))
		require.Len(t, kept.GroupTables, 1)
		assert.Equal(t, fresh.GroupTables, kept.GroupTables, "step %d", step)
		assert.Equal(t, fresh.GroupSlots, kept.GroupSlots, "step %d", step)
		for i, sc := range sched {
			win, err := m.TableGroup(sc.ID, 1)
			require.NoError(t, err)
			n, _ := m.Len(sc.ID)
			last := win[(n-1)/4]
			assert.Equal(t, int64(last)*4+int64((n-1)%4), kept.GroupSlots[0][i], "slot of the new token")
		}
	}
	require.NoError(t, m.Check())
	step := int32(1000)
	allocs := testing.AllocsPerRun(50, func() {
		step++
		for _, sc := range sched {
			if err := m.Append(sc.ID, step); err != nil {
				panic(err)
			}
		}
		if err := m.BuildBatch(&kept, sched); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
}

// ExampleGroup: a model with full-attention and sliding-window layers
// (Gemma 3, gpt-oss) keeps one table per group over one pool. The window
// group releases what its window no longer reaches.
func ExampleGroup() {
	m, err := paged.New(paged.Config{
		BlockSize: 4,
		NumBlocks: 64,
		Groups: []paged.Group{
			{Kind: paged.FullAttention},
			{Kind: paged.SlidingWindow, Window: 8},
		},
	})
	if err != nil {
		panic(err)
	}
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, nil)
	if err != nil {
		panic(err)
	}
	if err := m.Append(id, 15); err != nil {
		panic(err)
	}
	full, _ := m.TableGroup(id, 0)
	window, _ := m.TableGroup(id, 1)
	fmt.Println("full:  ", full)
	fmt.Println("window:", window)
	// Output:
	// full:   [1 2 3 4]
	// window: [0 6 7 8]
}

// TestGroupsWindowSlidesOnEveryPath appends one token at a time (the
// inline, one-token and general paths of Append) under every window up to
// four blocks, block sizes 1 to 16, with and without UnifiedFreeQueue, and
// checks after each that the window group has released exactly the
// blocks the window of the last appended position no longer reaches, and
// that group 0 holds a block for every token.
func TestGroupsWindowSlidesOnEveryPath(t *testing.T) {
	for _, bs := range []int{1, 2, 4, 16} {
		for w := 1; w <= 4*bs+1; w++ {
			for _, unified := range []bool{false, true} {
				cfg := hybridConfig(bs, 64, w)
				cfg.UnifiedFreeQueue = unified
				m, err := paged.New(cfg)
				require.NoError(t, err)
				prompt := seqOf(w*7+bs, 1+w%(2*bs)+bs)
				id, err := m.Add(prompt, nil)
				require.NoError(t, err)
				_, err = m.Admit(id)
				require.NoError(t, err)
				for i := range 6*bs + w {
					require.NoError(t, m.Append(id, int32(1000+i)))
					n, _ := m.Len(id)
					tab, err := m.TableGroup(id, 1)
					require.NoError(t, err)
					released := 0
					for released < len(tab) && tab[released] == 0 {
						released++
					}
					// The window slides from the position appended at.
					want := 0
					if c := n - 1; c-w+1 > 0 {
						want = (c - w + 1) / bs
					}
					require.Equal(t, want, released, "bs %d window %d unified %v: %d tokens", bs, w, unified, n)
					require.Len(t, tab, (n+bs-1)/bs)
					full, _ := m.Table(id)
					require.Len(t, full, (n+bs-1)/bs)
					require.NoError(t, m.Check())
				}
			}
		}
	}
}

// TestGroupsDecodeAllocsUnified: decode appends of a hybrid manager with
// vLLM's decisions (UnifiedFreeQueue), through every path (inline, block
// start, window slide), allocate nothing once the tables are sized.
func TestGroupsDecodeAllocsUnified(t *testing.T) {
	cfg := hybridConfig(4, 512, 16)
	cfg.UnifiedFreeQueue = true
	m, err := paged.New(cfg)
	require.NoError(t, err)
	var ids []paged.SeqID
	for i := range 8 {
		id, _, err := m.Create(seqOf(100*i, 5+i), &paged.SeqOptions{MaxTokens: 300})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	step := int32(0)
	decode := func() {
		step++
		for _, id := range ids {
			if err := m.Append(id, step); err != nil {
				panic(err)
			}
		}
	}
	for range 40 {
		decode()
	}
	assert.Zero(t, testing.AllocsPerRun(100, decode))
	require.NoError(t, m.Check())
}
