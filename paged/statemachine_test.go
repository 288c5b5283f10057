package paged_test

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// shadowKV stands in for the server's KV tensors: for every slot it records
// what the KV there was computed from. The KV of position p of a sequence
// depends on every token up to p (attention is causal) and on the adapter,
// so the record is a hash of (LoRA, tokens[:p+1]). Reading a sequence back
// through its table must find exactly its own records; a prefix hit that
// handed out a block with other content, a missed copy-on-write, or a write
// into a shared block all show up as a mismatch.
type shadowKV struct {
	bs   int
	slot map[int64]uint64
	// exclusive, when set, checks before a write that no other live
	// sequence's table names the blocks written: a shared block is never
	// written in place.
	exclusive func(t fataler, id paged.SeqID, from int)
}

func kvOf(lora int32, tokens []int32) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, lora, tokens)
	return h.Sum64()
}

// write records the KV of positions [from, len(tokens)) of a sequence.
func (s *shadowKV) write(t fataler, m *paged.Manager, id paged.SeqID, lora int32, tokens []int32, from int) {
	if s.exclusive != nil {
		s.exclusive(t, id, from)
	}
	for p := from; p < len(tokens); p++ {
		sl, err := m.Slot(id, p)
		if err != nil {
			t.Fatalf("Slot(%v, %d): %v", id, p, err)
		}
		s.slot[sl] = kvOf(lora, tokens[:p+1])
	}
}

// apply runs copy-on-write directives as a server would, before writing.
func (s *shadowKV) apply(copies []paged.Copy) {
	for _, c := range copies {
		for off := range s.bs {
			src := int64(c.Src)*int64(s.bs) + int64(off)
			dst := int64(c.Dst)*int64(s.bs) + int64(off)
			if v, ok := s.slot[src]; ok {
				s.slot[dst] = v
			} else {
				delete(s.slot, dst)
			}
		}
	}
}

// readBack checks positions [0, upto) of a running sequence, none of which
// may be out of a sliding window.
func (s *shadowKV) readBack(t fataler, m *paged.Manager, id paged.SeqID, lora int32, tokens []int32, upto int) {
	s.readRange(t, m, id, lora, tokens, 0, upto)
}

// readRange checks positions [0, upto) of a running sequence: those from lo
// on must map to a real block holding their own KV; those before lo may
// name the null block (released by a sliding window), but a real block
// there must still hold their KV.
func (s *shadowKV) readRange(t fataler, m *paged.Manager, id paged.SeqID, lora int32, tokens []int32, lo, upto int) {
	table, err := m.Table(id)
	if err != nil {
		t.Fatalf("Table(%v): %v", id, err)
	}
	for p := range upto {
		b := table[p/s.bs]
		if b == 0 {
			if p >= lo {
				t.Fatalf("read-back of %v position %d: the null block, but positions from %d must be readable (table %v)", id, p, lo, table)
			}
			continue
		}
		sl := int64(b)*int64(s.bs) + int64(p%s.bs)
		if got, want := s.slot[sl], kvOf(lora, tokens[:p+1]); got != want {
			t.Fatalf("read-back of %v position %d (slot %d, block %d): KV of other content", id, p, sl, b)
		}
	}
}

// fataler is what the shadow store needs of *testing.T and *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

type modelSeq struct {
	tokens  []int32
	lora    int32
	salt    string
	window  int
	running bool
	spec    int
	// tier: swapped out; only the tier actions (tier_statemachine_test.go)
	// drive it.
	tier bool
}

// readSeq reads back positions [0, upto) of a running sequence as the query
// at position q sees them: under a sliding window W, every position from
// q-W+1 on must be readable.
func (s *machine) readSeq(t fataler, id paged.SeqID, ms *modelSeq, q, upto int) {
	lo := 0
	if ms.window > 0 {
		lo = max(0, q-ms.window+1)
	}
	s.shadow.readRange(t, s.m, id, ms.lora, ms.tokens, lo, upto)
}

// compute writes the KV of positions [from, len) of a running sequence,
// after reading back the window its first query attends to.
func (s *machine) compute(t fataler, id paged.SeqID, ms *modelSeq, from int) {
	s.readSeq(t, id, ms, from, from)
	s.shadow.write(t, s.m, id, ms.lora, ms.tokens, from)
}

type machine struct {
	m       *paged.Manager
	bs      int
	shadow  shadowKV
	seqs    map[paged.SeqID]*modelSeq
	ids     []paged.SeqID
	copies  []paged.Copy
	prompts [][]int32
	host    *hostShadow // nil without a host tier
	// batchBuf is the persistent batch of the batch action.
	batchBuf paged.Batch
}

func (s *machine) tokens(t *rapid.T, label string) []int32 {
	// Prompts share prefixes often: a few bases, cut and extended at random.
	base := rapid.SampledFrom(s.prompts).Draw(t, label+"-base")
	n := rapid.IntRange(1, len(base)).Draw(t, label+"-len")
	out := slices.Clone(base[:n])
	extra := rapid.SliceOfN(rapid.Int32Range(1, 6), 0, 5).Draw(t, label+"-extra")
	return append(out, extra...)
}

func (s *machine) pick(t *rapid.T, running bool) (paged.SeqID, *modelSeq, bool) {
	var cands []paged.SeqID
	for _, id := range s.ids {
		if ms := s.seqs[id]; ms != nil && ms.running == running && !ms.tier {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		return 0, nil, false
	}
	id := rapid.SampledFrom(cands).Draw(t, "seq")
	return id, s.seqs[id], true
}

// checkExclusive fails if sequence id is about to write, from position
// from on, into a block that another running sequence's table also names,
// unless that sequence expects exactly the KV being written at that slot:
// a block whose content was committed this step may be hit by others
// before the kernels fill it (vLLM's same-batch hits), but a shared block is
// never overwritten with other content, nor written past a sharer's end.
func (s *machine) checkExclusive(t fataler, id paged.SeqID, from int) {
	mine, err := s.m.Table(id)
	if err != nil {
		t.Fatalf("Table(%v): %v", id, err)
	}
	me := s.seqs[id]
	for _, other := range s.ids {
		o := s.seqs[other]
		if other == id || o == nil {
			continue
		}
		if r, _ := s.m.Running(other); !r {
			continue
		}
		tb, _ := s.m.Table(other)
		for k, b := range tb {
			if b == 0 {
				continue
			}
			for p := from; p < len(me.tokens); p++ {
				if mine[p/s.bs] != b {
					continue
				}
				q := k*s.bs + p%s.bs
				if q >= len(o.tokens) || kvOf(o.lora, o.tokens[:q+1]) != kvOf(me.lora, me.tokens[:p+1]) {
					t.Fatalf("%v writes position %d into block %d, which %v holds with other content", id, p, b, other)
				}
			}
		}
	}
}

func (s *machine) flushCopies(t *rapid.T) {
	s.flushSwaps()
	s.copies = s.m.TakeCopies(s.copies[:0])
	var swaps []paged.Swap
	if s.host != nil {
		swaps = s.host.swaps
	}
	checkStepDirectives(t, swaps, s.copies)
	s.shadow.apply(s.copies)
}

func (s *machine) add(id paged.SeqID, ms *modelSeq) {
	s.seqs[id] = ms
	s.ids = append(s.ids, id)
}

func (s *machine) remove(id paged.SeqID) {
	delete(s.seqs, id)
	s.ids = slices.DeleteFunc(s.ids, func(x paged.SeqID) bool { return x == id })
}

func expectNoSpaceUnchanged(t *rapid.T, m *paged.Manager, before paged.Stats, err error) {
	if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
		t.Fatalf("unexpected error: %v", err)
	}
	after := m.Stats()
	if after.FreeBlocks != before.FreeBlocks || after.CachedBlocks != before.CachedBlocks || after.UsedBlocks != before.UsedBlocks || after.Sequences != before.Sequences {
		t.Fatalf("failed call changed the pool: %+v -> %+v", before, after)
	}
}

func (s *machine) create(t *rapid.T) {
	prompt := s.tokens(t, "prompt")
	ms := &modelSeq{tokens: prompt, lora: int32(rapid.IntRange(0, 1).Draw(t, "lora")), salt: rapid.SampledFrom([]string{"", "", "tenant-b"}).Draw(t, "salt")}
	if rapid.IntRange(0, 2).Draw(t, "windowed") == 0 {
		// Windows of a few blocks slide often in these small pools.
		ms.window = rapid.IntRange(1, min(s.m.Config().MaxModelLen, 3*s.bs+1)).Draw(t, "window")
	}
	before := s.m.Stats()
	id, cached, err := s.m.Create(prompt, &paged.SeqOptions{LoRA: ms.lora, Salt: ms.salt, Window: ms.window})
	if err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	if cached >= len(prompt) || cached%s.bs != 0 {
		t.Fatalf("cached %d of a %d-token prompt", cached, len(prompt))
	}
	ms.running = true
	s.add(id, ms)
	s.flushCopies(t)
	s.compute(t, id, ms, cached) // hits hold our KV
}

func (s *machine) appendTokens(t *rapid.T) {
	id, ms, ok := s.pick(t, true)
	if !ok {
		return
	}
	toks := rapid.SliceOfN(rapid.Int32Range(1, 6), 1, 2*s.bs+1).Draw(t, "tokens")
	spec := rapid.IntRange(0, 3).Draw(t, "spec") == 0
	before := s.m.Stats()
	var err error
	if spec {
		err = s.m.AppendSpeculative(id, toks...)
	} else {
		err = s.m.Append(id, toks...)
	}
	if !spec && ms.spec > 0 {
		// Drafts pending: a token after them is refused, nothing changed.
		if !errors.Is(err, paged.ErrSequenceState) {
			t.Fatalf("Append with %d drafts pending: %v, want ErrSequenceState", ms.spec, err)
		}
		if after := s.m.Stats(); after != before {
			t.Fatalf("a refused Append changed the stats: %+v, then %+v", before, after)
		}
		return
	}
	if err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	s.flushCopies(t)
	from := len(ms.tokens)
	ms.tokens = append(ms.tokens, toks...)
	if spec {
		ms.spec += len(toks)
	}
	s.compute(t, id, ms, from)
}

func (s *machine) accept(t *rapid.T) {
	id, ms, ok := s.pick(t, true)
	if !ok {
		return
	}
	n := rapid.IntRange(0, ms.spec).Draw(t, "accept")
	if err := s.m.AcceptSpeculative(id, n); err != nil {
		t.Fatalf("AcceptSpeculative: %v", err)
	}
	ms.tokens = ms.tokens[:len(ms.tokens)-(ms.spec-n)]
	ms.spec = 0
}

func (s *machine) fork(t *rapid.T) {
	if id, ms, ok := s.pick(t, true); ok {
		s.forkSeq(t, id, ms)
	}
}

// forkSeq forks id in the manager and the model and returns the child.
func (s *machine) forkSeq(t *rapid.T, id paged.SeqID, ms *modelSeq) paged.SeqID {
	child, err := s.m.Fork(id)
	if err != nil {
		t.Fatalf("Fork: %v", err)
	}
	c := *ms
	c.tokens = slices.Clone(ms.tokens)
	s.add(child, &c)
	return child
}

func (s *machine) truncate(t *rapid.T) {
	id, ms, ok := s.pick(t, rapid.Bool().Draw(t, "running"))
	if !ok {
		return
	}
	n := rapid.IntRange(1, len(ms.tokens)).Draw(t, "n")
	// A sliding window is never rolled back past the blocks it released:
	// the truncation must be refused, changing nothing, exactly when the
	// query at n would read a released position or the cut falls inside
	// the released entries (which only a window of 1 reads nothing of).
	table, _ := s.m.Table(id)
	refuse := false
	if ms.window > 0 && ms.running {
		released := 0
		for released < len(table) && table[released] == 0 {
			released++
		}
		refuse = n < released*s.bs
		for p := max(0, n-ms.window+1); p < n; p++ {
			refuse = refuse || table[p/s.bs] == 0
		}
	}
	before, beforeTable := s.m.Stats(), slices.Clone(table)
	err := s.m.Truncate(id, n)
	if refuse {
		after, _ := s.m.Table(id)
		if !errors.Is(err, paged.ErrInvalid) || s.m.Stats() != before || !slices.Equal(after, beforeTable) {
			t.Fatalf("Truncate(%d) into the released window: %v; table %v -> %v", n, err, beforeTable, after)
		}
		return
	}
	if err != nil {
		t.Fatalf("Truncate(%d): %v (table %v)", n, err, table)
	}
	ms.spec = max(0, ms.spec-(len(ms.tokens)-n))
	ms.tokens = ms.tokens[:n]
}

func (s *machine) free(t *rapid.T) {
	id, _, ok := s.pick(t, rapid.Bool().Draw(t, "running"))
	if !ok {
		return
	}
	if err := s.m.Free(id); err != nil {
		t.Fatalf("Free: %v", err)
	}
	s.remove(id)
	if _, err := s.m.Len(id); !errors.Is(err, paged.ErrUnknownSequence) {
		t.Fatalf("freed handle still answers: %v", err)
	}
}

func (s *machine) preempt(t *rapid.T) {
	id, ms, ok := s.pick(t, true)
	if !ok {
		return
	}
	if err := s.m.Preempt(id); err != nil {
		t.Fatalf("Preempt: %v", err)
	}
	ms.tokens = ms.tokens[:len(ms.tokens)-ms.spec]
	ms.spec = 0
	ms.running = false
}

func (s *machine) admit(t *rapid.T) {
	id, ms, ok := s.pick(t, false)
	if !ok {
		return
	}
	if rapid.Bool().Draw(t, "grow-waiting") {
		toks := rapid.SliceOfN(rapid.Int32Range(1, 6), 1, 3).Draw(t, "more")
		err := s.m.Append(id, toks...)
		switch {
		case len(ms.tokens)+len(toks) > s.m.Config().MaxModelLen:
			if !errors.Is(err, paged.ErrNever) {
				t.Fatalf("Append past MaxModelLen: %v", err)
			}
		case err != nil:
			t.Fatalf("Append to waiting: %v", err)
		default:
			ms.tokens = append(ms.tokens, toks...)
		}
	}
	s.admitChecked(t, id, ms)
}

// admitChecked admits a waiting sequence, checking that the dry run
// agreed, that a refusal changed nothing, and that the hits hold its KV.
func (s *machine) admitChecked(t *rapid.T, id paged.SeqID, ms *modelSeq) {
	dry, err := s.m.CanAdmit(id)
	if err != nil {
		t.Fatalf("CanAdmit: %v", err)
	}
	before := s.m.Stats()
	cached, err := s.m.Admit(id)
	if (err == nil) != (dry == paged.AdmitOK) {
		t.Fatalf("CanAdmit said %v, Admit returned %v", dry, err)
	}
	if err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	ms.running = true
	s.flushCopies(t)
	s.compute(t, id, ms, cached)
}

// batch builds a step of distinct running sequences, each with a drawn
// number of new tokens, and checks it against the tables: BuildBatch must
// refuse a step whose first new query would read a position out of its
// sliding window (and then change nothing), and otherwise give every
// sequence its own table row and the slots Slot reports.
func (s *machine) batch(t *rapid.T) {
	var sched []paged.Scheduled
	ok := true
	for _, id := range s.ids {
		ms := s.seqs[id]
		if !ms.running || !rapid.Bool().Draw(t, "scheduled") {
			continue
		}
		k := rapid.IntRange(1, len(ms.tokens)).Draw(t, "newTokens")
		sched = append(sched, paged.Scheduled{ID: id, NewTokens: k})
		table, _ := s.m.Table(id)
		lo := 0
		if ms.window > 0 {
			lo = max(0, len(ms.tokens)-k-ms.window+1)
		}
		for p := lo; p < len(ms.tokens); p++ {
			ok = ok && table[p/s.bs] != 0
		}
	}
	before := s.m.Stats()
	b := &s.batchBuf
	err := s.m.BuildBatch(b, sched)
	if !ok {
		if !errors.Is(err, paged.ErrInvalid) || s.m.Stats() != before {
			t.Fatalf("BuildBatch of a query out of its window: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("BuildBatch: %v", err)
	}
	if s.host != nil {
		for _, d := range b.Swaps {
			s.applyOne(d)
		}
	}
	s.shadow.apply(b.Copies)
	for i, sc := range sched {
		table, _ := s.m.Table(sc.ID)
		row := b.Tables[i*b.Stride : (i+1)*b.Stride]
		for k := range row {
			want := int32(0)
			if k < len(table) {
				want = int32(table[k])
			}
			if row[k] != want {
				t.Fatalf("batch row %d entry %d = %d, table %v", i, k, row[k], table)
			}
		}
		n := len(s.seqs[sc.ID].tokens)
		for j, sl := range b.Slots[b.QueryStart[i]:b.QueryStart[i+1]] {
			if want, _ := s.m.Slot(sc.ID, n-sc.NewTokens+j); sl != want {
				t.Fatalf("batch slot %d of %v = %d, Slot says %d", j, sc.ID, sl, want)
			}
		}
	}
}

func (s *machine) reset(t *rapid.T) {
	err := s.m.ResetCache()
	if s.m.Stats().UsedBlocks > 0 {
		if !errors.Is(err, paged.ErrCacheInUse) {
			t.Fatalf("ResetCache with blocks held: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("ResetCache: %v", err)
	}
	if st := s.m.Stats(); !s.m.Config().UnifiedFreeQueue && st.CachedBlocks != 0 {
		t.Fatalf("cache not empty after reset: %+v", st)
	}
}

func (s *machine) check(t *rapid.T) {
	if err := s.m.Check(); err != nil {
		t.Fatal(err)
	}
	st := s.m.Stats()
	running := 0
	for id, ms := range s.seqs {
		n, err := s.m.Len(id)
		if err != nil || n != len(ms.tokens) {
			t.Fatalf("Len(%v) = %d, %v; model has %d tokens", id, n, err, len(ms.tokens))
		}
		toks, _ := s.m.Tokens(id)
		if !slices.Equal(toks, ms.tokens) {
			t.Fatalf("Tokens(%v) differ from the model", id)
		}
		if r, _ := s.m.Running(id); r != ms.running {
			t.Fatalf("Running(%v) = %v, model says %v", id, r, ms.running)
		}
		if ms.running {
			running++
			// The next query is at the accepted length: drafts may all
			// be rejected.
			s.readSeq(t, id, ms, len(ms.tokens)-ms.spec, len(ms.tokens))
		}
	}
	if st.Sequences != len(s.seqs) || st.Running != running {
		t.Fatalf("stats say %d sequences (%d running), model %d (%d)", st.Sequences, st.Running, len(s.seqs), running)
	}
}

// policy draws one of every registered eviction policy, so each runs
// through the manager under the same model.
func policy(t *rapid.T, label string) eviction.Factory {
	f, err := eviction.ByName(rapid.SampledFrom(eviction.Names()).Draw(t, label))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newMachine returns a model over m with an empty shadow store and three
// base prompts that later prompts share prefixes of.
func newMachine(t *rapid.T, m *paged.Manager, bs int) *machine {
	s := &machine{m: m, bs: bs, shadow: shadowKV{bs: bs, slot: map[int64]uint64{}}, seqs: map[paged.SeqID]*modelSeq{}}
	s.shadow.exclusive = s.checkExclusive
	for range 3 {
		s.prompts = append(s.prompts, rapid.SliceOfN(rapid.Int32Range(1, 4), 1, 12).Draw(t, "base"))
	}
	return s
}

// actions are the operations every model test drives, with the
// invariant check under the empty name, as rapid's Repeat wants them.
func (s *machine) actions() map[string]func(*rapid.T) {
	var events []paged.Event
	return map[string]func(*rapid.T){
		"create":   s.create,
		"append":   s.appendTokens,
		"accept":   s.accept,
		"fork":     s.fork,
		"truncate": s.truncate,
		"free":     s.free,
		"preempt":  s.preempt,
		"admit":    s.admit,
		"chunk":    s.admitChunk,
		"dropStep": s.dropStep,
		"reset":    s.reset,
		"batch":    s.batch,
		"drain":    func(*rapid.T) { events = s.m.DrainEvents(events[:0]) },
		"":         s.check,
	}
}

func TestStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "blockSize")
		cfg := paged.Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(2, 24).Draw(t, "blocks"),
			Policy:           policy(t, "policy"),
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
			Watermark:        rapid.SampledFrom([]float64{0, 0, 0.1}).Draw(t, "watermark"),
			Events:           rapid.SampledFrom([]int{0, 4, 64}).Draw(t, "events"),
			Reserve:          drawReserve(t),
		}
		m, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := newMachine(t, m, bs)
		t.Repeat(s.actions())
	})
}
