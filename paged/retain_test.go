package paged

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// Retention through the manager (SeqOptions.Retention with the priority
// policy): promises follow hits, chains are evicted leaf first, orphans
// first, pins keep their blocks whatever the levels.

// retainManager returns a priority-policy manager with events on.
func retainManager(t testing.TB, bs, blocks int) *Manager {
	t.Helper()
	m, err := New(Config{BlockSize: bs, NumBlocks: blocks, Events: 1 << 12, Policy: eviction.NewPriority})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run creates a sequence for prompt, ends the step that computes it and
// frees it, leaving its full blocks cached (a pin may hold them); it
// returns its table.
func run(t testing.TB, m *Manager, prompt []int32, opts *SeqOptions) []allocator.BlockID {
	t.Helper()
	id, _, err := m.Create(prompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := m.Table(id)
	if err != nil {
		t.Fatal(err)
	}
	tab = slices.Clone(tab)
	m.EndStep() // the step computing it ran
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	return tab
}

// isCached reports whether the full blocks of prompt are all in the index.
func isCached(t testing.TB, m *Manager, prompt []int32) bool {
	t.Helper()
	hs, err := m.BlockHashes(nil, prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range hs {
		if _, ok := m.bp.index.get(&hs[i]); !ok {
			return false
		}
	}
	return true
}

func retain(p int, ticks int64) *SeqOptions {
	return &SeqOptions{Retention: &Retention{Priority: p, Ticks: ticks}}
}

// TestRetentionFollowsHits: a prefix cached at level 0 and reused by a
// request at 90 is kept at 90 for that request's ticks, ahead of default
// content; once they run out it is back at 0 and goes first.
func TestRetentionFollowsHits(t *testing.T) {
	for _, lapse := range []bool{false, true} {
		m := retainManager(t, 2, 7) // 6 usable blocks
		sys := []int32{1, 2, 3, 4}  // two blocks
		run(t, m, append(slices.Clone(sys), 9), retain(0, 0))
		run(t, m, append(slices.Clone(sys), 8), retain(90, 10))
		if st := m.Stats(); st.PrefixHitBlocks != 2 || st.RetainedHits != 2 {
			t.Fatalf("the second request hit %d blocks, retained %d, want 2 and 2", st.PrefixHitBlocks, st.RetainedHits)
		}
		if lapse {
			m.Advance(10)
		}
		// Two blocks of default content, then three blocks to take
		// where two are free: one eviction.
		run(t, m, []int32{5, 6, 7, 8, 0}, nil)
		run(t, m, []int32{7, 7, 7, 7, 0}, nil)
		if isCached(t, m, sys) == lapse {
			t.Fatalf("lapsed %v: the reused prefix cached %v", lapse, !lapse)
		}
	}
}

// TestRetentionDefaultForGoodIsNoStep: a reuse at the default level for
// good, on content cached below it, is the level the block falls back to,
// not a promise step. Before, it took one of the policy's two steps, so two
// later promises (100 until tick 5, 60 until tick 10) merged into 60 for
// good and the block outranked content cached at 40; the maximum of the
// promises is 35 from tick 10 on, and it goes first.
func TestRetentionDefaultForGoodIsNoStep(t *testing.T) {
	m := retainManager(t, 2, 4) // 3 usable blocks
	run(t, m, []int32{1, 2, 9}, retain(20, 0))
	run(t, m, []int32{1, 2, 8}, retain(100, 5))
	run(t, m, []int32{1, 2, 7}, retain(eviction.DefaultPriority, 0))
	run(t, m, []int32{1, 2, 6}, retain(60, 10))
	run(t, m, []int32{3, 4, 0}, retain(40, 0))
	m.Advance(10)
	run(t, m, []int32{5, 6, 0}, nil) // one eviction
	if isCached(t, m, []int32{1, 2}) || !isCached(t, m, []int32{3, 4}) {
		t.Fatalf("after every promise above the default lapsed, the block reused at the default stayed (%v) and the one at 40 went (%v)",
			isCached(t, m, []int32{1, 2}), !isCached(t, m, []int32{3, 4}))
	}
}

// TestRetentionHitRaisesOffload: the host tier offloads an evicted block
// whose retention clears Config.OffloadPriority, and a reuse's promise
// counts there too: content cached at 10 and reused at 90 is offloaded
// (1 block without the reuse's raise), until the reuse's ticks lapse.
func TestRetentionHitRaisesOffload(t *testing.T) {
	for _, tc := range []struct {
		reuse *SeqOptions
		lapse bool
		want  uint64
	}{
		{nil, false, 0},
		{retain(90, 5), false, 3}, // the two reused blocks and the one it added
		{retain(90, 5), true, 0},
		{retain(40, 0), false, 0}, // below the floor
	} {
		m, err := New(Config{BlockSize: 1, NumBlocks: 4, HostBlocks: 4, OffloadPriority: 50})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 0}, retain(10, 0))
		run(t, m, []int32{1, 2, 3}, tc.reuse)
		if tc.lapse {
			m.Advance(5)
		}
		run(t, m, []int32{7, 8, 9}, nil) // evicts the three cached blocks, [1], [2], [3]
		if got := m.Stats().Tiers.Offloads; got != tc.want {
			t.Errorf("reuse %+v, lapsed %v: %d blocks offloaded, want %d", tc.reuse, tc.lapse, got, tc.want)
		}
	}
}

// TestRetentionLowHitKeepsLevel: a reuse by a request at a lower level, or
// by one with no retention, does not lower a block.
func TestRetentionLowHitKeepsLevel(t *testing.T) {
	m := retainManager(t, 2, 7)
	sys := []int32{1, 2, 3, 4}
	run(t, m, append(slices.Clone(sys), 9), retain(90, 0))
	run(t, m, append(slices.Clone(sys), 8), retain(0, 5))
	run(t, m, append(slices.Clone(sys), 7), nil)
	if got := m.Stats().RetainedHits; got != 2 {
		t.Fatalf("%d retained hits, want 2 (a reuse without retention promises nothing)", got)
	}
	run(t, m, []int32{5, 6, 7, 8, 0}, nil)
	run(t, m, []int32{7, 7, 7, 7, 0}, nil)
	if !isCached(t, m, sys) {
		t.Fatal("a low-priority reuse lowered the prefix")
	}
}

// TestRetentionParentAfterChild: a parent whose level fell below its
// child's is not evicted before the child, which would leave the child
// cached and unreachable; the chain goes tail first, each block reported.
func TestRetentionParentAfterChild(t *testing.T) {
	m := retainManager(t, 2, 7)
	sys := []int32{1, 2}
	run(t, m, []int32{1, 2, 0}, retain(0, 0)) // block P at 0 for good
	// C after P at 90 until tick 5; the reuse lifts P to 90 until 5 too,
	// then P falls back to 0 and C to the default.
	run(t, m, []int32{1, 2, 3, 4, 0}, retain(90, 5))
	m.Advance(5)
	m.DrainEvents(nil)
	run(t, m, []int32{5, 6, 7, 8, 5, 6, 0}, nil) // three blocks: fills the pool
	if !isCached(t, m, sys) {
		t.Fatal("nothing should be evicted yet")
	}
	hs, err := m.BlockHashes(nil, []int32{1, 2, 3, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	removed := func() []Hash {
		var out []Hash
		for _, ev := range m.DrainEvents(nil) {
			if ev.Kind == BlockRemoved {
				out = append(out, ev.Hashes...)
			}
		}
		return out
	}
	run(t, m, []int32{7, 7, 0}, nil) // one eviction: the child, not the parent
	if got := removed(); !slices.Equal(got, hs[1:2]) || !isCached(t, m, sys) {
		t.Fatalf("removed %x, want the child's hash alone (%x)", got, hs[1])
	}
	run(t, m, []int32{6, 6, 0}, nil) // one more: the parent, before the default content
	if got := removed(); !slices.Equal(got, hs[:1]) {
		t.Fatalf("removed %x, want the parent's hash (%x)", got, hs[0])
	}
}

// TestRetentionOrphanFirst: a windowed sequence releases the blocks its
// window left; when one of them is evicted, the blocks after it (held by
// the sequence) can no longer be hit, and once released they go before
// any other content, whatever their level.
func TestRetentionOrphanFirst(t *testing.T) {
	m := retainManager(t, 2, 7)
	opts := &SeqOptions{Window: 3, Retention: &Retention{Priority: 100}}
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append(id, 6, 7); err != nil { // 4 blocks, the first out of the window
		t.Fatal(err)
	}
	tab, err := m.Table(id)
	if err != nil {
		t.Fatal(err)
	}
	if tab[0] != nullBlock {
		t.Fatalf("block 0 should have left the window: %v", tab)
	}
	run(t, m, []int32{9, 9, 9, 9, 0}, retain(90, 0)) // the pool is full: evicts the slid block
	if isCached(t, m, []int32{1, 2}) {
		t.Fatal("the slid-out block at 100 should have been the only victim")
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	m.DrainEvents(nil)
	// Blocks 1 and 2 of the windowed prompt are orphans: they go first.
	run(t, m, []int32{8, 8, 8, 8, 8, 8, 0}, nil) // two evictions
	hs, err := m.BlockHashes(nil, []int32{1, 2, 3, 4, 5, 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var removed []Hash
	for _, ev := range m.DrainEvents(nil) {
		if ev.Kind == BlockRemoved {
			removed = append(removed, ev.Hashes...)
		}
	}
	slices.SortFunc(removed, func(a, b Hash) int { return slices.Compare(a[:], b[:]) })
	want := slices.Clone(hs[1:3])
	slices.SortFunc(want, func(a, b Hash) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(removed, want) || !isCached(t, m, []int32{9, 9, 9, 9}) {
		t.Fatalf("removed %x, want the orphans %x", removed, want)
	}
}

// TestRetentionPinOutlastsLevels: a pinned prefix reused by a low-priority
// request keeps its pin, and when the pin expires its blocks are back at
// the level their promises give them then.
func TestRetentionPinOutlastsLevels(t *testing.T) {
	m := retainManager(t, 2, 7)
	if err := m.SetPinBudget(2); err != nil {
		t.Fatal(err)
	}
	sys := []int32{1, 2, 3, 4}
	run(t, m, append(slices.Clone(sys), 9), retain(0, 0))
	pin, n, err := m.Pin(sys, nil, 6)
	if err != nil || n != 4 {
		t.Fatalf("pin: %d tokens, %v", n, err)
	}
	run(t, m, append(slices.Clone(sys), 8), retain(0, 0))
	run(t, m, append(slices.Clone(sys), 7), retain(80, 8)) // 80 until tick 8
	// More blocks than the pool holds besides; the pinned prefix cannot go.
	run(t, m, []int32{5, 6, 7, 8, 0}, nil)
	run(t, m, []int32{7, 7, 7, 7, 0}, nil)
	if !isCached(t, m, sys) || m.PinStats().PinnedBlocks != 2 {
		t.Fatalf("pinned prefix lost: %+v", m.PinStats())
	}
	m.Advance(6) // the pin expires; the prefix is at 80 until tick 8
	if err := m.Unpin(pin); !errors.Is(err, ErrUnknownPin) {
		t.Fatalf("Unpin of an expired pin: %v", err)
	}
	run(t, m, []int32{6, 6, 6, 6, 0}, nil)
	if !isCached(t, m, sys) {
		t.Fatal("the prefix lost its level when its pin expired")
	}
	m.Advance(8) // back to 0: first to go
	run(t, m, []int32{5, 5, 5, 5, 0}, nil)
	if isCached(t, m, sys) {
		t.Fatal("the prefix kept a lapsed level")
	}
}

// TestRetentionHitAllocs: an admission that reuses a cached prefix with
// a retention promise allocates nothing in steady state.
func TestRetentionHitAllocs(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64, Policy: eviction.NewPriority})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 33)
	for i := range prompt {
		prompt[i] = int32(i)
	}
	opts := retain(80, 100)
	run(t, m, prompt, opts)
	// Add copies the options (one allocation for a Retention); the
	// admissions after a preemption are the hit path alone.
	id, err := m.Add(prompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	var tick int64
	allocs := testing.AllocsPerRun(100, func() {
		tick++
		m.Advance(tick)
		if hit, err := m.Admit(id); err != nil || hit != 32 {
			t.Fatalf("hit %d tokens, %v", hit, err)
		}
		if err := m.Preempt(id); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per admission", allocs)
	}
}

// mstep is the model's retention promise: a level until a tick.
type mstep struct {
	level int
	until int64
}

// mblock is the model's cached block: its hash, its retention promises
// (a staircase, highest level first), its chain parent (the block before
// it in the table that committed it, when cached then) and whether its
// chain lost an ancestor.
type mblock struct {
	hash   Hash
	steps  []mstep
	parent allocator.BlockID
	orphan bool
}

// level is the block's level at now: the first promise still in force,
// the default when none is.
func (b *mblock) level(now int64) int {
	for _, s := range b.steps {
		if s.until > now {
			return s.level
		}
	}
	return eviction.DefaultPriority
}

// promise adds a reuse's promise as SeqOptions.Retention documents it: the
// block keeps the highest level in force; at or below the default a
// promise lasts only while the content's own lower level does; of three
// steps, the two lower merge into the middle level until the later tick;
// the default for good is no step (the level every block falls back to).
func (b *mblock) promise(level int, until, now int64) {
	live := b.steps[:0]
	for _, s := range b.steps {
		if s.until > now {
			live = append(live, s)
		}
	}
	if level <= eviction.DefaultPriority {
		var low int64
		for _, s := range live {
			if s.level < eviction.DefaultPriority && s.until > low {
				low = s.until
			}
		}
		until = min(until, low)
	}
	if until <= now {
		b.steps = live
		return
	}
	all := append(live, mstep{level, until})
	slices.SortFunc(all, func(x, y mstep) int {
		if x.level != y.level {
			return y.level - x.level
		}
		switch {
		case x.until > y.until:
			return -1
		case x.until < y.until:
			return 1
		}
		return 0
	})
	var out []mstep
	for _, s := range all {
		if len(out) == 0 || s.until > out[len(out)-1].until {
			out = append(out, s)
		}
	}
	// The default for good is the level with no promise, not a step.
	if n := len(out); n > 0 && out[n-1] == (mstep{eviction.DefaultPriority, math.MaxInt64}) {
		out = out[:n-1]
	}
	if len(out) == 3 {
		out = []mstep{out[0], {out[1].level, out[2].until}}
	}
	b.steps = out
}

// victims is the priority policy, recording its victims.
type victims struct {
	*eviction.Priority
	victims []allocator.BlockID
}

func (v *victims) policy(capacity int) eviction.Policy {
	v.Priority = eviction.NewPriority(capacity).(*eviction.Priority)
	return v
}

func (v *victims) Victim() (allocator.BlockID, bool) {
	id, ok := v.Priority.Victim()
	if ok {
		v.victims = append(v.victims, id)
	}
	return id, ok
}

// TestRetentionOrder drives a priority-policy manager with requests
// (retention levels and durations, sliding windows, running sequences),
// hits, decode steps, pins and ticks, and checks each eviction against a
// reference model of the documented rules: a block's effective level is
// -1 for an orphan (its chain lost an ancestor), else the highest of its
// own level (the promises of the requests that committed or reused it)
// and its evictable children's; no block is evicted while an evictable
// block of a strictly lower effective level stays cached, nor while it
// has an evictable child. And after every operation every cached block
// that is not an orphan is reachable: its chain's previous hash is cached.
func TestRetentionOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.IntRange(2, 3).Draw(t, "bs")
		nb := rapid.IntRange(5, 14).Draw(t, "blocks")
		rec := &victims{}
		m, err := New(Config{BlockSize: bs, NumBlocks: nb, Events: 1 << 14, Policy: rec.policy})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPinBudget(nb / 3); err != nil {
			t.Fatal(err)
		}
		model := map[allocator.BlockID]*mblock{}
		var now int64
		type seq struct {
			id   SeqID
			opts *SeqOptions
		}
		var running []seq
		var prompts [][]int32
		var pins []PinID
		var lastHit []allocator.BlockID // blocks the last admission hit
		var lastRet *Retention

		// pending are the victims of the last operation not yet checked:
		// they were evictable when the earlier ones went.
		pending := map[allocator.BlockID]bool{}
		evictable := func(b allocator.BlockID) bool { return m.bp.pool.RefCount(b) == 0 || pending[b] }
		var eff func(b allocator.BlockID) int
		eff = func(b allocator.BlockID) int {
			mb := model[b]
			if mb.orphan {
				return -1
			}
			e := mb.level(now)
			for c, mc := range model {
				if mc.parent == b && evictable(c) {
					e = max(e, eff(c))
				}
			}
			return e
		}
		orphanTree := func(root allocator.BlockID) {
			stack := []allocator.BlockID{root}
			for len(stack) > 0 {
				x := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				model[x].orphan = true
				for c, mc := range model {
					if mc.parent == x {
						stack = append(stack, c)
					}
				}
			}
		}
		// forget drops b from the model: the blocks below it are orphans.
		forget := func(b allocator.BlockID) {
			for c, mc := range model {
				if mc.parent == b {
					mc.parent = allocator.NoBlock
					orphanTree(c)
				}
			}
			delete(model, b)
		}
		// settle checks the evictions of the last operation in order,
		// then learns its commits (owner's table and retention).
		settle := func(owner *seq) {
			for _, b := range lastHit {
				if mb := model[b]; mb != nil && lastRet != nil {
					until := int64(math.MaxInt64)
					if lastRet.Ticks > 0 {
						until = now + lastRet.Ticks
					}
					mb.promise(lastRet.Priority, until, now)
				}
			}
			lastHit, lastRet = nil, nil
			// The victims in the order the policy gave them up.
			var gone []Hash
			for _, victim := range rec.victims {
				pending[victim] = true
			}
			for _, victim := range rec.victims {
				mv := model[victim]
				if mv == nil {
					t.Fatalf("the policy gave up block %d, which holds no cached content", victim)
				}
				ev := eff(victim)
				for b, mb := range model {
					if b == victim || !evictable(b) {
						continue
					}
					if e := eff(b); e < ev {
						t.Fatalf("evicted block %d (effective level %d) while block %d of effective level %d stayed evictable (now %d)", victim, ev, b, e, now)
					}
					if mb.parent == victim {
						t.Fatalf("evicted block %d before its evictable child %d", victim, b)
					}
				}
				gone = append(gone, mv.hash)
				delete(pending, victim)
				forget(victim)
			}
			rec.victims = rec.victims[:0]
			// Content dropped in place (a written block) is gone too.
			for b, mb := range model {
				if !m.bp.hasContent(b) || m.bp.hash[b] != mb.hash {
					gone = append(gone, mb.hash)
					forget(b)
				}
			}
			// Every block given up is reported, and nothing else.
			var removed []Hash
			for _, ev := range m.DrainEvents(nil) {
				if ev.Kind == BlockRemoved {
					removed = append(removed, ev.Hashes...)
				}
			}
			byBytes := func(a, b Hash) int { return slices.Compare(a[:], b[:]) }
			slices.SortFunc(gone, byBytes)
			slices.SortFunc(removed, byBytes)
			if !slices.Equal(gone, removed) {
				t.Fatalf("gave up %d blocks, reported %d", len(gone), len(removed))
			}
			if owner == nil {
				return
			}
			tab, err := m.Table(owner.id)
			if err != nil {
				t.Fatal(err)
			}
			for k, b := range tab {
				if b == nullBlock || !m.bp.hasContent(b) || model[b] != nil {
					continue
				}
				mb := &mblock{hash: m.bp.hash[b], parent: allocator.NoBlock}
				if r := owner.opts.Retention; r != nil && r.Priority != eviction.DefaultPriority {
					until := int64(math.MaxInt64)
					if r.Ticks > 0 {
						until = now + r.Ticks
					}
					mb.steps = []mstep{{r.Priority, until}}
				}
				if k > 0 && tab[k-1] != nullBlock && model[tab[k-1]] != nil {
					mb.parent = tab[k-1]
					mb.orphan = model[tab[k-1]].orphan
				}
				model[b] = mb
			}
		}
		check := func() {
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			for b, mb := range model {
				if mb.orphan || m.bp.parent[b] == m.chain.root {
					continue
				}
				if _, ok := m.bp.index.get(&m.bp.parent[b]); !ok {
					t.Fatalf("block %d is cached, not an orphan, and unreachable", b)
				}
			}
		}
		drawPrompt := func(t *rapid.T) []int32 {
			var p []int32
			if len(prompts) > 0 && rapid.Bool().Draw(t, "reuse") {
				old := rapid.SampledFrom(prompts).Draw(t, "old")
				p = slices.Clone(old[:rapid.IntRange(0, len(old)).Draw(t, "keep")])
			}
			p = append(p, rapid.SliceOfN(rapid.Int32Range(0, 1), 1, 3*bs).Draw(t, "more")...)
			return p
		}
		t.Repeat(map[string]func(*rapid.T){
			"request": func(t *rapid.T) {
				if len(running) >= 3 {
					t.Skip("enough running")
				}
				p := drawPrompt(t)
				opts := &SeqOptions{}
				if rapid.IntRange(0, 3).Draw(t, "retention") > 0 {
					opts.Retention = &Retention{Priority: rapid.SampledFrom([]int{0, 20, 35, 60, 100}).Draw(t, "priority"), Ticks: int64(rapid.IntRange(0, 4).Draw(t, "ticks"))}
				}
				if rapid.IntRange(0, 3).Draw(t, "windowed") == 0 {
					opts.Window = rapid.IntRange(bs+1, 3*bs).Draw(t, "window")
				}
				id, err := m.Add(p, opts)
				if err != nil {
					t.Skip("longer than the pool")
				}
				hit, err := m.Admit(id)
				if err != nil {
					if err := m.Free(id); err != nil {
						t.Fatal(err)
					}
					settle(nil)
					check()
					return
				}
				prompts = append(prompts, p)
				tab, err := m.Table(id)
				if err != nil {
					t.Fatal(err)
				}
				lastHit, lastRet = slices.Clone(tab[:hit/bs]), opts.Retention
				running = append(running, seq{id, opts})
				settle(&running[len(running)-1])
				check()
			},
			"append": func(t *rapid.T) {
				if len(running) == 0 {
					t.Skip("none running")
				}
				i := rapid.IntRange(0, len(running)-1).Draw(t, "seq")
				toks := rapid.SliceOfN(rapid.Int32Range(0, 1), 1, bs+1).Draw(t, "tokens")
				if err := m.Append(running[i].id, toks...); err != nil && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
					t.Fatal(err)
				}
				settle(&running[i])
				check()
			},
			"finish": func(t *rapid.T) {
				if len(running) == 0 {
					t.Skip("none running")
				}
				i := rapid.IntRange(0, len(running)-1).Draw(t, "seq")
				if err := m.Free(running[i].id); err != nil {
					t.Fatal(err)
				}
				running = slices.Delete(running, i, i+1)
				settle(nil)
				check()
			},
			"pin": func(t *rapid.T) {
				if len(prompts) == 0 {
					t.Skip("nothing cached")
				}
				p := rapid.SampledFrom(prompts).Draw(t, "prompt")
				var until int64
				if rapid.Bool().Draw(t, "expires") {
					until = now + int64(rapid.IntRange(1, 4).Draw(t, "for"))
				}
				id, _, err := m.Pin(p, nil, until)
				switch {
				case errors.Is(err, ErrPinBudget):
				case err != nil:
					t.Fatal(err)
				default:
					pins = append(pins, id)
				}
				settle(nil)
				check()
			},
			"unpin": func(t *rapid.T) {
				if len(pins) == 0 {
					t.Skip("no pins")
				}
				i := rapid.IntRange(0, len(pins)-1).Draw(t, "pin")
				if err := m.Unpin(pins[i]); err != nil && !errors.Is(err, ErrUnknownPin) {
					t.Fatal(err)
				}
				pins = slices.Delete(pins, i, i+1)
				settle(nil)
				check()
			},
			"advance": func(t *rapid.T) {
				now += int64(rapid.IntRange(1, 3).Draw(t, "dt"))
				m.Advance(now)
				settle(nil)
				check()
			},
		})
	})
}

// TestOrphansByPolicy counts, for every policy, the cached blocks left
// unreachable (their chain's previous block not cached) on a conversation
// workload: prompts that extend earlier ones, released tail first, some
// running while others come. Priority leaves none by rule (a chain goes leaf
// first); tail-first release makes recency and hit counts no higher for a
// child than its parent, so LRU, LFU, SLRU and LeafLRU leave none either;
// Chain gives orphans up first and prefers leaves (session 8): none.
// The others order by insertion or by queues a hit does not refresh and
// may; the counts are logged.
func TestOrphansByPolicy(t *testing.T) {
	none := map[string]bool{"priority": true, "lru": true, "lfu": true, "slru": true, "leaflru": true, "chain": true}
	for _, name := range eviction.Names() {
		f, err := eviction.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(Config{BlockSize: 2, NumBlocks: 24, Events: 1 << 12, Policy: f})
		if err != nil {
			t.Fatal(err)
		}
		c := newConversation(7, 2, name == "priority")
		orphans, samples := 0, 0
		for step := range 3000 {
			c.step(t, m)
			m.Advance(int64(step))
			m.DrainEvents(nil)
			for b := allocator.BlockID(1); int(b) < m.bp.pool.Total(); b++ {
				if !m.bp.hasContent(b) {
					continue
				}
				samples++
				if m.bp.parent[b] == m.chain.root {
					continue
				}
				if _, ok := m.bp.index.get(&m.bp.parent[b]); !ok {
					orphans++
				}
			}
		}
		t.Logf("%-8s %5d orphan block-steps of %d cached", name, orphans, samples)
		if none[name] && orphans > 0 {
			t.Errorf("%s left %d orphan block-steps", name, orphans)
		}
	}
}

// TestRetentionHybrid: requests with retention on hybrid managers (a
// window or a state group beside full attention, with the retention
// shelves or vLLM's unified free queue) pass their promises for the hits of
// every group, and the manager stays consistent.
func TestRetentionHybrid(t *testing.T) {
	for _, groups := range [][]Group{
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 5}},
		{{Kind: FullAttention}, {Kind: State, Pages: 1}},
	} {
		for _, unified := range []bool{false, true} {
			m, err := New(Config{BlockSize: 2, NumBlocks: 40, Groups: groups, UnifiedFreeQueue: unified, Events: 1 << 12, Policy: eviction.NewPriority})
			if err != nil {
				t.Fatal(err)
			}
			c := newConversation(3, 3, true)
			for step := range 1500 {
				c.step(t, m)
				m.Advance(int64(step / 3))
				m.DrainEvents(nil)
				if err := m.Check(); err != nil {
					t.Fatalf("%v unified %v step %d: %v", groups, unified, step, err)
				}
			}
			if st := m.Stats(); st.PrefixHitBlocks > 0 && st.RetainedHits == 0 {
				t.Errorf("%v unified %v: %d hits, no promise passed", groups, unified, st.PrefixHitBlocks)
			}
		}
	}
}

// conversation drives a manager with requests that extend earlier prompts
// (three in four) by a few tokens, at random retention levels if asked,
// and keeps up to running of them running, finishing them at random.
type conversation struct {
	rng       *rand.Rand
	prompts   [][]int32
	running   []SeqID
	max       int
	retention bool
}

func newConversation(seed uint64, running int, retention bool) *conversation {
	return &conversation{rng: rand.New(rand.NewPCG(seed, seed+1)), max: running, retention: retention}
}

// step creates one request (refused ones are dropped) and finishes some.
func (c *conversation) step(t *testing.T, m *Manager) {
	rng := c.rng
	var p []int32
	if len(c.prompts) > 0 && rng.IntN(4) > 0 {
		p = slices.Clone(c.prompts[rng.IntN(len(c.prompts))])
	}
	for range 1 + rng.IntN(6) {
		p = append(p, int32(rng.IntN(3)))
	}
	opts := &SeqOptions{}
	if c.retention && rng.IntN(3) > 0 {
		opts.Retention = &Retention{Priority: rng.IntN(101), Ticks: int64(rng.IntN(5))}
	}
	if id, _, err := m.Create(p, opts); err == nil {
		c.prompts = append(c.prompts, p)
		c.running = append(c.running, id)
	} else if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
		t.Fatal(err)
	}
	for len(c.running) > c.max || len(c.running) > 0 && rng.IntN(2) == 0 {
		i := rng.IntN(len(c.running))
		if err := m.Free(c.running[i]); err != nil {
			t.Fatal(err)
		}
		c.running = slices.Delete(c.running, i, i+1)
	}
}
