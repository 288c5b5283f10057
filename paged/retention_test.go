package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The tests here each set up a moment where the shelves decide which cached
// blocks an allocation takes, and would fail with one LRU order over all
// cached blocks (the order before hybrid retention): there, the blocks
// released first go first.

// squeeze admits a filler sequence that allocates n blocks (one less if n
// is odd: it takes a block per group), taking them from the free list
// first and then from the cache, and returns it.
func squeeze(t *testing.T, m *paged.Manager, from, n int) paged.SeqID {
	t.Helper()
	bs := m.BlockSize()
	id, cached, err := m.Create(seqOf(from, n/2*bs), nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	require.NoError(t, m.Check())
	return id
}

// hitOf admits a probe with the given prompt and returns its cached
// tokens, then frees it.
func hitOf(t *testing.T, m *paged.Manager, prompt []int32) int {
	t.Helper()
	id, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	require.NoError(t, m.Check())
	return cached
}

func decode(t *testing.T, m *paged.Manager, id paged.SeqID, from, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, m.Append(id, int32(from+i)))
	}
	require.NoError(t, m.Check())
}

// TestRetentionLowShelfFirst: window blocks that slid out far from any hit
// point are given up before a finished sequence's blocks, though they were
// released later.
func TestRetentionLowShelfFirst(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 64, 8))
	require.NoError(t, err)
	// X finishes: its 2 full-attention blocks and the window before its
	// end go to the policy.
	x, _, err := m.Create(seqOf(1000, 8), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(x))
	// A slides 9 window blocks out, far from any hit point: low shelf.
	a, _, err := m.Create(seqOf(2000, 4), nil)
	require.NoError(t, err)
	decode(t, m, a, 3000, 40)
	low, high := paged.Shelves(m)
	require.Equal(t, 9, low)
	require.Zero(t, high)
	st := m.Stats()
	require.Zero(t, (st.FreeBlocks+low)%2)
	d := squeeze(t, m, 5000, st.FreeBlocks+low)
	low, _ = paged.Shelves(m)
	assert.Zero(t, low)
	require.NoError(t, m.Free(d))
	assert.Equal(t, 8, hitOf(t, m, seqOf(1000, 9)), "X's prefix survives")
}

// TestRetentionPinsBranchWindow: a sequence that shared a prefix at its
// first admission keeps the window before the prefix's end while it runs,
// so the prefix stays a hybrid hit however hard the pool is pressed.
func TestRetentionPinsBranchWindow(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 64, 8))
	require.NoError(t, err)
	prefix := seqOf(1, 16) // 4 blocks
	with := func(tail int) []int32 { return append(append([]int32(nil), prefix...), int32(tail), int32(tail+1)) }
	a, _, err := m.Create(with(500), nil)
	require.NoError(t, err)
	b, cached, err := m.Create(with(600), nil)
	require.NoError(t, err)
	require.Equal(t, 16, cached)
	require.NoError(t, m.Free(a))
	// B's window moves past the prefix: entries 2 and 3 (the window of
	// position 16) are pinned, 4 to 6 go to the low shelf.
	decode(t, m, b, 700, 20)
	low, _ := paged.Shelves(m)
	require.Equal(t, 5, low, "A's window blocks 0 and 1 and B's 4 to 6")
	st := m.Stats()
	avail := st.FreeBlocks + st.CachedBlocks
	d := squeeze(t, m, 5000, avail-avail%2)
	require.NoError(t, m.Free(d))
	assert.Equal(t, 16, hitOf(t, m, with(800)), "the shared prefix is still a hit")
	require.NoError(t, m.Free(b))
	require.NoError(t, m.Check())
}

// TestRetentionPreemptedHitOutlivesPolicy: a preempted sequence's hit
// (its full-attention chain and the window before its end) outlives a
// finished sequence's blocks released after it.
func TestRetentionPreemptedHitOutlivesPolicy(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 64, 8))
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 10), nil)
	require.NoError(t, err)
	decode(t, m, a, 100, 14) // 24 tokens, 6 full blocks
	require.NoError(t, m.Preempt(a))
	require.NoError(t, m.Append(a, 200)) // its next token, as a scheduler keeps it
	_, high := paged.Shelves(m)
	assert.Equal(t, 6+2, high, "6 full-attention blocks and the 2 window blocks before the end")
	x, _, err := m.Create(seqOf(1000, 8), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(x))
	st := m.Stats()
	low, _ := paged.Shelves(m)
	policy := st.CachedBlocks - low - high
	require.Equal(t, 4, policy)
	d := squeeze(t, m, 5000, st.FreeBlocks+low+policy)
	require.NoError(t, m.Free(d))
	cached, err := m.Admit(a)
	require.NoError(t, err)
	assert.Equal(t, 24, cached, "the whole sequence resumes from the cache")
	require.NoError(t, m.Check())
}

// TestRetentionFreeWaitingUnprotects: a preempted sequence that is dropped
// without resuming gives its high-shelf blocks back to the policy, so they
// go before another preempted sequence's hit.
func TestRetentionFreeWaitingUnprotects(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 64, 8))
	require.NoError(t, err)
	preempted := func(from int) paged.SeqID {
		id, _, err := m.Create(seqOf(from, 10), nil)
		require.NoError(t, err)
		decode(t, m, id, from+100, 14)
		require.NoError(t, m.Preempt(id))
		require.NoError(t, m.Append(id, int32(from+200)))
		return id
	}
	p := preempted(1)
	a := preempted(1000)
	_, high := paged.Shelves(m)
	require.Equal(t, 16, high)
	require.NoError(t, m.Free(a))
	_, high = paged.Shelves(m)
	assert.Equal(t, 8, high, "only P's hit is still protected")
	st := m.Stats()
	low, _ := paged.Shelves(m)
	d := squeeze(t, m, 5000, st.FreeBlocks+low+8)
	require.NoError(t, m.Free(d))
	cached, err := m.Admit(p)
	require.NoError(t, err)
	assert.Equal(t, 24, cached)
	require.NoError(t, m.Check())
}

// TestRetentionReleasesAcrossGroups: a sequence's blocks are released tail
// first across groups (full attention and window at each position), so
// giving up two blocks of a preempted sequence whose window reaches its
// start costs its hit one block, not two.
func TestRetentionReleasesAcrossGroups(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 65, 16))
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 16), nil)
	require.NoError(t, err)
	require.NoError(t, m.Preempt(a))
	require.NoError(t, m.Append(a, 99))
	st := m.Stats()
	require.Equal(t, 8, st.CachedBlocks)
	require.Equal(t, 56, st.FreeBlocks)
	d := squeeze(t, m, 5000, st.FreeBlocks+2)
	require.NoError(t, m.Free(d))
	cached, err := m.Admit(a)
	require.NoError(t, err)
	assert.Equal(t, 12, cached)
	require.NoError(t, m.Check())
}

// TestRetentionCompatUntouched: with UnifiedFreeQueue (vLLM's decisions)
// no block is ever shelved.
func TestRetentionCompatUntouched(t *testing.T) {
	cfg := hybridConfig(4, 64, 8)
	cfg.UnifiedFreeQueue = true
	m, err := paged.New(cfg)
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 10), nil)
	require.NoError(t, err)
	decode(t, m, a, 100, 30)
	require.NoError(t, m.Preempt(a))
	low, high := paged.Shelves(m)
	assert.Zero(t, low+high)
}

// steadyChurn starts n sequences on m, each the prefix and tail new
// tokens, and returns one cycle of a steady workload (8 decode steps of
// every sequence, one sequence preempted and resumed, one finished and
// replaced by a new one) and the hit tokens the new sequences' admissions
// found. Checkpoints and copies are drained as a server drains them.
func steadyChurn(m *paged.Manager, prefix []int32, tail, n int) (cycle func(), hits *int) {
	prompt := make([]int32, 0, len(prefix)+tail)
	ids := make([]paged.SeqID, n)
	cks := make([]paged.Checkpoint, 0, 16)
	copies := make([]paged.Copy, 0, 64)
	next := int32(1000)
	hits = new(int)
	start := func(i int) {
		prompt = append(prompt[:0], prefix...)
		for range tail {
			prompt = append(prompt, next)
			next++
		}
		id, err := m.Add(prompt, &paged.SeqOptions{MaxTokens: 64})
		if err != nil {
			panic(err)
		}
		cached, err := m.Admit(id)
		if err != nil {
			panic(err)
		}
		*hits += cached
		cks = m.TakeCheckpoints(cks[:0])
		copies = m.TakeCopies(copies[:0])
		ids[i] = id
	}
	for i := range ids {
		start(i)
	}
	round := 0
	cycle = func() {
		round++
		for range 8 {
			for _, id := range ids {
				next++
				if err := m.Append(id, next); err != nil {
					panic(err)
				}
			}
		}
		i := round % len(ids)
		if err := m.Preempt(ids[i]); err != nil {
			panic(err)
		}
		if _, err := m.Admit(ids[i]); err != nil {
			panic(err)
		}
		copies = m.TakeCopies(copies[:0])
		j := (round + 3) % len(ids)
		if err := m.Free(ids[j]); err != nil {
			panic(err)
		}
		start(j)
	}
	return cycle, hits
}

// TestRetentionSteadyStateAllocs: decode steps that slide windows and pin
// branch windows, preemption and resumption, and finishing and adding
// sequences allocate nothing once buffers have grown.
func TestRetentionSteadyStateAllocs(t *testing.T) {
	m, err := paged.New(hybridConfig(4, 512, 8))
	require.NoError(t, err)
	cycle, _ := steadyChurn(m, seqOf(1, 16), 2, 8)
	for range 20 {
		cycle()
	}
	require.NoError(t, m.Check())
	low, high := paged.Shelves(m)
	require.Positive(t, low+high)
	assert.Zero(t, testing.AllocsPerRun(50, cycle))
	require.NoError(t, m.Check())
}

// Example_hybridRetention: on a hybrid model, a preempted sequence's hit
// needs its whole full-attention chain and the window before its end. In
// the default mode the manager keeps those blocks until nothing
// speculative is left to evict, so the sequence resumes from the cache even
// though a later request needed room.
func Example_hybridRetention() {
	m, err := paged.New(paged.Config{
		BlockSize: 4,
		NumBlocks: 33, // 32 usable
		Groups: []paged.Group{
			{Kind: paged.FullAttention},
			{Kind: paged.SlidingWindow, Window: 8},
		},
	})
	if err != nil {
		panic(err)
	}
	prompt := func(from, n int) []int32 {
		p := make([]int32, n)
		for i := range p {
			p[i] = int32(from + i)
		}
		return p
	}
	a, _, _ := m.Create(prompt(1, 24), nil) // 6 blocks in each group
	_ = m.Preempt(a)
	_ = m.Append(a, 99) // its next token waits with it

	done, _, _ := m.Create(prompt(100, 16), nil) // a short request that finishes
	_ = m.Free(done)
	busy, _, _ := m.Create(prompt(200, 40), nil) // needs 20 blocks: takes the finished one's
	_ = m.Free(busy)

	cached, _ := m.Admit(a)
	fmt.Println("resumed with", cached, "of 25 tokens cached")
	// Output:
	// resumed with 24 of 25 tokens cached
}

// FuzzHybridRetention drives a small hybrid manager in the default mode (a
// full-attention group beside sliding-window or state groups, or groups of
// several kinds, so the
// shelves, pins and checkpoints are in play) with arbitrary operations on
// prompts that share prefixes, forks, rollbacks and swaps included: no
// call may panic, every invariant holds after each, and a call that fails
// leaves the occupancy as it was. The host tier, when drawn, offloads
// evicted blocks of every group or only swaps.
func FuzzHybridRetention(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 4, 3, 9, 0, 1, 4, 1, 2, 5, 0, 6, 7, 1, 0, 5, 2})
	f.Add([]byte{1, 2, 0, 1, 0, 1, 4, 0, 3, 6, 5, 1, 0, 2, 0, 4, 2, 8, 3})
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0, 4, 0, 4, 0, 4, 0, 5, 0, 1, 3, 0, 6, 8})
	f.Add([]byte{1, 3, 5, 1, 40, 3, 0, 0, 0, 0, 0, 4, 0, 4, 0, 5, 0, 1, 3, 0, 6, 8})
	f.Add([]byte{3, 4, 5, 9, 7, 40, 3, 1, 0, 2, 0, 4, 3, 9, 0, 1, 4, 1, 2, 5, 0, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 512 {
			return
		}
		a := &fuzzArgs{b: data}
		bs := 1 + int(a.byte()%4)
		groups := []paged.Group{{Kind: paged.FullAttention}}
		switch layout := a.byte() % 5; layout {
		case 0:
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 1 + int(a.byte()%(4*byte(bs)))})
		case 1:
			pages := 1 + int(a.byte()%3)
			for range 1 + int(a.byte()%3) {
				groups = append(groups, paged.Group{Kind: paged.State, Pages: pages})
			}
		case 2:
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 1 + int(a.byte()%8)},
				paged.Group{Kind: paged.Shared, Target: 1}, paged.Group{Kind: paged.FullAttention})
		case 3: // several kinds: a window and states of two sizes (Hymba)
			groups = append(groups, paged.Group{Kind: paged.State, Pages: 1}, paged.Group{Kind: paged.SlidingWindow, Window: 1 + int(a.byte()%8)},
				paged.Group{Kind: paged.State, Pages: 1 + int(a.byte()%2)})
		case 4: // two windows and a chunk
			w := 1 + int(a.byte()%8)
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: w}, paged.Group{Kind: paged.ChunkedLocal, Chunk: 1 + int(a.byte()%12)},
				paged.Group{Kind: paged.SlidingWindow, Window: w + 1 + int(a.byte()%8)})
		}
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 8 + int(a.byte()%56), Groups: groups,
			MaxModelLen: 24, Events: 8, HostBlocks: int(a.byte() % 24), DisableOffload: a.byte()%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		prefixes := [][]int32{seqOf(1, 3*bs), seqOf(100, 2*bs+1)}
		var ids []paged.SeqID
		var batch paged.Batch
		handle := func() paged.SeqID {
			if len(ids) == 0 {
				return 0
			}
			return ids[int(a.byte())%len(ids)]
		}
		for len(a.b) > 0 {
			before := m.Stats()
			op := a.byte() % 17
			var err error
			switch op {
			case 15:
				_, err = m.Onboard(handle())
			case 16:
				if _, serr := m.TierStatsGroup(int(int8(a.byte()))); serr == nil && m.Config().HostBlocks == 0 {
					t.Fatal("TierStatsGroup without a host tier")
				}
			case 9:
				var id paged.SeqID
				if id, err = m.Fork(handle()); err == nil {
					ids = append(ids, id)
				}
			case 10:
				err = m.Truncate(handle(), a.int())
			case 11:
				err = m.SwapOut(handle())
			case 12:
				err = m.SwapIn(handle())
			case 13:
				err = m.AppendSpeculative(handle(), a.tokens()...)
			case 14:
				err = m.AcceptSpeculative(handle(), a.int())
			case 0:
				p := append(append([]int32(nil), prefixes[a.byte()%2]...), a.tokens()...)
				var id paged.SeqID
				if id, _, err = m.Create(p, nil); err == nil {
					ids = append(ids, id)
				}
			case 1:
				_, err = m.Admit(handle())
			case 2, 3:
				err = m.Append(handle(), a.tokens()...)
			case 4:
				err = m.Preempt(handle())
			case 5:
				err = m.Free(handle())
			case 6:
				m.TakeCheckpoints(nil)
				m.TakeCopies(nil)
				m.DrainEvents(nil)
			case 7:
				err = m.BuildBatch(&batch, []paged.Scheduled{{ID: handle(), NewTokens: 1}})
			case 8:
				err = m.ResetCache()
			}
			if cerr := m.Check(); cerr != nil {
				t.Fatalf("op %d: %v", op, cerr)
			}
			after := m.Stats()
			if err != nil && (after.FreeBlocks != before.FreeBlocks || after.CachedBlocks != before.CachedBlocks ||
				after.UsedBlocks != before.UsedBlocks || after.Running != before.Running) {
				t.Fatalf("op %d failed with %v but changed the manager: %+v -> %+v", op, err, before, after)
			}
		}
	})
}

// TestRetentionSwapOutReleasesPins: a swapped-out sequence holds no device
// block, its pins and pending checkpoint included.
func TestRetentionSwapOutReleasesPins(t *testing.T) {
	for _, g := range []paged.Group{{Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}} {
		cfg := paged.Config{BlockSize: 4, NumBlocks: 64, HostBlocks: 64, DisableOffload: true,
			Groups: []paged.Group{{Kind: paged.FullAttention}, g}}
		m, err := paged.New(cfg)
		require.NoError(t, err)
		prompt := func(tail int32) []int32 { return append(seqOf(1, 16), tail, tail+1, tail+2, tail+3, tail+4) }
		a, _, err := m.Create(prompt(100), nil)
		require.NoError(t, err)
		b, _, err := m.Create(prompt(200), nil)
		require.NoError(t, err)
		m.TakeCheckpoints(nil)
		decode(t, m, b, 500, 20) // b's window leaves the shared prefix: pins
		c, _, err := m.Create(prompt(300), nil)
		require.NoError(t, err) // c may ask for a checkpoint
		stepDone(m)
		for _, id := range []paged.SeqID{b, c} {
			require.NoError(t, m.SwapOut(id), "%v", g.Kind)
			require.NoError(t, m.Check(), "%v", g.Kind)
		}
		require.NoError(t, m.Free(a))
		for _, id := range []paged.SeqID{b, c} {
			require.NoError(t, m.SwapIn(id))
			require.NoError(t, m.Check())
			require.NoError(t, m.Free(id))
		}
		require.NoError(t, m.Check())
		assert.Zero(t, m.Stats().UsedBlocks, "%v", g.Kind)
	}
}
