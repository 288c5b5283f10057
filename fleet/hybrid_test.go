package fleet_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestHybridScoresAreManagerHits: on a Memory backend, a server with a
// layout is scored exactly the hit its paged manager gives, for random
// hybrid layouts and workloads (fleettest.CheckHybridScores).
func TestHybridScoresAreManagerHits(t *testing.T) {
	compared, hits, corrected, partial := fleettest.CheckHybridScores(t, "hybrid", func(*rapid.T) fleet.Backend {
		m, err := fleet.NewMemory(fleet.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
	t.Logf("%d admissions compared exactly, %d with a hit, %d where group 0's run over-reported; %d on a partial server", compared, hits, corrected, partial)
	if hits == 0 || corrected == 0 {
		t.Fatalf("the workloads exercised too little: %d hits, %d corrected scores", hits, corrected)
	}
}

// hybridLayout is a layout of every kind the index scores: full
// attention, a 3-token window, a 4-token chunk, a state, a shared group,
// at 2 tokens a block.
var hybridLayout = fleet.Layout{BlockSize: 2, Groups: []paged.Group{
	{Kind: paged.FullAttention},
	{Kind: paged.SlidingWindow, Window: 3},
	{Kind: paged.ChunkedLocal, Chunk: 4},
	{Kind: paged.State},
	{Kind: paged.Shared, Target: 0},
}}

// stored is a BlockStored event of group g of test blocks, 2 tokens each.
func stored(seq uint64, g int, ids ...int) paged.Event {
	return paged.Event{Seq: seq, Kind: paged.BlockStored, Hashes: fleettest.Hs(ids...), Tokens: make([]int32, 2*len(ids)), BlockSize: 2, Group: g}
}

// TestLayoutScoresEachKind: each kind's rule, on hand-made events.
func TestLayoutScoresEachKind(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("gpu", hybridLayout))
	score := func(n int) fleet.Score {
		t.Helper()
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		sc, err := x.Lookup(fleettest.Hs(ids...), nil)
		require.NoError(t, err)
		require.Len(t, sc, 1)
		require.False(t, sc[0].Partial)
		return sc[0]
	}
	// Full attention for 6 blocks; the window (need 1 block at 2 tokens a
	// block: positions L-2, L-1 are block L-1) holds blocks 1, 3, 5;
	// the chunk (2 blocks) holds 2, 3; checkpoints after 2 and 4 blocks.
	require.NoError(t, x.Apply("gpu", []paged.Event{
		stored(1, 0, 0, 1, 2, 3, 4, 5),
		stored(2, 1, 1), stored(3, 1, 3), stored(4, 1, 5),
		stored(5, 2, 2, 3),
		stored(6, 3, 1), stored(7, 3, 3),
	}))
	// L=6: chunk [4,6) missing -> 4; window block 3, chunk [4,4) empty,
	// checkpoint after 4 blocks (block 3's hash): a hit of 4.
	assert.Equal(t, 4, score(6).Blocks)
	assert.Equal(t, 4, score(5).Blocks)
	// L=3: chunk [2,3) held, window block 2 missing -> window's hit 2
	// (block 1); checkpoint after 2 blocks; chunk at 2 is empty: 2.
	assert.Equal(t, 2, score(3).Blocks)
	assert.Equal(t, 0, score(1).Blocks, "no checkpoint after 1 block")
	// The checkpoint after 4 blocks goes: back to 2.
	require.NoError(t, x.Apply("gpu", []paged.Event{{Seq: 8, Kind: paged.BlockRemoved, Hashes: fleettest.Hs(3), Group: 3}}))
	assert.Equal(t, 2, score(6).Blocks)
	// Device: a full block on the host counts on the host.
	require.NoError(t, x.Apply("gpu", []paged.Event{{Seq: 9, Kind: paged.BlockMoved, Hashes: fleettest.Hs(0), From: paged.Device, Medium: paged.Host}}))
	sc := score(6)
	assert.Equal(t, 2, sc.Blocks)
	assert.Equal(t, 1, sc.Device)
}

// TestLayoutBadInput: a bad layout, a different layout for a server that
// has one, events the layout cannot describe: ErrInvalid, nothing changed.
func TestLayoutBadInput(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	for _, l := range []fleet.Layout{
		{},
		{BlockSize: 2},
		{BlockSize: 2, Groups: []paged.Group{{Kind: paged.SlidingWindow}}},
		{BlockSize: 2, Groups: []paged.Group{{Kind: paged.ChunkedLocal, Chunk: -1}}},
		{BlockSize: 2, Groups: []paged.Group{{}, {Kind: paged.Shared, Target: 5}}},
		{BlockSize: 2, Groups: []paged.Group{{Kind: paged.State}, {Kind: paged.Shared, Target: 0}}},
		{BlockSize: 2, Groups: []paged.Group{{Kind: paged.GroupKind(9)}}},
		{BlockSize: 2, Groups: make([]paged.Group, 256)},
		{BlockSize: fleet.MaxLayoutBlockSize + 1, Groups: []paged.Group{{}}},
		{BlockSize: 2, Groups: []paged.Group{{Kind: paged.ChunkedLocal, Chunk: fleet.MaxLayoutSpan + 1}}},
	} {
		require.ErrorIs(t, x.SetLayout("gpu", l), fleet.ErrInvalid, "%v", l)
	}
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Empty(t, st, "a refused layout registers nothing")

	require.NoError(t, x.SetLayout("gpu", hybridLayout))
	require.NoError(t, x.Apply("gpu", []paged.Event{stored(1, 0, 0, 1), stored(2, 1, 1), stored(3, 3, 1)}))
	other := hybridLayout
	other.BlockSize = 4
	require.ErrorIs(t, x.SetLayout("gpu", other), fleet.ErrInvalid)
	got, ok := x.Layout("gpu")
	require.True(t, ok)
	require.Equal(t, hybridLayout.String(), got.String())
	st, err = x.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, hybridLayout.String(), st[0].Layout)
	for _, ev := range []paged.Event{
		stored(5, 5, 2),  // no group 5
		stored(5, 4, 2),  // a shared group holds nothing
		stored(5, -1, 2), // no negative group
		{Seq: 5, Kind: paged.BlockStored, Hashes: fleettest.Hs(2), Tokens: make([]int32, 4), BlockSize: 4},
		{Seq: 5, Kind: paged.BlockRemoved, Hashes: fleettest.Hs(0), Group: 7},
	} {
		err := x.Apply("gpu", []paged.Event{{Seq: 4, Kind: paged.BlockRemoved, Hashes: fleettest.Hs(0)}, ev})
		require.ErrorIs(t, err, fleet.ErrInvalid, "%+v", ev)
	}
	snap := &paged.Snapshot{BlockSize: 4}
	require.ErrorIs(t, x.Resync("gpu", snap), fleet.ErrInvalid, "a snapshot of another block size")
	st, err = x.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(3), st[0].Seq, "nothing applied")
	sc, err := x.Lookup(fleettest.Hs(0, 1, 2), nil)
	require.NoError(t, err)
	require.Equal(t, 2, sc[0].Blocks, "the state after event 3: the removal of block 0 was refused with the bad event")
	for _, s := range []string{"", "b2", "x2 full", "b0 full", "b2 window", "b2 window:x", "b2 full:3", "b2 shared:1", "b2 mamba"} {
		_, err := fleet.ParseLayout(s)
		require.ErrorIs(t, err, fleet.ErrInvalid, "%q", s)
	}
	l, err := fleet.ParseLayout(hybridLayout.String())
	require.NoError(t, err)
	require.Equal(t, hybridLayout, l)
}

// TestLayoutOfPagedConfig: a paged.Config's layout, one group by default.
func TestLayoutOfPagedConfig(t *testing.T) {
	assert.Equal(t, "b16 full", fleet.LayoutOf(paged.Config{}).String())
	cfg := paged.Config{BlockSize: 2, Groups: []paged.Group{{}, {Kind: paged.State, Pages: 34}, {Kind: paged.SlidingWindow, Window: 128}}}
	assert.Equal(t, "b2 full state window:128", fleet.LayoutOf(cfg).String())
	h := fleettest.H(1)
	assert.Equal(t, h, fleet.GroupKey(&h, 0), "group 0 keeps the bare hash")
	assert.NotEqual(t, fleet.GroupKey(&h, 1), fleet.GroupKey(&h, 2))
}

// TestLayoutLookupAllocs: a lookup scoring servers with layouts
// allocates nothing once the scratch has grown, as one without does.
func TestLayoutLookupAllocs(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("a", hybridLayout))
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, 0, 0, 1, 2, 3), stored(2, 1, 3), stored(3, 2, 2, 3), stored(4, 3, 3)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, 0, 0, 1, 2)}))
	req := fleettest.Hs(0, 1, 2, 3, 4)
	var sc []fleet.Score
	sc, err = x.Lookup(req, sc)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(200, func() { sc, err = x.Lookup(req, sc[:0]) })
	require.NoError(t, err)
	assert.Zero(t, allocs)
	assert.Equal(t, 4, sc[0].Blocks)
	assert.Equal(t, 3, sc[1].Blocks)
}

// TestLayoutConcurrentServers: hybrid servers' streams applied from their
// own goroutines while others look up (run with -race); afterwards every
// score is its manager's hit.
func TestLayoutConcurrentServers(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	cfgs := []paged.Config{
		{BlockSize: 2, NumBlocks: 64, Events: 1 << 14, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 3}}},
		{BlockSize: 2, NumBlocks: 64, Events: 1 << 14, Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}},
		{BlockSize: 2, NumBlocks: 64, Events: 1 << 14, Groups: []paged.Group{{}, {Kind: paged.ChunkedLocal, Chunk: 4}, {Kind: paged.SlidingWindow, Window: 2}}},
	}
	prompt := func(i, n int) []int32 {
		p := make([]int32, n)
		for k := range p {
			p[k] = int32(1000*(i%3) + k)
		}
		return p
	}
	ms := make([]*paged.Manager, len(cfgs))
	var wg sync.WaitGroup
	for s, cfg := range cfgs {
		m, err := paged.New(cfg)
		require.NoError(t, err)
		ms[s] = m
		name := fmt.Sprintf("s%d", s)
		require.NoError(t, x.SetLayout(name, fleet.LayoutOf(cfg)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id, _, err := m.Create(prompt(i, 3+i%11), nil)
				if err == nil {
					m.TakeCheckpoints(nil)
					m.TakeCopies(nil)
					_ = m.Free(id)
				}
				if err := x.Apply(name, m.DrainEvents(nil)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Requests hashed ahead (a Manager serves one goroutine).
	hasher, err := paged.New(cfgs[0])
	require.NoError(t, err)
	var reqs [3][]paged.Hash
	for i := range reqs {
		reqs[i], err = hasher.BlockHashes(nil, prompt(i, 12), nil)
		require.NoError(t, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var sc []fleet.Score
		for i := range 300 {
			var err error
			if sc, err = x.Lookup(reqs[i%3], sc[:0]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	for s, m := range ms {
		for i := range 3 {
			p := prompt(i, 13)
			hashes, err := m.BlockHashes(nil, p, nil)
			require.NoError(t, err)
			sc, err := x.Lookup(hashes[:(len(p)-1)/2], nil)
			require.NoError(t, err)
			id, err := m.Add(p, nil)
			require.NoError(t, err)
			cached, err := m.Admit(id)
			require.NoError(t, err)
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			require.NoError(t, m.Free(id))
			require.NoError(t, x.Apply(fmt.Sprintf("s%d", s), m.DrainEvents(nil)))
			assert.Equal(t, cached, 2*sc[s].Blocks, "server %d prompt %d", s, i)
		}
	}
}

// TestRoutersFollowHybridHits: two hybrid servers hold a prompt's
// full-attention blocks; one has lost the window blocks a hit needs.
// Scored by group 0's run both look the same and the less loaded one,
// which would recompute the whole prompt, wins; with their layouts the
// routers send the request to the one that hits it.
func TestRoutersFollowHybridHits(t *testing.T) {
	cfg := paged.Config{BlockSize: 2, NumBlocks: 12, Events: 1024,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	serve := func(evict bool) *paged.Manager {
		m, err := paged.New(cfg)
		require.NoError(t, err)
		reqs := [][]int32{prompt}
		if evict {
			reqs = append(reqs, []int32{100, 101, 102, 103, 104})
		}
		for _, p := range reqs {
			id, _, err := m.Create(p, nil)
			require.NoError(t, err)
			require.NoError(t, m.Free(id))
		}
		return m
	}
	ms := map[string]*paged.Manager{"evicted": serve(true), "kept": serve(false)}
	next := prompt[:7]
	hashes, err := ms["kept"].BlockHashes(nil, next, nil)
	require.NoError(t, err)
	hashes = hashes[:3]
	for _, layouts := range []bool{false, true} {
		x, err := fleet.New(fleet.Config{})
		require.NoError(t, err)
		for _, name := range []string{"evicted", "kept"} {
			if layouts {
				require.NoError(t, x.SetLayout(name, fleet.LayoutOf(cfg)))
			}
			snap := &paged.Snapshot{}
			ms[name].Snapshot(snap)
			require.NoError(t, x.Resync(name, snap))
		}
		sc, err := x.Lookup(hashes, nil)
		require.NoError(t, err)
		cands := make([]fleet.Candidate, len(sc))
		for i, s := range sc {
			cands[i] = fleet.Candidate{Score: s, Prompt: len(next)}
			if s.Name == "kept" {
				cands[i].Load, cands[i].Work = 1, 4 // busier
			}
		}
		want := "evicted"
		if layouts {
			want = "kept"
		}
		for _, r := range []fleet.Router{fleet.PrefixAware{}, fleet.CostAware{BlockSize: 2}} {
			assert.Equal(t, want, cands[r.Route(cands)].Name, "%T, layouts %v", r, layouts)
		}
	}
	for name, hit := range map[string]int{"evicted": 0, "kept": 6} {
		id, err := ms[name].Add(next, nil)
		require.NoError(t, err)
		cached, err := ms[name].Admit(id)
		require.NoError(t, err)
		assert.Equal(t, hit, cached, name)
	}
}
