package paged_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// stateOf is what page j of state group g holds after tokens: the state
// depends on every token so far.
func stateOf(g, j int, tokens []int32) uint64 { return hyKV(1000*g+j, tokens) }

// ckSeq is a sequence of the checkpoint model.
type ckSeq struct {
	id     paged.SeqID
	tokens []int32
	run    bool
	// cached: tokens the last admission found; fresh: tokens not computed
	// yet (the next step computes them).
	cached, fresh int
}

// ckModel drives a manager with state groups as a server would: a step
// applies the Copy directives, checks that a resumed or hitting sequence's
// state pages now hold the state after its cached tokens, writes the
// Checkpoint directives' states, then computes: every state page holds the
// state after all tokens, and the full-attention blocks the KV of theirs.
type ckModel struct {
	m      *paged.Manager
	groups []paged.Group
	bs     int
	seqs   []*ckSeq
	page   map[allocator.BlockID]uint64 // state pages
	kv     map[int64]uint64             // full-attention slots
	hits   int
	// hostPage and hostKV are the host tier's copies; ckptOnboards counts
	// checkpoint pages moved back from it.
	hostPage     map[allocator.BlockID]uint64
	hostKV       map[int64]uint64
	ckptOnboards int
}

// transfer runs the tier directives as a server does: each block's state
// page value and KV slots move between the device and the host, and the
// source of an offload or onboard is poisoned (it is handed out again).
func (c *ckModel) transfer(t *rapid.T) {
	for _, d := range c.m.TakeSwaps(nil) {
		if d.Kind == paged.DeviceCopy {
			// A state copy (step's Copy) decided before a later directive
			// of the stream.
			c.page[d.Dst] = c.page[d.Src]
			continue
		}
		if d.Kind != paged.Offload && d.Kind != paged.Onboard {
			t.Fatalf("unexpected directive %+v", d)
		}
		srcP, dstP, srcK, dstK := c.page, c.hostPage, c.kv, c.hostKV
		if d.Kind == paged.Onboard {
			srcP, dstP, srcK, dstK = dstP, srcP, dstK, srcK
			if c.groups[d.Group].Kind == paged.State {
				c.ckptOnboards++
			}
		}
		dstP[d.Dst], srcP[d.Src] = srcP[d.Src], 0
		for off := range int64(c.bs) {
			dstK[int64(d.Dst)*int64(c.bs)+off] = srcK[int64(d.Src)*int64(c.bs)+off]
			srcK[int64(d.Src)*int64(c.bs)+off] = 0
		}
	}
}

func (c *ckModel) tables(t *rapid.T, s *ckSeq, g int) []allocator.BlockID {
	tb, err := c.m.TableGroup(s.id, g)
	if err != nil {
		t.Fatalf("TableGroup(%v, %d): %v", s.id, g, err)
	}
	return tb
}

func (c *ckModel) step(t *rapid.T) {
	c.transfer(t)
	for _, cp := range c.m.TakeCopies(nil) {
		c.page[cp.Dst] = c.page[cp.Src]
	}
	for _, s := range c.seqs {
		if !s.run || s.fresh == 0 || s.cached == 0 {
			continue
		}
		for g := range c.groups {
			if c.groups[g].Kind != paged.State {
				continue
			}
			for j, b := range c.tables(t, s, g) {
				if c.page[b] != stateOf(g, j, s.tokens[:s.cached]) {
					t.Fatalf("%v hit %d tokens but state group %d page %d (block %d) holds another state", s.id, s.cached, g, j, b)
				}
			}
		}
	}
	for _, ck := range c.m.TakeCheckpoints(nil) {
		var s *ckSeq
		for _, x := range c.seqs {
			if x.id == ck.Seq {
				s = x
			}
		}
		if s == nil || !s.run || c.groups[ck.Group].Kind != paged.State || len(ck.Pages) != c.groups[ck.Group].Pages {
			t.Fatalf("checkpoint %+v of no running sequence or group", ck)
		}
		if done := len(s.tokens) - s.fresh; ck.Tokens < done || ck.Tokens > len(s.tokens) || ck.Tokens%c.bs != 0 {
			t.Fatalf("checkpoint at %d tokens, the step computes (%d, %d]", ck.Tokens, done, len(s.tokens))
		}
		for j, b := range ck.Pages {
			c.page[b] = stateOf(ck.Group, j, s.tokens[:ck.Tokens])
		}
	}
	for _, s := range c.seqs {
		if !s.run {
			continue
		}
		for g := range c.groups {
			tb := c.tables(t, s, g)
			if c.groups[g].Kind == paged.State {
				for j, b := range tb {
					c.page[b] = stateOf(g, j, s.tokens)
				}
				continue
			}
		}
		s.fresh = 0
	}
}

// writeKV records the attention KV of positions [from, len) of s.
func (c *ckModel) writeKV(t *rapid.T, s *ckSeq, from int) {
	c.transfer(t)
	for g := range c.groups {
		if c.groups[g].Kind == paged.State {
			continue
		}
		tb := c.tables(t, s, g)
		for p := from; p < len(s.tokens); p++ {
			c.kv[int64(tb[p/c.bs])*int64(c.bs)+int64(p%c.bs)] = hyKV(g, s.tokens[:p+1])
		}
	}
}

func (c *ckModel) check(t *rapid.T) {
	if err := c.m.Check(); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.seqs {
		if !s.run || s.fresh > 0 {
			continue
		}
		for g := range c.groups {
			tb := c.tables(t, s, g)
			if c.groups[g].Kind == paged.State {
				for j, b := range tb {
					if c.page[b] != stateOf(g, j, s.tokens) {
						t.Fatalf("%v state group %d page %d (block %d): not its state", s.id, g, j, b)
					}
				}
				continue
			}
			for p := range s.tokens {
				if c.kv[int64(tb[p/c.bs])*int64(c.bs)+int64(p%c.bs)] != hyKV(g, s.tokens[:p+1]) {
					t.Fatalf("%v group %d position %d: not its KV", s.id, g, p)
				}
			}
		}
	}
}

// TestCheckpointStateMachine: full attention with one to three state
// groups in the default mode, shared prompt prefixes, preemption and pool
// pressure, with a host tier that offloads evicted blocks (checkpoint
// pages included) or not; after every operation Check passes and every
// computed sequence reads back its own KV and state, and every state hit
// copies in the state after exactly the tokens it skips, also when the
// checkpoint came back from the host.
func TestCheckpointStateMachine(t *testing.T) {
	hits, ckptOnboards, runs := 0, 0, 0
	rapid.Check(t, func(t *rapid.T) {
		runs++
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		pages := rapid.IntRange(1, 3).Draw(t, "pages")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		for range rapid.IntRange(1, 3).Draw(t, "states") {
			groups = append(groups, paged.Group{Kind: paged.State, Pages: pages})
		}
		if rapid.Bool().Draw(t, "second full group") {
			groups = append(groups, paged.Group{Kind: paged.FullAttention})
		}
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: rapid.IntRange(8, 96).Draw(t, "blocks"),
			Groups: groups, MaxModelLen: 16 * bs, HostBlocks: rapid.SampledFrom([]int{0, 8, 8, 64}).Draw(t, "host blocks")})
		if err != nil {
			t.Fatal(err)
		}
		c := &ckModel{m: m, groups: groups, bs: bs, page: map[allocator.BlockID]uint64{}, kv: map[int64]uint64{},
			hostPage: map[allocator.BlockID]uint64{}, hostKV: map[int64]uint64{}}
		var prefixes [][]int32
		for i := range 2 {
			p := make([]int32, rapid.IntRange(bs, 6*bs).Draw(t, "prefix"))
			for k := range p {
				p[k] = int32(100*i + k)
			}
			prefixes = append(prefixes, p)
		}
		next := int32(1 << 20)
		admit := func(t *rapid.T, s *ckSeq) {
			cached, err := c.m.Admit(s.id)
			if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
				return
			}
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			s.run, s.cached, s.fresh = true, cached, len(s.tokens)-cached
			if cached > 0 {
				c.hits++
			}
			// The step computes the attention KV before anything else can
			// happen to the sequence (the manager commits those blocks at
			// admission); the state waits for the step.
			c.writeKV(t, s, cached)
		}
		pick := func(t *rapid.T, run bool) *ckSeq {
			var cs []*ckSeq
			for _, s := range c.seqs {
				if s.run == run {
					cs = append(cs, s)
				}
			}
			if len(cs) == 0 {
				t.Skip("no such sequence")
			}
			return rapid.SampledFrom(cs).Draw(t, "seq")
		}
		t.Repeat(map[string]func(*rapid.T){
			"add": func(t *rapid.T) {
				prompt := append([]int32(nil), rapid.SampledFrom(prefixes).Draw(t, "prefix")...)
				for range rapid.IntRange(0, 3*bs).Draw(t, "tail") {
					next++
					prompt = append(prompt, next)
				}
				id, err := c.m.Add(prompt, nil)
				if errors.Is(err, paged.ErrNever) {
					return
				}
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
				s := &ckSeq{id: id, tokens: prompt}
				c.seqs = append(c.seqs, s)
				admit(t, s)
			},
			"admit": func(t *rapid.T) { admit(t, pick(t, false)) },
			"flush": func(t *rapid.T) {
				// Pool pressure: a request of fresh tokens runs and ends,
				// evicting cached blocks, checkpoints too (to the host
				// tier, when there is one).
				prompt := make([]int32, rapid.IntRange(1, 16*bs).Draw(t, "fresh"))
				for k := range prompt {
					next++
					prompt[k] = next
				}
				id, _, err := c.m.Create(prompt, nil)
				if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					return
				}
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if err := c.m.Free(id); err != nil {
					t.Fatalf("Free: %v", err)
				}
			},
			"step": c.step,
			"append": func(t *rapid.T) {
				s := pick(t, true)
				if s.fresh > 0 {
					t.Skip("not computed yet")
				}
				next++
				if err := c.m.Append(s.id, next); errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					return
				} else if err != nil {
					t.Fatalf("Append: %v", err)
				}
				s.tokens = append(s.tokens, next)
				s.fresh, s.cached = 1, 0
				c.writeKV(t, s, len(s.tokens)-1)
			},
			"preempt": func(t *rapid.T) {
				s := pick(t, true)
				if err := c.m.Preempt(s.id); err != nil {
					t.Fatalf("Preempt: %v", err)
				}
				s.run = false
			},
			"free": func(t *rapid.T) {
				s := pick(t, rapid.Bool().Draw(t, "running"))
				if err := c.m.Free(s.id); err != nil {
					t.Fatalf("Free: %v", err)
				}
				for i, x := range c.seqs {
					if x == s {
						c.seqs = append(c.seqs[:i], c.seqs[i+1:]...)
						break
					}
				}
			},
			"": c.check,
		})
		hits += c.hits
		ckptOnboards += c.ckptOnboards
	})
	if runs >= 100 { // go test's default; CI's 32-bit pass runs 10
		assert.Positive(t, hits, "no run hit a checkpoint")
	}
	// Checkpoint pages come back from the host in a few runs only (they
	// wait on the high shelf); TestOffloadCheckpointHit makes it happen.
	t.Logf("%d checkpoint pages onboarded", ckptOnboards)
}

// TestCheckpointHit: the second sequence sharing a prefix asks for a
// checkpoint at the prefix's end; once it is handed out, the third hits
// it, copying its pages into its own state pages.
func TestCheckpointHit(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	prefix := seqOf(1, 12) // 3 blocks
	// A tail of a whole block and one token: the lookup of a sequence
	// sharing the prefix stops at a block not cached.
	with := func(tail int32) []int32 {
		return append(append([]int32(nil), prefix...), tail, tail+1, tail+2, tail+3, tail+4)
	}
	_, cached, err := m.Create(with(100), nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	assert.Empty(t, m.TakeCheckpoints(nil), "nothing shared yet")
	b, cached, err := m.Create(with(200), nil)
	require.NoError(t, err)
	require.Zero(t, cached, "the full-attention blocks are there, no state")
	_, cached, err = m.Create(with(300), nil)
	require.NoError(t, err)
	assert.Zero(t, cached, "a checkpoint not handed out yet is not a hit")
	cks := m.TakeCheckpoints(nil)
	require.Len(t, cks, 1, "the third does not ask for the same checkpoint again")
	assert.Equal(t, paged.Checkpoint{Seq: b, Group: 1, Tokens: 12, Pages: cks[0].Pages}, cks[0])
	require.Len(t, cks[0].Pages, 2)
	m.TakeCopies(nil)
	d, cached, err := m.Create(with(400), nil)
	require.NoError(t, err)
	assert.Equal(t, 12, cached)
	own, err := m.TableGroup(d, 1)
	require.NoError(t, err)
	assert.Equal(t, []paged.Copy{{Src: cks[0].Pages[0], Dst: own[0]}, {Src: cks[0].Pages[1], Dst: own[1]}}, m.TakeCopies(nil))
	require.NoError(t, m.Check())
}

// TestCheckpointsOffInCompatMode: with UnifiedFreeQueue (vLLM's
// decisions) no state is cached.
func TestCheckpointsOffInCompatMode(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, UnifiedFreeQueue: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	for i := range 3 {
		_, cached, err := m.Create(append(seqOf(1, 12), int32(100*i)), nil)
		require.NoError(t, err)
		require.Zero(t, cached)
		assert.Empty(t, m.TakeCheckpoints(nil))
	}
}

// TestCheckpointSteadyStateAllocs: admissions that hit a checkpoint (claims
// and copies), the step's directives, decode, preemption, resumption and
// finishing allocate nothing once buffers have grown.
func TestCheckpointSteadyStateAllocs(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 512,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 3}, {Kind: paged.State, Pages: 3}}})
	require.NoError(t, err)
	prompt := append(seqOf(1, 16), 0, 0, 0, 0, 0)
	var copies []paged.Copy
	var cks []paged.Checkpoint
	next := int32(1000)
	start := func() paged.SeqID {
		for i := 16; i < len(prompt); i++ {
			next++
			prompt[i] = next
		}
		id, err := m.Add(prompt, &paged.SeqOptions{MaxTokens: 64})
		if err != nil {
			panic(err)
		}
		if _, err := m.Admit(id); err != nil {
			panic(err)
		}
		return id
	}
	hits := 0
	cycle := func() {
		a, b := start(), start()
		copies = m.TakeCopies(copies[:0])
		cks = m.TakeCheckpoints(cks[:0])
		for range 6 {
			next++
			if err := m.Append(a, next); err != nil {
				panic(err)
			}
		}
		if err := m.Preempt(a); err != nil {
			panic(err)
		}
		cached, err := m.Admit(a)
		if err != nil {
			panic(err)
		}
		hits += cached
		if err := m.Free(a); err != nil {
			panic(err)
		}
		if err := m.Free(b); err != nil {
			panic(err)
		}
	}
	for range 10 {
		cycle()
	}
	require.NoError(t, m.Check())
	require.Positive(t, hits, "resumptions hit the checkpoint")
	require.NotEmpty(t, copies)
	assert.Zero(t, testing.AllocsPerRun(50, cycle))
	require.NoError(t, m.Check())
}

// TestCheckpointDroppedAfterAppend: a checkpoint not handed out before the
// sequence moves on can no longer be written, so it is dropped, and its
// pages are free again.
func TestCheckpointDroppedAfterAppend(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	prompt := func(tail int32) []int32 { return append(seqOf(1, 12), tail, tail+1, tail+2, tail+3, tail+4) }
	_, _, err = m.Create(prompt(100), nil)
	require.NoError(t, err)
	b, _, err := m.Create(prompt(200), nil)
	require.NoError(t, err)
	free := m.Stats().FreeBlocks
	require.NoError(t, m.Append(b, 7))
	assert.Empty(t, m.TakeCheckpoints(nil))
	assert.Equal(t, free+2, m.Stats().FreeBlocks, "the two pages")
	require.NoError(t, m.Check())
	_, cached, err := m.Create(prompt(300), nil)
	require.NoError(t, err)
	assert.Zero(t, cached)
}

// ExampleManager_TakeCheckpoints: a model with Gated DeltaNet layers keeps
// a fixed-size state per sequence. The second request sharing a prompt
// prefix makes the manager ask, with the step's directives, for a
// checkpoint of the state at the prefix's end; later requests start from
// a copy of it.
func ExampleManager_TakeCheckpoints() {
	m, err := paged.New(paged.Config{
		BlockSize: 4,
		NumBlocks: 64,
		Groups: []paged.Group{
			{Kind: paged.FullAttention},
			{Kind: paged.State, Pages: 2}, // the state takes two blocks
		},
	})
	if err != nil {
		panic(err)
	}
	system := []int32{1, 2, 3, 4, 5, 6, 7, 8} // a shared prefix of two blocks
	prompt := func(user ...int32) []int32 { return append(append([]int32(nil), system...), user...) }

	_, _, _ = m.Create(prompt(10, 11, 12, 13, 14), nil)
	_, _, _ = m.Create(prompt(20, 21, 22, 23, 24), nil)
	for _, c := range m.TakeCheckpoints(nil) {
		fmt.Printf("write group %d's state after %d tokens of %v into blocks %v\n", c.Group, c.Tokens, c.Seq, c.Pages)
	}
	// The step runs: its kernels write the checkpoint. (A request
	// admitted before the step ends does not hit it: its copies would run
	// before those kernels.)
	m.EndStep()
	third, cached, _ := m.Create(prompt(30, 31, 32, 33, 34), nil)
	own, _ := m.TableGroup(third, 1)
	fmt.Println("third request:", cached, "tokens cached; its state blocks", own)
	fmt.Println("copies:", m.TakeCopies(nil))
	// Output:
	// write group 1's state after 8 tokens of seq1.1 into blocks [13 14]
	// third request: 8 tokens cached; its state blocks [17 18]
	// copies: [{13 17} {14 18}]
}

// TestCheckpointEventsAndSnapshot: a checkpoint is one KV event of its
// state group, the chain hash of the block it follows, not one per page,
// and a snapshot lists it once, as the events do.
func TestCheckpointEventsAndSnapshot(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Events: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	for i := range int32(2) {
		_, _, err := m.Create(append(seqOf(1, 12), 100*i, 100*i+1, 100*i+2, 100*i+3, 100*i+4), nil)
		require.NoError(t, err)
	}
	require.Len(t, m.TakeCheckpoints(nil), 1)
	hashes, err := m.BlockHashes(nil, seqOf(1, 12), nil)
	require.NoError(t, err)
	var snap paged.Snapshot
	m.Snapshot(&snap)
	stored, state := 0, 0
	for _, e := range m.DrainEvents(nil) {
		stored += len(e.Hashes)
		if e.Group == 1 {
			state++
			assert.Equal(t, paged.BlockStored, e.Kind)
			assert.Equal(t, []paged.Hash{hashes[2]}, e.Hashes, "the checkpoint after 3 blocks is block 2's hash")
			assert.False(t, e.HasParent, "a checkpoint follows no block of its group")
			assert.Equal(t, seqOf(9, 4), e.Tokens)
		}
	}
	assert.Equal(t, 1, state, "one event for the checkpoint's two pages")
	assert.Len(t, snap.Blocks, stored)
	inSnap := 0
	for _, b := range snap.Blocks {
		if b.Group == 1 {
			inSnap++
			assert.Equal(t, hashes[2], b.Hash)
			assert.False(t, b.HasParent, "as its event: no parent")
		}
	}
	assert.Equal(t, 1, inSnap)
}
