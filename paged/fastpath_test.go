package paged

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// TestAppendWindowedAfterAdmitSlides: the first decode token of a
// sliding-window sequence (SeqOptions.Window) just admitted slides its
// window, through Append's inline path as through the general one
// (appendTokens): the blocks no query reads any more are released at
// once, not when the next block starts. Before the fix Admit marked a
// windowed sequence own, so Append wrote the token in place and kept
// every prompt block until the sequence started a new block.
func TestAppendWindowedAfterAdmitSlides(t *testing.T) {
	type result struct {
		table []int32
		avail int
		stats Stats
	}
	run := func(general bool) result {
		m, err := New(Config{BlockSize: 4, NumBlocks: 32})
		if err != nil {
			t.Fatal(err)
		}
		prompt := make([]int32, 21) // 5 full blocks and one token
		for i := range prompt {
			prompt[i] = int32(i)
		}
		id, err := m.Add(prompt, &SeqOptions{Window: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Admit(id); err != nil {
			t.Fatal(err)
		}
		for tok := range int32(3) { // up to the token that fills the block
			if general {
				err = m.appendTokens(id, []int32{100 + tok}, false)
			} else {
				err = m.Append(id, 100+tok)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		tb, _ := m.Table(id)
		var r result
		for _, b := range tb {
			r.table = append(r.table, int32(b))
		}
		r.avail, r.stats = m.available(), m.Stats()
		return r
	}
	fast, general := run(false), run(true)
	if !slices.Equal(fast.table, general.table) || fast.avail != general.avail || fast.stats != general.stats {
		t.Fatalf("Append: table %v, %d available; general path: table %v, %d available", fast.table, fast.avail, general.table, general.avail)
	}
	if general.table[0] != int32(nullBlock) {
		t.Fatalf("the general path did not slide: %v", general.table)
	}
}

// fastPair is two managers of one configuration driven with the same
// calls, except that fast takes Append's one-token fast paths (the inline
// write, appendMore's fill and fresh-block cases, a hybrid manager's
// appendOne and startPair) and slow the general path (appendTokens) for
// the same tokens, and that with the default LRU slow's block pool sees
// it as a Policy only (opaqueLRU), so it releases, claims and evicts
// through the interface, not the inlined Try forms. Everything observable
// must agree after every step.
type fastPair struct {
	fast, slow *Manager
	groups     int
	ids        []SeqID   // live handles
	dead       []SeqID   // freed handles, whose slots may be reused
	rest       [][]int32 // per ids[i]: tokens AdmitChunk cut off
	next       int32     // the next fresh decode token
	// batch is fast's persistent Batch (rows reused while their
	// sequence's version holds); slow builds each step's into a new one.
	batch Batch
}

// opaqueLRU is the default LRU behind the Policy interface alone, so
// that the block pool takes its general policy calls, not its inlined
// *eviction.LRU forms (blockPool.lru nil).
type opaqueLRU struct{ eviction.Policy }

func newFastPair(t *rapid.T, cfg Config) *fastPair {
	var twins [2]*Manager
	for i := range twins {
		if i == 1 && cfg.Policy == nil {
			cfg.Policy = func(n int) eviction.Policy { return opaqueLRU{eviction.NewLRU(n)} }
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		twins[i] = m
	}
	return &fastPair{fast: twins[0], slow: twins[1], groups: max(1, len(cfg.Groups)), next: 1 << 20}
}

// both runs fn on each manager and requires the same error.
func (p *fastPair) both(t *rapid.T, what string, fn func(m *Manager) error) error {
	ef, es := fn(p.fast), fn(p.slow)
	if (ef == nil) != (es == nil) || (ef != nil && ef.Error() != es.Error()) {
		t.Fatalf("%s: fast path %v, general path %v", what, ef, es)
	}
	return ef
}

// appendOne appends tok to id one token at a time: through Append on
// fast, through appendTokens on slow.
func (p *fastPair) appendOne(t *rapid.T, id SeqID, tok int32) error {
	ef := p.fast.Append(id, tok)
	es := p.slow.appendTokens(id, []int32{tok}, false)
	if (ef == nil) != (es == nil) || (ef != nil && ef.Error() != es.Error()) {
		t.Fatalf("Append(%v, %d): fast path %v, general path %v", id, tok, ef, es)
	}
	return ef
}

func (p *fastPair) prompt(t *rapid.T, bs int) []int32 {
	return drawBranchingPrompt(t, 6*bs, false)
}

// drawBranchingPrompt draws a prompt of 1 to maxLen tokens from one of
// three families (0, 1000, 2000, ... counting up), whose tokens from a
// drawn branch point on are moved by 500: prompts of a family share the
// prefix before their branch points. The branch is counted from the end
// if fromEnd, so that rapid's preference for small values makes long
// shared prefixes common.
func drawBranchingPrompt(t *rapid.T, maxLen int, fromEnd bool) []int32 {
	n := rapid.IntRange(1, maxLen).Draw(t, "promptLen")
	base := int32(rapid.IntRange(0, 2).Draw(t, "prefix")) * 1000
	branch := rapid.IntRange(0, n).Draw(t, "branch")
	if fromEnd {
		branch = n - branch
	}
	pr := make([]int32, n)
	for i := range pr {
		pr[i] = base + int32(i)
		if i >= branch {
			pr[i] += 500
		}
	}
	return pr
}

func (p *fastPair) pick(t *rapid.T, label string) (int, SeqID) {
	i := rapid.IntRange(0, len(p.ids)-1).Draw(t, label)
	return i, p.ids[i]
}

func (p *fastPair) remove(i int) {
	p.dead = append(p.dead, p.ids[i])
	p.ids = slices.Delete(p.ids, i, i+1)
	p.rest = slices.Delete(p.rest, i, i+1)
}

// compareBatch builds the batch of sched on fast into its persistent
// Batch and on slow into a new one, and requires the same batch: the
// persistent rows (kept while a sequence's version holds) must read
// every table change the fast paths made, and every read it names is
// backed (checkBatchReads).
func (p *fastPair) compareBatch(t *rapid.T, what string, sched []Scheduled) {
	var fresh Batch
	ef, es := p.fast.BuildBatch(&p.batch, sched), p.slow.BuildBatch(&fresh, sched)
	if (ef == nil) != (es == nil) || (ef != nil && ef.Error() != es.Error()) {
		t.Fatalf("%s: persistent batch %v, new batch %v", what, ef, es)
	}
	if ef != nil {
		return
	}
	if err := checkBatchReads(p.fast, &p.batch, sched); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	f, s := &p.batch, &fresh
	if !slices.Equal(f.Seqs, s.Seqs) || !slices.Equal(f.SeqLens, s.SeqLens) || !slices.Equal(f.QueryLens, s.QueryLens) ||
		!slices.Equal(f.QueryStart, s.QueryStart) || !slices.Equal(f.Slots, s.Slots) || !slices.Equal(f.BlocksPerSeq, s.BlocksPerSeq) ||
		!slices.Equal(f.Copies, s.Copies) || !slices.Equal(f.Swaps, s.Swaps) || len(f.GroupSlots) != len(s.GroupSlots) {
		t.Fatalf("%s: persistent batch %+v\nnew batch %+v", what, f, s)
	}
	for g := range f.GroupSlots {
		if !slices.Equal(f.GroupSlots[g], s.GroupSlots[g]) {
			t.Fatalf("%s: group %d slots %v, new batch %v", what, g+1, f.GroupSlots[g], s.GroupSlots[g])
		}
	}
	rows := func(what string, ft, st []int32, fw, sw int, lens func(i int) int) {
		for i := range f.Seqs {
			nb := lens(i)
			fr, sr := ft[i*fw:(i+1)*fw], st[i*sw:(i+1)*sw]
			if !slices.Equal(fr[:nb], sr[:nb]) || slices.ContainsFunc(fr[nb:], func(b int32) bool { return b != 0 }) {
				t.Fatalf("%s: row %d (%v) %v, new batch %v", what, i, f.Seqs[i], fr, sr)
			}
		}
	}
	rows(what, f.Tables, s.Tables, f.stride, s.stride, func(i int) int { return int(f.BlocksPerSeq[i]) })
	for g := range f.GroupTables {
		fw, sw := f.groupStride, s.groupStride
		pages := p.fast.kinds[g+1].pages()
		if pages > 0 { // a state's rows are its pages
			fw, sw = pages, pages
			if !slices.Equal(f.StateDrafts[g], s.StateDrafts[g]) {
				t.Fatalf("%s: group %d draft states %v, new batch %v", what, g+1, f.StateDrafts[g], s.StateDrafts[g])
			}
		}
		rows(fmt.Sprintf("%s group %d", what, g+1), f.GroupTables[g], s.GroupTables[g], fw, sw, func(i int) int {
			if pages > 0 {
				return pages // its drafts' states are StateDrafts
			}
			sq, _ := p.fast.seq(f.Seqs[i])
			blocks, _ := groupView(sq, p.fast.kinds[g+1].target(g+1)) // a Shared group's are its target's
			return len(blocks)
		})
	}
	if !slices.Equal(f.DraftStart, s.DraftStart) || !slices.Equal(f.StateRead, s.StateRead) {
		t.Fatalf("%s: DraftStart %v, StateRead %v; new batch %v, %v", what, f.DraftStart, f.StateRead, s.DraftStart, s.StateRead)
	}
}

// compare requires the two managers to agree on everything a caller can
// observe, and on the block pool's metadata and index (the fast paths
// must commit the same blocks in the same order).
func (p *fastPair) compare(t *rapid.T, step int, what string) {
	f, s := p.fast, p.slow
	if st := f.Stats(); st.PeakUsedBlocks < st.UsedBlocks {
		t.Fatalf("step %d %s: PeakUsedBlocks %d < UsedBlocks %d", step, what, st.PeakUsedBlocks, st.UsedBlocks)
	}
	if f.Stats() != s.Stats() {
		t.Fatalf("step %d %s: stats differ:\nfast    %+v\ngeneral %+v", step, what, f.Stats(), s.Stats())
	}
	if f.available() != s.available() {
		t.Fatalf("step %d %s: %d blocks available, general path %d", step, what, f.available(), s.available())
	}
	for _, id := range slices.Concat(p.ids, p.dead) {
		sf, e1 := f.seq(id)
		ss, e2 := s.seq(id)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("step %d %s: %v: %v, general path %v", step, what, id, e1, e2)
		}
		if e1 != nil {
			continue
		}
		if !slices.Equal(sf.tokens, ss.tokens) || sf.state != ss.state || sf.committed != ss.committed ||
			sf.spec != ss.spec || sf.released != ss.released || !slices.Equal(sf.hashes, ss.hashes) {
			t.Fatalf("step %d %s: %v: %d tokens, state %v, committed %d, spec %d, released %d, %d hashes; general path %d, %v, %d, %d, %d, %d",
				step, what, id, len(sf.tokens), sf.state, sf.committed, sf.spec, sf.released, len(sf.hashes),
				len(ss.tokens), ss.state, ss.committed, ss.spec, ss.released, len(ss.hashes))
		}
		for g := range p.groups {
			if tf, ts := f.table(sf, g), s.table(ss, g); !slices.Equal(tf, ts) {
				t.Fatalf("step %d %s: %v group %d: table %v, general path %v", step, what, id, g, tf, ts)
			}
		}
		// The hashes kept match the tokens (reused ones too).
		if want, err := f.BlockHashes(nil, sf.tokens[:len(sf.hashes)*f.bs], &sf.opts); !sf.unknown && (err != nil || !slices.Equal(want, sf.hashes)) {
			t.Fatalf("step %d %s: %v: the hashes of its %d blocks are not its tokens' (%v)", step, what, id, len(sf.hashes), err)
		}
	}
	if ef, es := f.DrainEvents(nil), s.DrainEvents(nil); !reflect.DeepEqual(ef, es) {
		t.Fatalf("step %d %s: events differ:\nfast    %+v\ngeneral %+v", step, what, ef, es)
	}
	// The step goes on over several calls at times, so that copy
	// sources parked by one call meet the allocations and space checks
	// of the next (cowhold).
	if rapid.IntRange(0, 2).Draw(t, "endStep") > 0 {
		if cf, cs := f.TakeCopies(nil), s.TakeCopies(nil); !slices.Equal(cf, cs) {
			t.Fatalf("step %d %s: copies %v, general path %v", step, what, cf, cs)
		}
		if wf, ws := f.TakeSwaps(nil), s.TakeSwaps(nil); !slices.Equal(wf, ws) {
			t.Fatalf("step %d %s: swaps %v, general path %v", step, what, wf, ws)
		}
	} else if !slices.Equal(f.copies, s.copies) || !slices.Equal(f.bp.parked, s.bp.parked) {
		t.Fatalf("step %d %s: copies %v, parked %v; general path %v, %v", step, what, f.copies, f.bp.parked, s.copies, s.bp.parked)
	}
	f.bp.index.settle()
	s.bp.index.settle()
	if !slices.Equal(f.bp.cachedFlags(), s.bp.cachedFlags()) || !slices.Equal(f.bp.index.slots, s.bp.index.slots) {
		t.Fatalf("step %d %s: the prefix index differs from the general path's", step, what)
	}
	for id, c := range f.bp.cachedFlags() {
		if c && (f.bp.hash[id] != s.bp.hash[id] || f.bp.index.meta[id] != s.bp.index.meta[id]) {
			t.Fatalf("step %d %s: block %d holds other content or links than the general path's", step, what, id)
		}
	}
	if err := f.Check(); err != nil {
		t.Fatalf("step %d %s: fast: %v", step, what, err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("step %d %s: general: %v", step, what, err)
	}
}

// TestAppendFastPathsMatchGeneral drives a fastPair (see fastPair)
// through every operation that leaves a sequence in a state Append's fast
// paths must read right: Admit and AdmitChunk (and giving the cut tokens
// back one at a time, or other tokens), drafts (refused Append while
// pending, then AcceptSpeculative of any count), Truncate to any length
// (cached content in the last block), Uncompute (blocks to commit
// again), Fork (shared last blocks, copy-on-write at and inside block
// boundaries), Preempt and re-Admit, Free and stale handles (of the freed
// generation and the next) whose slots may have been reused, sequences
// created from hashes, sliding windows (SeqOptions.Window) and LoRA/salt
// keys, batches built into a persistent Batch, on plain and hybrid
// managers (a full + window pair, full + chunked, two pairs, a state
// group, a window group shared by another, several kinds and sizes as
// drawAdversarialLayout draws them), swapping to and from a host
// tier (which evictions also offload to), with events on and off,
// SHA-256 and FastHasher, with and without the hash memo, LRU, ARC and
// S3-FIFO, both free-queue modes, in pools small enough to evict at
// every step. Besides agreeing, both managers pass Check, keep hashes
// that match their tokens and a peak no lower than their use. CI runs it
// at -rapid.checks=20000.
func TestAppendFastPathsMatchGeneral(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4, 16}).Draw(t, "bs")
		cfg := Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(8, 48).Draw(t, "blocks"),
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
		}
		if rapid.Bool().Draw(t, "events") {
			cfg.Events = 1 << 12
		}
		if rapid.Bool().Draw(t, "fastHasher") {
			cfg.Hasher = FastHasher{}
		}
		switch rapid.IntRange(0, 5).Draw(t, "policy") {
		case 0:
			cfg.Policy = eviction.NewARC // an Accessor and a Forgetter
		case 1:
			cfg.Policy = eviction.NewS3FIFO
		}
		cfg.DisablePrefixCaching = rapid.IntRange(0, 7).Draw(t, "noCaching") == 0
		cfg.HashMemo = rapid.Bool().Draw(t, "hashMemo")
		if rapid.IntRange(0, 2).Draw(t, "host") == 0 {
			cfg.HostBlocks = rapid.IntRange(4, 48).Draw(t, "hostBlocks")
		}
		switch rapid.IntRange(0, 8).Draw(t, "layout") {
		case 8: // several kinds and sizes (audit14): the default mode, or the compatible one without caching
			cfg.Groups = drawAdversarialLayout(t, bs)
			cfg.DisablePrefixCaching = cfg.DisablePrefixCaching || cfg.UnifiedFreeQueue
		case 6: // a state group (truncation below the accepted length refused)
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")}}
		case 7: // a window group and one sharing its blocks
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 6*bs).Draw(t, "gwindow")}, {Kind: Shared, Target: 1}}
		case 3:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 6*bs).Draw(t, "gwindow")}}
		case 4:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")}}
		case 5:
			w := rapid.IntRange(1, 6*bs).Draw(t, "gwindow")
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: w}, {Kind: FullAttention}, {Kind: SlidingWindow, Window: w}}
		}
		hybrid := len(cfg.Groups) > 0
		p := newFastPair(t, cfg)
		for step := range rapid.IntRange(1, 80).Draw(t, "steps") {
			op := rapid.IntRange(0, 18).Draw(t, "op")
			if len(p.ids) == 0 && op != 13 {
				op = 0
			}
			what := ""
			switch op {
			case 0: // Add, then Admit or AdmitChunk
				pr := p.prompt(t, bs)
				var opts SeqOptions
				if !hybrid && rapid.IntRange(0, 2).Draw(t, "windowed") == 0 {
					opts.Window = rapid.IntRange(1, 4*bs).Draw(t, "window")
				}
				switch rapid.IntRange(0, 5).Draw(t, "keys") {
				case 0:
					opts.LoRA = 7
				case 1:
					opts.Salt = "tenant"
				}
				what = fmt.Sprintf("Add(%d tokens, %+v)", len(pr), opts)
				var id SeqID
				if p.both(t, what, func(m *Manager) (err error) { id, err = m.Add(pr, &opts); return }) != nil {
					continue
				}
				p.ids, p.rest = append(p.ids, id), append(p.rest, nil)
				if rapid.Bool().Draw(t, "chunked") {
					maxNew := rapid.IntRange(1, 3*bs).Draw(t, "maxNew")
					var rest []int32
					p.both(t, what+" AdmitChunk", func(m *Manager) (err error) { _, rest, err = m.AdmitChunk(id, maxNew, nil); return })
					p.rest[len(p.rest)-1] = rest
				} else {
					p.both(t, what+" Admit", func(m *Manager) (err error) { _, err = m.Admit(id); return })
				}
			case 1, 2, 3, 4: // decode tokens, one at a time
				i, id := p.pick(t, "append")
				what = fmt.Sprintf("Append to %v", id)
				for range rapid.IntRange(1, 2*bs+1).Draw(t, "tokens") {
					var tok int32
					if len(p.rest[i]) > 0 && rapid.IntRange(0, 7).Draw(t, "giveBack") > 0 {
						// AdmitChunk's cut, given back (or, above, not:
						// its kept hashes must then not be reused).
						tok, p.rest[i] = p.rest[i][0], p.rest[i][1:]
					} else {
						tok, p.next = p.next, p.next+1
					}
					if p.appendOne(t, id, tok) != nil {
						break
					}
				}
			case 5: // several tokens in one call (the general path on both)
				i, id := p.pick(t, "appendMany")
				toks := make([]int32, rapid.IntRange(2, 2*bs+2).Draw(t, "many"))
				for k := range toks {
					toks[k], p.next = p.next, p.next+1
				}
				if len(p.rest[i]) > 0 {
					toks = p.rest[i][:min(len(toks), len(p.rest[i]))]
				}
				what = fmt.Sprintf("Append(%v, %d tokens)", id, len(toks))
				if p.both(t, what, func(m *Manager) error { return m.Append(id, toks...) }) == nil && len(p.rest[i]) > 0 {
					p.rest[i] = p.rest[i][len(toks):]
				}
			case 6: // drafts
				_, id := p.pick(t, "spec")
				toks := make([]int32, rapid.IntRange(1, 2*bs+1).Draw(t, "drafts"))
				for k := range toks {
					toks[k], p.next = p.next, p.next+1
				}
				what = fmt.Sprintf("AppendSpeculative(%v, %d tokens)", id, len(toks))
				p.both(t, what, func(m *Manager) error { return m.AppendSpeculative(id, toks...) })
			case 7: // the verdict on drafts
				_, id := p.pick(t, "accept")
				spec := 0
				if s, err := p.fast.seq(id); err == nil {
					spec = s.spec
				}
				n := rapid.IntRange(0, spec+1).Draw(t, "accepted")
				what = fmt.Sprintf("AcceptSpeculative(%v, %d of %d)", id, n, spec)
				p.both(t, what, func(m *Manager) error { return m.AcceptSpeculative(id, n) })
			case 8: // Truncate to any length, block boundaries included
				i, id := p.pick(t, "truncate")
				n, _ := p.fast.Len(id)
				k := rapid.IntRange(0, n+1).Draw(t, "keep")
				what = fmt.Sprintf("Truncate(%v, %d of %d)", id, k, n)
				if p.both(t, what, func(m *Manager) error { return m.Truncate(id, k) }) == nil {
					p.rest[i] = nil // the cut tokens are not given back after a Truncate
				}
			case 9:
				_, id := p.pick(t, "fork")
				what = fmt.Sprintf("Fork(%v)", id)
				var c SeqID
				if p.both(t, what, func(m *Manager) (err error) { c, err = m.Fork(id); return }) == nil {
					p.ids, p.rest = append(p.ids, c), append(p.rest, nil)
				}
			case 10:
				i, id := p.pick(t, "preempt")
				what = fmt.Sprintf("Preempt(%v)", id)
				if p.both(t, what, func(m *Manager) error { return m.Preempt(id) }) == nil {
					p.rest[i] = nil
				}
			case 11:
				_, id := p.pick(t, "admit")
				what = fmt.Sprintf("Admit(%v)", id)
				p.both(t, what, func(m *Manager) (err error) { _, err = m.Admit(id); return })
			case 12:
				i, id := p.pick(t, "free")
				what = fmt.Sprintf("Free(%v)", id)
				p.both(t, what, func(m *Manager) error { return m.Free(id) })
				p.remove(i)
			case 13: // a sequence created from hashes, its tail unknown
				pr := p.prompt(t, bs)
				hs, err := p.fast.BlockHashes(nil, pr, nil)
				if err != nil {
					t.Fatal(err)
				}
				hs = hs[:rapid.IntRange(0, len(hs)).Draw(t, "knownBlocks")]
				n := len(pr) + rapid.IntRange(0, 2*bs).Draw(t, "unknownTokens")
				what = fmt.Sprintf("CreateFromHashes(%d hashes, %d tokens)", len(hs), n)
				var id SeqID
				if p.both(t, what, func(m *Manager) (err error) { id, _, err = m.CreateFromHashes(hs, n, nil); return }) == nil {
					p.ids, p.rest = append(p.ids, id), append(p.rest, nil)
				}
			case 14: // a stale handle: its slot may hold another sequence
				if len(p.dead) == 0 {
					continue
				}
				id := p.dead[rapid.IntRange(0, len(p.dead)-1).Draw(t, "stale")]
				if rapid.Bool().Draw(t, "nextGen") {
					id += 1 << 32 // the generation Free moved the slot to
				}
				what = fmt.Sprintf("Append to stale %v", id)
				tok := p.next
				p.next++
				if p.appendOne(t, id, tok) == nil {
					t.Fatalf("%s: accepted", what)
				}
			case 18: // a step dropped: its tokens' KV never computed
				_, id := p.pick(t, "uncompute")
				n, _ := p.fast.Len(id)
				k := rapid.IntRange(max(0, n-3*bs), n).Draw(t, "computed")
				what = fmt.Sprintf("Uncompute(%v, %d of %d)", id, k, n)
				p.both(t, what, func(m *Manager) error { return m.Uncompute(id, k) })
			case 16, 17: // the host tier: swap sequences out, or back in, together
				var some []SeqID
				for _, id := range p.ids {
					if rapid.Bool().Draw(t, "swapThis") {
						some = append(some, id)
					}
				}
				if op == 16 {
					what = fmt.Sprintf("SwapOut(%v)", some)
					p.both(t, what, func(m *Manager) error { return m.SwapOut(some...) })
				} else {
					what = fmt.Sprintf("SwapIn(%v)", some)
					p.both(t, what, func(m *Manager) error { return m.SwapIn(some...) })
				}
			case 15: // a step's batch over some sequences, in a stable order
				var sched []Scheduled
				for _, id := range p.ids {
					if rapid.IntRange(0, 3).Draw(t, "skip") == 0 {
						continue
					}
					n := 1
					if rapid.IntRange(0, 4).Draw(t, "prefill") == 0 {
						n = rapid.IntRange(1, 3*bs).Draw(t, "newTokens")
					}
					sched = append(sched, Scheduled{ID: id, NewTokens: n})
				}
				what = fmt.Sprintf("BuildBatch(%v)", sched)
				p.compareBatch(t, what, sched)
			}
			p.compare(t, step, what)
		}
	})
}

// TestHybridLookupHitsAreIndexAnswers: a hybrid manager's hit is the
// longest prefix that is a hit in every group (hybridHitOracle: for
// layouts of several kinds, the fixed point of every kind's cut), and
// every block its admission hands out as a hit, in every group, is the block the index
// names for its content in that group (the first-inserted holder), though
// the lookup mostly finds it by guessing (blockPool.successor and run in
// group 0; in the window group Manager.sibling from what it found for the
// same group-0 block before, then blockPool.predecessor or guess from the
// neighbouring hit). Before each admission the sibling guesses are
// scrambled: set to random blocks, some holding the same content as a
// duplicate, some another group's; a guess that is not the index's answer
// must be rejected. Decode tokens come from a small alphabet so that
// sequences fill duplicate blocks of one content.
func TestHybridLookupHitsAreIndexAnswers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		w := rapid.IntRange(1, 6*bs).Draw(t, "window")
		cfg := Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(12, 64).Draw(t, "blocks"),
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
			Groups:           []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: w}},
		}
		switch rapid.IntRange(0, 7).Draw(t, "layout") {
		case 1: // two full groups: the lookup's group-by-group form
			cfg.Groups = append(cfg.Groups, Group{Kind: FullAttention})
		case 2:
			cfg.HostBlocks = rapid.IntRange(4, 32).Draw(t, "hostBlocks")
		case 3: // several kinds (the default mode only): two windows
			cfg.Groups = append(cfg.Groups, Group{Kind: SlidingWindow, Window: w + rapid.IntRange(1, 4*bs).Draw(t, "window2")})
			cfg.UnifiedFreeQueue = false
		case 4: // a window and a state (Hymba): the window's fast lookup
			cfg.Groups = append(cfg.Groups, Group{Kind: State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")})
			cfg.UnifiedFreeQueue = false
		case 5: // a window, a chunk, a state of another size, on two tiers
			cfg.Groups = append(cfg.Groups, Group{Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")}, Group{Kind: State, Pages: 1}, Group{Kind: State, Pages: 2})
			cfg.HostBlocks = rapid.IntRange(0, 32).Draw(t, "hostBlocks")
			cfg.UnifiedFreeQueue = false
		case 6: // a chunk and a shared group
			cfg.Groups = append(cfg.Groups, Group{Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")}, Group{Kind: Shared, Target: 1})
			cfg.UnifiedFreeQueue = false
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Lasting prefix pins hold room no sequence gives back: a
		// checkpoint hit that does not fit now in an idle pool is
		// dropped (TestCheckpointHitDroppedForTheCut).
		if err := m.SetPinBudget(cfg.NumBlocks / 3); err != nil {
			t.Fatal(err)
		}
		var ids []SeqID
		var pins []PinID
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			switch op := rapid.IntRange(0, 6).Draw(t, "op"); {
			case op <= 1 || len(ids) == 0:
				n := rapid.IntRange(1, 8*bs).Draw(t, "promptLen")
				pr := make([]int32, n)
				for i := range pr {
					pr[i] = int32(rapid.IntRange(0, 1).Draw(t, "tok"))
				}
				id, err := m.Add(pr, nil)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
				scrambleSiblings(t, m)
				s, _ := m.seq(id)
				want := hybridHitOracle(m, s, (len(s.tokens)-1)/bs)
				before, dropped := m.Stats().PrefixHitTokens, m.Stats().CheckpointHitsDropped
				fellBefore := m.Stats().HitFallbacks
				// The longest hit at most each limit, for an admission
				// that falls back to a shorter one (TestLongestHitFallsBack).
				shorter := make([]int, want+1)
				for L := range shorter {
					shorter[L] = hybridHitOracle(m, s, L)
				}
				// Admitted whole, or in chunks (the cut's lookup and
				// plan may differ from the whole one's).
				var cached int
				if chunk := rapid.IntRange(0, 3*bs).Draw(t, "chunk"); chunk == 0 {
					cached, err = m.Admit(id)
				} else {
					cached, _, err = m.AdmitChunk(id, chunk, nil)
				}
				missed := m.ret.missed
				if missed {
					// A checkpoint hit that does not fit, dropped
					// for a miss (TestCheckpointHitFallsBackToMiss,
					// TestCheckpointHitDroppedForTheCut).
					want = 0
				}
				if fell := m.Stats().HitFallbacks - fellBefore; fell != 0 {
					// The longest hit would have been refused for
					// good: the admission took a shorter one that
					// every group can end at, or a miss.
					got := int(m.Stats().PrefixHitTokens-before) / bs
					if err != nil || fell != 1 || got >= want || shorter[got] != got {
						t.Fatalf("step %d: %v fell back (%d) from a hit of %d blocks to %d (a hit there: %v): %v", step, id, fell, want, got, shorter[min(got, want)] == got, err)
					}
					want = got
				} else if got := int(m.Stats().PrefixHitTokens-before) / bs; err != nil && got < want {
					// Refused after falling back (ErrNoSpace: the
					// shorter hit fits later): counted as planned.
					if shorter[got] != got {
						t.Fatalf("step %d: %v refused (%v) with a hit of %d blocks, none ends there", step, id, err, got)
					}
					want = got
				}
				// Admit counts the hit it found, admitted or not.
				if got := int(m.Stats().PrefixHitTokens - before); got != want*bs {
					t.Fatalf("step %d: %v hit %d tokens; the longest prefix cached in every group as its kind needs is %d blocks", step, id, got, want)
				}
				// An admission that dropped its hit counts it; a
				// refused one does not.
				if d := m.Stats().CheckpointHitsDropped - dropped; d != 0 && (err != nil || !missed) || d == 0 && err == nil && missed {
					t.Fatalf("step %d: %v admitted (%v) having dropped a hit (%v), counted %d dropped", step, id, err, missed, d)
				}
				if err == nil && cached != want*bs {
					t.Fatalf("step %d: %v admitted with %d cached tokens, the statistics counted %d", step, id, cached, want*bs)
				}
				m.TakeCheckpoints(nil) // written in the step: now hits
				if err != nil {
					continue
				}
				for g := range len(cfg.Groups) {
					if cfg.Groups[g].Kind == State {
						continue // its own pages, copies of the checkpoint
					}
					table := m.table(s, g)
					for k := range cached / bs {
						b := table[k]
						if b == nullBlock {
							continue
						}
						// A shared group's entries are its target's.
						want, ok := m.bp.index.getIn(&s.hashes[k], groupSalt(m.kinds[g].target(g)))
						if !ok || want != b {
							t.Fatalf("step %d: %v group %d hit %d is block %d; the index names %d (%v)", step, id, g, k, b, want, ok)
						}
					}
				}
			case op == 2:
				id := ids[rapid.IntRange(0, len(ids)-1).Draw(t, "append")]
				for range rapid.IntRange(1, 3*bs).Draw(t, "tokens") {
					if m.Append(id, int32(rapid.IntRange(0, 1).Draw(t, "tok"))) != nil {
						break
					}
				}
			case op == 3:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "free")
				if err := m.Free(ids[i]); err != nil {
					t.Fatal(err)
				}
				ids = slices.Delete(ids, i, i+1)
			case op == 4:
				if c, err := m.Fork(ids[rapid.IntRange(0, len(ids)-1).Draw(t, "fork")]); err == nil {
					ids = append(ids, c)
				}
			case op == 5:
				_ = m.Preempt(ids[rapid.IntRange(0, len(ids)-1).Draw(t, "preempt")])
			case op == 6 && len(pins) > 0 && rapid.Bool().Draw(t, "unpin"):
				i := rapid.IntRange(0, len(pins)-1).Draw(t, "pin")
				if err := m.Unpin(pins[i]); err != nil {
					t.Fatal(err)
				}
				pins = slices.Delete(pins, i, i+1)
			case op == 6:
				toks, err := m.Tokens(ids[rapid.IntRange(0, len(ids)-1).Draw(t, "pinned")])
				if err != nil {
					t.Fatal(err)
				}
				if p, _, err := m.Pin(toks, nil, 0); err == nil {
					pins = append(pins, p)
				} else if !errors.Is(err, ErrPinBudget) {
					t.Fatal(err)
				}
			}
			if err := m.Check(); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	})
}

// hybridHitOracle is the longest prefix of s, at most limit blocks, that
// is a hit in every group of a hybrid manager, found by brute force from
// each kind's rule (docs/hybrid.md) on the index of each tier: every full
// group holds [0, L), a window group of W the blocks of [L*bs-W+1, L*bs)
// (at least the last),
// a chunked group of C those of [L*bs/C*C, L*bs), and every State group a
// checkpoint at exactly L (with checkpoints on; otherwise only L = 0).
func hybridHitOracle(m *Manager, s *sequence, limit int) int {
	bs := m.bs
	cached := func(k, g int) bool {
		_, ok := m.bp.findIn(&s.hashes[k], g)
		return ok
	}
	for L := min(limit, len(s.hashes)); L > 0; L-- {
		ok := true
		for g, gr := range m.cfg.Groups {
			first := -1 // blocks [first, L) must be cached in g
			switch gr.Kind {
			case FullAttention:
				first = 0
			case SlidingWindow:
				// A window of one token reads no block before L, but
				// the scan ends at a cached block (as vLLM's): the one
				// before L.
				first = min(max(0, L*bs-gr.Window+1)/bs, L-1)
			case ChunkedLocal:
				first = L * bs / gr.Chunk * gr.Chunk / bs
			case State:
				if !m.ret.ckpt {
					ok = false
				}
				for j := 0; ok && j < gr.Pages; j++ {
					key := ckptKey(&s.hashes[L-1], j)
					var b allocator.BlockID
					b, ok = m.bp.findIn(&key, g)
					// Handed out in the step being built: unwritten,
					// no hit until the step ends (audit 65).
					ok = ok && !(b > nullBlock && m.bp.fresh(b))
				}
			}
			for k := max(first, 0); ok && first >= 0 && k < L; k++ {
				ok = cached(k, g)
			}
			if !ok {
				break
			}
		}
		if ok {
			return L
		}
	}
	return 0
}

// scrambleSiblings points some of the window lookup's sibling guesses
// (Manager.sib) at other blocks: any block, or one holding cached
// content of the same hash as the right one (a duplicate, or the same
// content in another group).
func scrambleSiblings(t *rapid.T, m *Manager) {
	if m.sib == nil || !rapid.Bool().Draw(t, "scramble") {
		return
	}
	m.bp.index.settle()
	n := len(m.sib)
	for f := range m.sib {
		switch rapid.IntRange(0, 3).Draw(t, "guess") {
		case 0:
			m.sib[f] = allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "any"))
		case 1:
			// A block holding the content the guess held, if it held any.
			if g := m.sib[f]; g > nullBlock && m.bp.hasContent(g) {
				for b := range allocator.BlockID(n) {
					if b != g && m.bp.hasContent(b) && m.bp.hash[b] == m.bp.hash[g] {
						m.sib[f] = b
						break
					}
				}
			}
		}
	}
}

// TestTouchingFlushMatchesPlain: a manager whose pool is large enough
// for the index's flush to touch lines ahead (touchBlocks) ends every
// step exactly as a twin whose flush does not (the same tables, counters,
// events, index slots and duplicate links), under churn that evicts at
// every allocation (a long sequence holds all but a few hundred blocks),
// commits duplicates, and fills the deferred log (an admission of more
// blocks than it holds evicts as many before it commits), with events on
// (each eviction reported, uncache) and off (blockPool.drop).
func TestTouchingFlushMatchesPlain(t *testing.T) {
	steps := 5000
	if testing.Short() {
		steps = 1000
	}
	for _, events := range []int{0, 1 << 14} {
		t.Run(fmt.Sprintf("events=%d", events), func(t *testing.T) { checkTouchingFlush(t, events, steps) })
	}
}

func checkTouchingFlush(t *testing.T, events, steps int) {
	const bs, spare = 4, 300
	cfg := Config{BlockSize: bs, NumBlocks: touchBlocks, Events: events, Hasher: FastHasher{}}
	var twins [2]*Manager
	hog := make([]int32, (touchBlocks-spare)*bs)
	for i := range hog {
		hog[i] = int32(1_000_000 + i)
	}
	for i := range twins {
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Create(hog, nil); err != nil {
			t.Fatal(err)
		}
		twins[i] = m
	}
	touch, plain := twins[0], twins[1]
	plain.bp.index.touch = false
	if !touch.bp.index.touch {
		t.Fatalf("a pool of %d blocks does not touch ahead", touchBlocks)
	}
	r := rand.New(rand.NewPCG(11, 12))
	var ids []SeqID
	evictions := 0
	for step := range steps {
		var e [2]error
		switch op := r.IntN(10); {
		case op < 4 || len(ids) == 0:
			n := 1 + r.IntN(40)
			if r.IntN(40) == 0 {
				n = maxDeferred + 20 // its admission evicts enough to fill the log
			}
			p := make([]int32, bs*n+r.IntN(bs))
			base := int32(r.IntN(4)) * 1000
			for i := range p {
				p[i] = base + int32(i)
				if r.IntN(60) == 0 {
					base += 7 // a branch
				}
			}
			var id [2]SeqID
			for i, m := range twins {
				id[i], _, e[i] = m.Create(p, nil)
			}
			if e[0] == nil && id[0] == id[1] {
				ids = append(ids, id[0])
			}
		case op < 7:
			id := ids[r.IntN(len(ids))]
			toks := make([]int32, 1+r.IntN(2*bs))
			for i := range toks {
				toks[i] = int32(r.IntN(3)) // duplicates of one content
			}
			for i, m := range twins {
				e[i] = m.Append(id, toks...)
			}
		case op < 9:
			k := r.IntN(len(ids))
			for i, m := range twins {
				e[i] = m.Free(ids[k])
			}
			ids = slices.Delete(ids, k, k+1)
		default:
			parent := ids[r.IntN(len(ids))]
			var c [2]SeqID
			for i, m := range twins {
				c[i], e[i] = m.Fork(parent)
			}
			if e[0] == nil && c[0] == c[1] {
				ids = append(ids, c[0])
			}
		}
		if (e[0] == nil) != (e[1] == nil) {
			t.Fatalf("step %d: touching flush %v, plain %v", step, e[0], e[1])
		}
		if touch.Stats() != plain.Stats() {
			t.Fatalf("step %d: stats differ:\ntouching %+v\nplain    %+v", step, touch.Stats(), plain.Stats())
		}
		for _, id := range ids {
			a, _ := touch.Table(id)
			b, _ := plain.Table(id)
			if !slices.Equal(a, b) {
				t.Fatalf("step %d: %v: table %v, plain %v", step, id, a, b)
			}
		}
		if ea, eb := touch.DrainEvents(nil), plain.DrainEvents(nil); !reflect.DeepEqual(ea, eb) {
			t.Fatalf("step %d: events differ", step)
		}
		if step%100 == 99 || step == steps-1 {
			touch.bp.index.settle()
			plain.bp.index.settle()
			if !slices.Equal(touch.bp.index.slots, plain.bp.index.slots) || !slices.Equal(touch.bp.index.meta, plain.bp.index.meta) {
				t.Fatalf("step %d: the index differs from the plain flush's", step)
			}
			for _, m := range twins {
				if err := m.Check(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
		}
		evictions = int(touch.Stats().Evictions)
	}
	if evictions < steps/2 {
		t.Fatalf("only %d evictions in %d steps", evictions, steps)
	}
}

// TestAppendRefusesHandleOfFreedSlot: a handle naming a freed slot is
// refused by Append's inline path as by every other call, whatever
// generation it carries: the one Free moved the slot to (no live handle
// has it until the slot is reused, but a caller can construct it) too.
// Before the fix the inline path, which reads the slot's ownership
// instead of its state, appended the token to the dead slot and
// returned nil.
func TestAppendRefusesHandleOfFreedSlot(t *testing.T) {
	m, err := New(Config{BlockSize: 16, NumBlocks: 8})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Create([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append(id, 4); err != nil { // the inline path holds
		t.Fatal(err)
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	for _, h := range []SeqID{id, id + 1<<32, id + 2<<32, id - 1<<32} {
		if err := m.Append(h, 5); !errors.Is(err, ErrUnknownSequence) {
			t.Errorf("Append(%v) after Free of %v: %v, want ErrUnknownSequence", h, id, err)
		}
		if _, err := m.Len(h); !errors.Is(err, ErrUnknownSequence) {
			t.Errorf("Len(%v) after Free of %v: %v, want ErrUnknownSequence", h, id, err)
		}
	}
	if len(m.seqs[0].tokens) != 4 {
		t.Errorf("the freed slot holds %d tokens, had 4", len(m.seqs[0].tokens))
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPeakCountsClaims: Stats.PeakUsedBlocks, the most blocks referenced
// at once, is never below UsedBlocks, also after calls that reference
// blocks by claiming cached ones without allocating: a SwapIn whose
// content is all still on the device, a Pin. Before the fix only
// allocations noted the peak, so it lagged until the next allocation,
// and Append's fast paths (which allocate nothing) and its general path
// (which notes the peak) reported different peaks afterwards.
func TestPeakCountsClaims(t *testing.T) {
	check := func(t *testing.T, m *Manager, what string) {
		t.Helper()
		if st := m.Stats(); st.PeakUsedBlocks < st.UsedBlocks {
			t.Fatalf("after %s: PeakUsedBlocks %d < UsedBlocks %d", what, st.PeakUsedBlocks, st.UsedBlocks)
		}
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	t.Run("SwapIn", func(t *testing.T) {
		m, err := New(Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 16})
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := m.Create(prompt[:8], nil) // full blocks, all committed
		if err != nil {
			t.Fatal(err)
		}
		m.TakeSwaps(nil) // the step that computes a's prompt
		if err := m.SwapOut(a); err != nil {
			t.Fatal(err)
		}
		// The swapped-out blocks stay cached on the device; a second
		// sequence of other content holds as many blocks as a did.
		if _, _, err := m.Create([]int32{11, 12, 13, 14, 15, 16, 17, 18}, nil); err != nil {
			t.Fatal(err)
		}
		check(t, m, "Create")
		if err := m.SwapIn(a); err != nil {
			t.Fatal(err)
		}
		check(t, m, "SwapIn")
	})
	t.Run("Pin", func(t *testing.T) {
		m, err := New(Config{BlockSize: 4, NumBlocks: 16})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPinBudget(8); err != nil {
			t.Fatal(err)
		}
		a, _, err := m.Create(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(a); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Create([]int32{11, 12, 13, 14, 15, 16, 17, 18, 19}, nil); err != nil {
			t.Fatal(err)
		}
		check(t, m, "Create")
		if _, _, err := m.Pin(prompt, nil, 0); err != nil {
			t.Fatal(err)
		}
		check(t, m, "Pin")
	})
}

// TestAppendAfterUncomputeCommitsAgain: after Uncompute took a
// sequence's blocks out of the prefix cache, the next Append commits
// them again (as Uncompute documents and the general path does),
// whichever of Append's fast paths the token would take: the inline write
// into the last block, a hybrid manager's appendOne inside a block, or
// startPair at a block start. Before the fix those paths, which commit
// only the block a token fills, left the blocks out of the cache until
// the sequence filled its next block.
func TestAppendAfterUncomputeCommitsAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []Group
		prompt int // tokens; the token appended lands at offset prompt%4
	}{
		{"inline", nil, 5},
		{"pair inside a block", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 16}}, 5},
		{"pair at a block start", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 16}}, 8},
		{"chunked inside a block", []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: 16}}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stored [2]uint64
			for i, general := range []bool{false, true} {
				m, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: tc.groups})
				if err != nil {
					t.Fatal(err)
				}
				prompt := make([]int32, tc.prompt)
				for k := range prompt {
					prompt[k] = int32(k + 1)
				}
				id, _, err := m.Create(prompt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Uncompute(id, 0); err != nil {
					t.Fatal(err)
				}
				if general {
					err = m.appendTokens(id, []int32{99}, false)
				} else {
					err = m.Append(id, 99)
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				s, _ := m.seq(id)
				if s.committed != tc.prompt/4 {
					t.Errorf("general path %v: %d blocks committed after Append, want %d", general, s.committed, tc.prompt/4)
				}
				stored[i] = m.Stats().BlocksStored
			}
			if stored[0] != stored[1] {
				t.Errorf("Append stored %d blocks in all, the general path %d", stored[0], stored[1])
			}
		})
	}
}

// TestUncomputeInsideReleasedWindow: Uncompute to a position inside the
// blocks a sliding window released (SeqOptions.Window) leaves those
// entries released and done, so the Appends that follow commit the
// sequence's blocks again but never the null block its released entries
// name. Before the fix the sequence counted them uncommitted and the next
// Append committed block 0 under the first hash, then panicked on the
// second ("holds committed content other than the sequence's tokens").
func TestUncomputeInsideReleasedWindow(t *testing.T) {
	m, id := uncomputeInsideReleasedWindow(t, Config{BlockSize: 4, NumBlocks: 32}, &SeqOptions{Window: 4},
		func(s *sequence) (int, int) { return s.committed, s.released })
	s, _ := m.seq(id)
	if want := len(s.tokens) / 4; s.committed != want {
		t.Fatalf("%d blocks committed, want %d", s.committed, want)
	}
}

// uncomputeInsideReleasedWindow runs the scenario of
// TestUncomputeInsideReleasedWindow on a manager made with cfg and a
// sequence made with opts, whose window's committed and released marks
// marks reads: a 17-token prompt and four tokens (the window releases
// entries), Uncompute to 19 and then to 0, each followed by five Appends
// under Check; the committed mark never falls below the released one,
// and the null block never holds content. It returns the manager and the
// sequence.
func uncomputeInsideReleasedWindow(t *testing.T, cfg Config, opts *SeqOptions, marks func(*sequence) (committed, released int)) (*Manager, SeqID) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 17)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	id, _, err := m.Create(prompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	for k := range int32(4) {
		if err := m.Append(id, 100+k); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := m.seq(id)
	if _, r := marks(s); r == 0 {
		t.Fatal("the window released nothing")
	}
	for _, computed := range []int{19, 0} {
		if err := m.Uncompute(id, computed); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		s, _ := m.seq(id)
		if c, r := marks(s); c < r {
			t.Fatalf("computed %d: the window's committed mark %d is below its released entries %d", computed, c, r)
		}
		for k := range int32(5) {
			if err := m.Append(id, 200+k); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if m.bp.hasContent(nullBlock) {
		t.Fatal("the null block holds cached content")
	}
	return m, id
}

// TestUncomputeThenSlideKeepsPinsCached: a window block that a hybrid
// sequence's retention would pin when its window leaves it (one the hit
// at its branch point needs) but whose content Uncompute took out of the
// cache is released, not pinned: a retention pin holds a cached window
// block (Check). Before the fix the slide pinned the uncached block and
// Check failed after the Append.
func TestUncomputeThenSlideKeepsPinsCached(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 16, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := m.Create([]int32{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := m.Create([]int32{1, 2, 3}, nil) // hits a's first block; branch point 1
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []int32{7, 8} { // a's window leaves its first block: b alone holds it
		if err := m.Append(a, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Uncompute(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []int32{9, 10, 11} { // b's window leaves the block
		if err := m.Append(b, tok); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatalf("after Append(%d): %v", tok, err)
		}
	}
}
