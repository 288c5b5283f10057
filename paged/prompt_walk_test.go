package paged

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// checkWalk verifies the kept answer of m's prompt walk: whenever the
// admission plan of a waiting sequence would take it (promptWalk.answers),
// it is exactly what a lookup gives now.
func checkWalk(m *Manager) error {
	w := &m.walk
	for i := range m.seqs {
		s := &m.seqs[i]
		if s.state != seqWaiting {
			continue
		}
		n := len(s.tokens)
		max := (n - 1) / m.bs
		if s.opts.AllowFullHit {
			max = n / m.bs
		}
		if !w.answers(m, s, max) {
			continue
		}
		hits, ev, host := m.lookup(nil, s.hashes, max)
		if !slices.Equal(hits, w.hits) || ev != w.evictable || host != 0 {
			return fmt.Errorf("kept walk of slot %d: hits %v (evictable %d), a lookup gives %v (evictable %d, host %d)",
				i, w.hits, w.evictable, hits, ev, host)
		}
	}
	return nil
}

// warmed returns a manager of cfg, walking new prompts unless off, with
// the blocks of prompt cached by a freed sequence (none if prompt is nil).
func warmed(t testing.TB, cfg Config, off bool, prompt []int32) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.walk.off = off
	if prompt == nil {
		return m
	}
	id, _, err := m.Create(prompt, nil)
	if err == nil {
		err = m.Free(id)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// count returns the tokens 0 to n-1.
func count(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// twins are two managers of one configuration given the same calls, the
// first walking new prompts as it hashes them (promptWalk), the second
// not: every answer, table, statistic and event must be the same.
type twins struct {
	t    *rapid.T
	a, b *Manager
	// walked counts prompts the first walked, taken counts plans that
	// took a kept answer (to see that the test reaches both).
	walked, hits, taken int
	evA, evB            []Event
}

func newTwins(t *rapid.T, cfg func() Config) *twins {
	a, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	b.walk.off = true
	return &twins{t: t, a: a, b: b}
}

// same fails unless the twins' results agree.
func (tw *twins) same(op string, ra, rb []any) {
	tw.t.Helper()
	for i := range ra {
		if ea, ok := ra[i].(error); ok {
			eb, _ := rb[i].(error)
			if eb == nil || ea.Error() != eb.Error() {
				tw.t.Fatalf("%s: the walking manager says %v, the other %v", op, ea, rb[i])
			}
			continue
		}
		if !reflect.DeepEqual(ra[i], rb[i]) {
			tw.t.Fatalf("%s: result %d: the walking manager says %v, the other %v", op, i, ra[i], rb[i])
		}
	}
}

// compare checks the twins' whole observable state, and the walk.
func (tw *twins) compare(op string, ids []SeqID) {
	tw.t.Helper()
	a, b := tw.a, tw.b
	if err := a.Check(); err != nil {
		tw.t.Fatalf("%s: %v", op, err)
	}
	if err := b.Check(); err != nil {
		tw.t.Fatalf("%s: %v", op, err)
	}
	if err := checkWalk(a); err != nil {
		tw.t.Fatalf("%s: %v", op, err)
	}
	if sa, sb := a.Stats(), b.Stats(); sa != sb {
		tw.t.Fatalf("%s: stats differ:\n%+v\n%+v", op, sa, sb)
	}
	tw.evA, tw.evB = a.DrainEvents(tw.evA[:0]), b.DrainEvents(tw.evB[:0])
	if !reflect.DeepEqual(tw.evA, tw.evB) {
		tw.t.Fatalf("%s: events differ:\n%v\n%v", op, tw.evA, tw.evB)
	}
	for _, id := range ids {
		ta, ea := a.Table(id)
		tb, eb := b.Table(id)
		tw.same(fmt.Sprintf("%s: Table(%v)", op, id), []any{ta, ea}, []any{tb, eb})
	}
}

// walkConfigs are the configurations the twins run: the SHA-256 fast
// path (16-token blocks), the general loop (other sizes, FastHasher),
// and managers that do not walk (host tier, two groups), which must not
// be changed by the walk's hooks either.
func drawConfig(t *rapid.T) func() Config {
	// Half the runs take the SHA-256 fast path (16-token blocks).
	bs := rapid.SampledFrom([]int{16, 16, 16, 1, 2, 4}).Draw(t, "bs")
	fast := rapid.IntRange(0, 3).Draw(t, "hasher") == 0
	blocks := rapid.IntRange(6, 40).Draw(t, "blocks")
	kind := rapid.IntRange(0, 5).Draw(t, "kind")
	unified := rapid.Bool().Draw(t, "unified")
	return func() Config {
		c := Config{BlockSize: bs, NumBlocks: blocks, Events: 1 << 12, UnifiedFreeQueue: unified}
		if fast {
			c.Hasher = FastHasher{}
		}
		switch kind {
		case 4:
			c.HostBlocks = blocks
		case 5:
			c.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2 * bs}}
		}
		return c
	}
}

// TestPromptWalkTwins drives a manager that walks new prompts and one that
// does not with the same random calls: prompts drawn from a few shared
// prefixes (partial hits, duplicates of one content in several blocks),
// a pool small enough that evictions take blocks from the middle of
// cached chains, and between a prompt's Add and its admission any other
// call (commits that extend or shorten its hits, claims, truncations and
// appends of the waiting sequence, cache resets).
func TestPromptWalkTwins(t *testing.T) {
	var walked, hits, taken int
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t)
		tw := newTwins(t, cfg)
		bs := cfg().BlockSize
		// Prefixes that share their start, so prompts hit part of each
		// other's cached blocks and then differ.
		root := rapid.SliceOfN(rapid.Int32Range(0, 2), bs, 3*bs).Draw(t, "root")
		prefixes := make([][]int32, 3)
		for i := range prefixes {
			prefixes[i] = append(slices.Clone(root), rapid.SliceOfN(rapid.Int32Range(0, 2), 0, 4*bs).Draw(t, "prefix")...)
		}
		prompt := func() []int32 {
			p := slices.Clone(prefixes[rapid.IntRange(0, len(prefixes)-1).Draw(t, "which")])
			p = p[:rapid.IntRange(len(p)/2, len(p)).Draw(t, "cut")]
			return append(p, rapid.SliceOfN(rapid.Int32Range(0, 2), 1, 3*bs).Draw(t, "tail")...)
		}
		options := func() *SeqOptions {
			switch rapid.IntRange(0, 5).Draw(t, "opts") {
			case 0:
				return &SeqOptions{AllowFullHit: true}
			case 1:
				return &SeqOptions{LoRA: 2}
			case 2:
				return &SeqOptions{Salt: "s"}
			case 3:
				return &SeqOptions{Window: 2 * bs}
			}
			return nil
		}
		var ids []SeqID
		var last SeqID // the last prompt added: most calls go to it
		pick := func() SeqID {
			if len(ids) == 0 {
				return 0
			}
			if last != 0 && rapid.Bool().Draw(t, "last") {
				return last
			}
			return ids[rapid.IntRange(0, len(ids)-1).Draw(t, "seq")]
		}
		for step := range rapid.IntRange(1, 80).Draw(t, "steps") {
			a, b := tw.a, tw.b
			var op string
			switch rapid.IntRange(0, 12).Draw(t, "op") {
			case 0, 1:
				p, o := prompt(), options()
				op = fmt.Sprintf("Add(%d tokens, %+v)", len(p), o)
				ia, ea := a.Add(p, o)
				ib, eb := b.Add(p, o)
				tw.same(op, []any{ia, ea}, []any{ib, eb})
				if ea != nil {
					break
				}
				ids = append(ids, ia)
				last = ia
				if a.walk.valid {
					tw.walked++
					tw.hits += len(a.walk.hits)
				}
				if rapid.Bool().Draw(t, "at once") { // in the same pass
					tw.compare(op, ids)
					op += ", " + tw.admit(ia, false)
				}
			case 2:
				p, o := prompt(), options()
				op = fmt.Sprintf("Create(%d tokens, %+v)", len(p), o)
				ia, ca, ea := a.Create(p, o)
				ib, cb, eb := b.Create(p, o)
				tw.same(op, []any{ia, ca, ea}, []any{ib, cb, eb})
				if ea == nil {
					ids = append(ids, ia)
				}
			case 3:
				op = tw.admit(pick(), true)
			case 4, 5:
				op = tw.admit(pick(), false)
			case 6:
				id := pick()
				toks := rapid.SliceOfN(rapid.Int32Range(0, 2), 1, 2*bs).Draw(t, "append")
				op = fmt.Sprintf("Append(%v, %d tokens)", id, len(toks))
				tw.same(op, []any{a.Append(id, toks...)}, []any{b.Append(id, toks...)})
			case 7:
				id := pick()
				n := rapid.IntRange(1, 8*bs).Draw(t, "n")
				op = fmt.Sprintf("Truncate(%v, %d)", id, n)
				tw.same(op, []any{a.Truncate(id, n)}, []any{b.Truncate(id, n)})
			case 8:
				id := pick()
				if rapid.Bool().Draw(t, "preempt") {
					op = fmt.Sprintf("Preempt(%v)", id)
					tw.same(op, []any{a.Preempt(id)}, []any{b.Preempt(id)})
				} else {
					op = fmt.Sprintf("Free(%v)", id)
					ea, eb := a.Free(id), b.Free(id)
					tw.same(op, []any{ea}, []any{eb})
					if ea == nil {
						ids = slices.DeleteFunc(ids, func(x SeqID) bool { return x == id })
					}
				}
			case 9:
				op = "ResetCache"
				tw.same(op, []any{a.ResetCache()}, []any{b.ResetCache()})
			case 10:
				id := pick()
				maxNew := rapid.IntRange(1, 4*bs).Draw(t, "maxNew")
				if rapid.Bool().Draw(t, "dry") {
					op = fmt.Sprintf("CanAdmitChunk(%v, %d)", id, maxNew)
					tw.countTaken(id)
					aa, ea := a.CanAdmitChunk(id, maxNew)
					ab, eb := b.CanAdmitChunk(id, maxNew)
					tw.same(op, []any{aa, ea}, []any{ab, eb})
					break
				}
				op = fmt.Sprintf("AdmitChunk(%v, %d)", id, maxNew)
				tw.countTaken(id)
				ca, ra, ea := a.AdmitChunk(id, maxNew, nil)
				cb, rb, eb := b.AdmitChunk(id, maxNew, nil)
				tw.same(op, []any{ca, ra, ea}, []any{cb, rb, eb})
			case 12:
				op = "free every running sequence"
				for _, id := range slices.Clone(ids) {
					if r, _ := a.Running(id); r {
						tw.same(op, []any{a.Free(id)}, []any{b.Free(id)})
						ids = slices.DeleteFunc(ids, func(x SeqID) bool { return x == id })
					}
				}
			case 11: // a slot taken without hashing
				p, o := prompt(), options()
				op = fmt.Sprintf("AddHashed(%d tokens, %+v)", len(p), o)
				ha, _ := a.BlockHashes(nil, p, o)
				hb, _ := b.BlockHashes(nil, p, o)
				ia, ea := a.AddHashed(p, ha, o)
				ib, eb := b.AddHashed(p, hb, o)
				tw.same(op, []any{ia, ea}, []any{ib, eb})
				if ea == nil {
					ids = append(ids, ia)
				}
			}
			tw.compare(fmt.Sprintf("step %d: %s", step, op), ids)
		}
		walked += tw.walked
		hits += tw.hits
		taken += tw.taken
	})
	// The properties above hold trivially if nothing is walked or taken.
	if walked == 0 || hits == 0 || taken == 0 {
		t.Fatalf("%d prompts walked to %d hits, %d plans took a kept answer: the test misses a path", walked, hits, taken)
	}
	t.Logf("%d prompts walked to %d hits, %d plans took a kept answer", walked, hits, taken)
}

// admit calls CanAdmit (dry) or Admit on both twins and compares their
// answers; it returns the call's name.
func (tw *twins) admit(id SeqID, dry bool) string {
	tw.t.Helper()
	tw.countTaken(id)
	if dry {
		aa, ea := tw.a.CanAdmit(id)
		ab, eb := tw.b.CanAdmit(id)
		op := fmt.Sprintf("CanAdmit(%v)", id)
		tw.same(op, []any{aa, ea}, []any{ab, eb})
		return op
	}
	ca, ea := tw.a.Admit(id)
	cb, eb := tw.b.Admit(id)
	op := fmt.Sprintf("Admit(%v)", id)
	tw.same(op, []any{ca, ea}, []any{cb, eb})
	return op
}

// countTaken notes whether the plan of id is about to take the kept walk.
func (tw *twins) countTaken(id SeqID) {
	m := tw.a
	s, err := m.seq(id)
	if err != nil || s.state != seqWaiting || !m.walks(s) {
		return
	}
	n := len(s.tokens)
	max := (n - 1) / m.bs
	if s.opts.AllowFullHit {
		max = n / m.bs
	}
	if m.walk.answers(m, s, max) {
		tw.taken++
	}
}

// TestPromptWalkStale: a kept answer made stale by each kind of change
// between a prompt's Add and its admission is not taken, and the plan
// gives a fresh lookup's answer.
func TestPromptWalkStale(t *testing.T) {
	const bs = 16
	doc := make([]int32, 6*bs+3)
	for i := range doc {
		doc[i] = int32(i % 7)
	}
	for _, tc := range []struct {
		name string
		// change runs between Add(doc) and the plan. Each manager starts
		// with doc[:3*bs+1] cached by a freed sequence, and early, a
		// sequence of doc[:bs+1] added before doc, waiting.
		change func(m *Manager, waiting, early SeqID) error
	}{
		{"nothing", func(*Manager, SeqID, SeqID) error { return nil }},
		{"the first miss gets cached", func(m *Manager, _, _ SeqID) error {
			_, _, err := m.Create(doc[:5*bs+1], nil)
			return err
		}},
		{"a hit is claimed", func(m *Manager, _, _ SeqID) error {
			_, _, err := m.Create(doc[:bs+1], nil)
			return err
		}},
		{"a hit is evicted", func(m *Manager, _, _ SeqID) error {
			// Fill the pool with other content: the LRU victims are the
			// cached prefix's blocks.
			other := make([]int32, 17*bs)
			for i := range other {
				other[i] = 100 + int32(i)
			}
			id, _, err := m.Create(other, nil)
			if err != nil {
				return err
			}
			return m.Free(id)
		}},
		{"a held hit is rewritten", func(m *Manager, _, _ SeqID) error {
			id, _, err := m.Create(doc[:3*bs+1], nil) // holds the three hits
			if err != nil {
				return err
			}
			if err := m.Truncate(id, 2*bs+3); err != nil {
				return err
			}
			return m.Append(id, 99) // forgets the third, which it writes into
		}},
		{"a sequence added before is admitted", func(m *Manager, _, early SeqID) error {
			// Admitting it hashes nothing and commits nothing (it hits
			// the first block and allocates a partly filled one): only
			// the allocator's counters see the hit it claims.
			_, err := m.Admit(early)
			return err
		}},
		{"the waiting prompt is cut", func(m *Manager, waiting, _ SeqID) error {
			return m.Truncate(waiting, 2*bs+1)
		}},
		{"the waiting prompt is cut and regrown", func(m *Manager, waiting, _ SeqID) error {
			if err := m.Truncate(waiting, bs+1); err != nil {
				return err
			}
			tail := slices.Clone(doc[bs+1:])
			tail[0]++
			return m.Append(waiting, tail...)
		}},
		{"the cache is reset", func(m *Manager, _, _ SeqID) error { return m.ResetCache() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var plans [2]struct {
				cached int
				stats  Stats
			}
			for i, off := range []bool{false, true} {
				m := warmed(t, Config{BlockSize: bs, NumBlocks: 20}, off, doc[:3*bs+1])
				early, err := m.Add(doc[:bs+1], nil)
				if err != nil {
					t.Fatal(err)
				}
				id, err := m.Add(doc, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !off && (!m.walk.valid || len(m.walk.hits) != 3) {
					t.Fatalf("Add walked to %d hits (kept %v), want 3", len(m.walk.hits), m.walk.valid)
				}
				if err := tc.change(m, id, early); err != nil {
					t.Fatal(err)
				}
				if err := checkWalk(m); err != nil {
					t.Fatal(err)
				}
				if plans[i].cached, err = m.Admit(id); err != nil {
					t.Fatal(err)
				}
				plans[i].stats = m.Stats()
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			if plans[0] != plans[1] {
				t.Fatalf("walking: %+v\nnot walking: %+v", plans[0], plans[1])
			}
		})
	}
}

// TestPromptWalkLimits: a fully cached prompt of whole blocks walks to
// the lookup's limit, one block short of the prompt unless AllowFullHit,
// on the SHA-256 fast path (16-token blocks) and the general loop.
func TestPromptWalkLimits(t *testing.T) {
	for _, bs := range []int{16, 4} {
		for _, full := range []bool{false, true} {
			t.Run(fmt.Sprintf("bs=%d/full=%v", bs, full), func(t *testing.T) {
				doc := count(5 * bs)
				opts := &SeqOptions{AllowFullHit: full}
				var got [2]int
				for i, off := range []bool{false, true} {
					m := warmed(t, Config{BlockSize: bs, NumBlocks: 16}, off, doc)
					id, err := m.Add(doc, opts)
					if err != nil {
						t.Fatal(err)
					}
					want := 4
					if full {
						want = 5
					}
					if !off && len(m.walk.hits) != want {
						t.Fatalf("walked %d hits, want %d", len(m.walk.hits), want)
					}
					if err := checkWalk(m); err != nil {
						t.Fatal(err)
					}
					if got[i], err = m.Admit(id); err != nil {
						t.Fatal(err)
					}
				}
				if got[0] != got[1] {
					t.Fatalf("walking: %d tokens cached, not walking: %d", got[0], got[1])
				}
			})
		}
	}
}

// TestPromptWalkGuesses: on the SHA-256 fast path, the walk takes the
// block after a hit only where the index would name it, in the cases
// where the guess is wrong: the next block holds another continuation,
// duplicates the content the index names elsewhere, was uncached in the
// middle of its chain, or the chain continues in a block recomputed
// elsewhere.
func TestPromptWalkGuesses(t *testing.T) {
	const bs = 16
	doc := func(seed, blocks int) []int32 {
		out := make([]int32, blocks*bs)
		for i := range out {
			out[i] = int32(seed*1000 + i)
		}
		return out
	}
	x, y, z := doc(1, 3), doc(2, 3), doc(3, 3)
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	create := func(t *testing.T, m *Manager, p []int32) SeqID {
		t.Helper()
		id, _, err := m.Create(p, nil)
		must(t, err)
		return id
	}
	for _, tc := range []struct {
		name string
		// setup prepares the cache and returns the prompt to Add.
		setup func(t *testing.T, m *Manager) []int32
		hits  int // the lookup's
	}{
		{"another continuation", func(t *testing.T, m *Manager) []int32 {
			must(t, m.Free(create(t, m, slices.Concat(x, y, []int32{7}))))
			return slices.Concat(x, z, []int32{7})
		}, 3},
		{"a duplicate that does not head its content", func(t *testing.T, m *Manager) []int32 {
			// b's blocks hold x[0] (first) and x[1] (after a's), in
			// consecutive blocks: after b's x[0] the guess is b's x[1],
			// but the index names a's, and a's x[2] follows it.
			a := create(t, m, x[:3])
			b := create(t, m, x[:3])
			must(t, m.Append(b, x[3:bs+4]...))
			must(t, m.Append(a, x[3:2*bs+1]...))
			must(t, m.Append(b, x[bs+4:2*bs+1]...))
			must(t, m.Append(a, x[2*bs+1:]...))
			must(t, m.Free(a))
			must(t, m.Free(b))
			return slices.Concat(x, []int32{7})
		}, 3},
		{"a block uncached in the middle", func(t *testing.T, m *Manager) []int32 {
			id := create(t, m, slices.Concat(x, y, []int32{7}))
			must(t, m.Truncate(id, 4*bs+3))
			must(t, m.Append(id, 99)) // y[1]'s block leaves the cache
			must(t, m.Free(id))
			return slices.Concat(x, y, []int32{7})
		}, 4},
		{"a chain continued in a block recomputed elsewhere", func(t *testing.T, m *Manager) []int32 {
			id := create(t, m, slices.Concat(x, y, []int32{7}))
			must(t, m.Truncate(id, 4*bs+3))
			must(t, m.Append(id, 99))
			must(t, m.Free(id))
			// y[1] again, in a block far from its neighbours.
			must(t, m.Free(create(t, m, slices.Concat(x, y[:2*bs], []int32{7}))))
			return slices.Concat(x, y, []int32{7})
		}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tables [2][]allocator.BlockID
			for i, off := range []bool{false, true} {
				m, err := New(Config{BlockSize: bs, NumBlocks: 64})
				must(t, err)
				m.walk.off = off
				prompt := tc.setup(t, m)
				id, err := m.Add(prompt, nil)
				must(t, err)
				if !off && len(m.walk.hits) != tc.hits {
					t.Fatalf("walked %d hits, want %d", len(m.walk.hits), tc.hits)
				}
				must(t, checkWalk(m))
				cached, err := m.Admit(id)
				must(t, err)
				if cached != tc.hits*bs {
					t.Fatalf("%d tokens cached, want %d", cached, tc.hits*bs)
				}
				tables[i], err = m.Table(id)
				must(t, err)
				must(t, m.Check())
			}
			if !slices.Equal(tables[0], tables[1]) {
				t.Fatalf("walking: table %v, not walking: %v", tables[0], tables[1])
			}
		})
	}
}

// TestPromptWalkSlotReused: a sequence that takes the slot of a walked one
// without hashing (AddHashed) does not take its answer.
func TestPromptWalkSlotReused(t *testing.T) {
	const bs = 16
	doc := count(4*bs + 1)
	other := slices.Clone(doc)
	other[0] = 99
	m := warmed(t, Config{BlockSize: bs, NumBlocks: 32}, false, doc)
	ph, err := m.NewPromptHasher(nil)
	if err != nil {
		t.Fatal(err)
	}
	hashes := ph.Hashes(nil, other, nil) // before: hashing counts
	id, err := m.Add(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.walk.hits) != 4 {
		t.Fatalf("walked %d hits, want 4", len(m.walk.hits))
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if id, err = m.AddHashed(other, hashes, nil); err != nil {
		t.Fatal(err)
	}
	if cached, err := m.Admit(id); err != nil || cached != 0 {
		t.Fatalf("Admit: %d tokens cached (%v), want none", cached, err)
	}
}

// TestPromptWalkAllocs: adding a cold or warm prompt, planning its
// admission from the kept walk and freeing it allocates nothing once the
// buffers have grown, on the fast path and the general loop.
func TestPromptWalkAllocs(t *testing.T) {
	for _, bs := range []int{16, 4} {
		for _, warm := range []bool{false, true} {
			prompt := count(30*bs + 1)
			var cached []int32
			if warm {
				cached = prompt
			}
			m := warmed(t, Config{BlockSize: bs, NumBlocks: 80}, false, cached)
			var fail error
			cycle := func() {
				id, err := m.Add(prompt, nil)
				if err == nil {
					_, err = m.CanAdmit(id)
				}
				if err == nil {
					err = m.Free(id)
				}
				if err != nil && fail == nil {
					fail = err
				}
			}
			cycle()
			if a := testing.AllocsPerRun(20, cycle); a != 0 || fail != nil {
				t.Fatalf("bs %d warm %v: %v allocations a cycle (%v)", bs, warm, a, fail)
			}
			want := 0
			if warm {
				want = 30
			}
			if !m.walk.valid || len(m.walk.hits) != want {
				t.Fatalf("bs %d: walked %d hits (kept %v), want %d", bs, len(m.walk.hits), m.walk.valid, want)
			}
		}
	}
}
