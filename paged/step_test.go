package paged_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// stepWorld runs the same random workload on two managers, one driven
// by AppendStep and DecodeStep, the other (the reference) by the loop of
// Append calls and BuildBatch they replace, and compares them after every
// operation. Every operation but the steps is made on both; log replays
// the reference's history on a fresh manager, which tells a step's
// expected refusal (see expectStep).
type stepWorld struct {
	cfg    paged.Config
	a, r   *paged.Manager
	ab, rb paged.Batch
	ids    []paged.SeqID // every handle issued, freed ones too
	log    []func(*paged.Manager)
}

// both makes op on both managers, logs it, and checks that they answered
// alike.
func (w *stepWorld) both(t *rapid.T, name string, op func(m *paged.Manager) (any, error)) {
	va, ea := op(w.a)
	vr, er := op(w.r)
	if fmt.Sprint(va) != fmt.Sprint(vr) || sentinel(ea) != sentinel(er) {
		t.Fatalf("%s: step-driven manager returned %v, %v; reference %v, %v", name, va, ea, vr, er)
	}
	w.log = append(w.log, func(m *paged.Manager) { _, _ = op(m) })
	if id, ok := va.(paged.SeqID); ok && ea == nil {
		w.ids = append(w.ids, id)
	}
}

var sentinels = []error{paged.ErrInvalid, paged.ErrNoSpace, paged.ErrNever, paged.ErrUnknownSequence, paged.ErrSequenceState, paged.ErrCacheInUse}

// sentinel is the sentinel err wraps (nil for nil).
func sentinel(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func (w *stepWorld) pick(t *rapid.T, label string) paged.SeqID {
	if len(w.ids) == 0 {
		return 0
	}
	return rapid.SampledFrom(w.ids).Draw(t, label)
}

func (w *stepWorld) create(t *rapid.T) {
	bs := w.cfg.BlockSize
	base := rapid.IntRange(0, 2).Draw(t, "prefix") * 1000
	prompt := seqOf(base, rapid.IntRange(1, 3*bs).Draw(t, "prompt"))
	var opts *paged.SeqOptions
	if len(w.cfg.Groups) == 0 && rapid.IntRange(0, 3).Draw(t, "windowed") == 0 {
		opts = &paged.SeqOptions{Window: rapid.IntRange(bs, 3*bs).Draw(t, "window")}
	}
	waiting := rapid.IntRange(0, 4).Draw(t, "waiting") == 0
	w.both(t, "Create", func(m *paged.Manager) (any, error) {
		if waiting {
			return m.Add(prompt, opts)
		}
		id, _, err := m.Create(prompt, opts)
		return id, err
	})
}

func (w *stepWorld) other(t *rapid.T) {
	id := w.pick(t, "seq")
	n := rapid.IntRange(1, 3*w.cfg.BlockSize).Draw(t, "n")
	switch op := rapid.IntRange(0, 6).Draw(t, "op"); op {
	case 0:
		w.both(t, "Fork", func(m *paged.Manager) (any, error) { return m.Fork(id) })
	case 1:
		w.both(t, "Preempt", func(m *paged.Manager) (any, error) { return nil, m.Preempt(id) })
	case 2:
		w.both(t, "Free", func(m *paged.Manager) (any, error) { return nil, m.Free(id) })
	case 3:
		w.both(t, "Truncate", func(m *paged.Manager) (any, error) { return nil, m.Truncate(id, n) })
	case 4:
		w.both(t, "Admit", func(m *paged.Manager) (any, error) { return m.Admit(id) })
	case 5:
		w.both(t, "AppendSpeculative", func(m *paged.Manager) (any, error) { return nil, m.AppendSpeculative(id, 7) })
	case 6:
		w.both(t, "AcceptSpeculative", func(m *paged.Manager) (any, error) { return nil, m.AcceptSpeculative(id, n%2) })
	}
}

// step draws a step (mostly valid entries; now and then a sequence named
// twice, a handle never issued, a negative token or, for DecodeStep, two
// new tokens) and makes it on both managers, each its own way.
func (w *stepWorld) step(t *rapid.T) {
	if len(w.ids) == 0 {
		return
	}
	var sched []paged.Scheduled
	var tokens []int32
	var running []paged.SeqID
	for _, id := range w.ids {
		if ok, _ := w.a.Running(id); ok && !slices.Contains(running, id) {
			running = append(running, id)
		}
	}
	for range rapid.IntRange(1, 8).Draw(t, "entries") {
		// Running sequences, each once, but now and then any handle
		// issued (rapid draws the ends of a range often: the rare cases
		// sit in the middle).
		sc := paged.Scheduled{NewTokens: 1}
		switch {
		case rapid.IntRange(0, 19).Draw(t, "any") == 10:
			sc.ID = w.pick(t, "entry")
		case len(running) > 0:
			sc.ID = rapid.SampledFrom(running).Draw(t, "running")
			running = slices.DeleteFunc(running, func(id paged.SeqID) bool { return id == sc.ID })
		default:
			continue
		}
		tok := rapid.Int32Range(0, 50).Draw(t, "token")
		switch rapid.IntRange(0, 80).Draw(t, "defect") {
		case 40:
			if len(sched) > 0 {
				sc = sched[0]
			}
		case 41:
			sc.ID = paged.SeqID(1<<40 | 3)
		case 42:
			tok = -1
		case 43:
			sc.NewTokens = 2
		}
		sched, tokens = append(sched, sc), append(tokens, tok)
	}
	decode := rapid.Bool().Draw(t, "decode")
	want := w.expectStep(sched, tokens, decode)
	run := func() (int, error) {
		if decode {
			return w.a.DecodeStep(&w.ab, sched, tokens)
		}
		return w.a.AppendStep(sched, tokens)
	}
	n, err := run()
	if want != nil {
		if n != 0 || !errors.Is(err, want) {
			t.Fatalf("step %v %v (decode %v): got %d, %v; want a refusal wrapping %v", sched, tokens, decode, n, err, want)
		}
		return // the reference made nothing either: compare says whether a changed
	}
	// The reference: the loop, stopping at the first refusal, then the
	// batch of the whole step.
	loop := func(m *paged.Manager, b *paged.Batch) (int, error) {
		for i, sc := range sched {
			if err := m.Append(sc.ID, tokens[i]); err != nil {
				return i, err
			}
		}
		if decode {
			return len(sched), m.BuildBatch(b, sched)
		}
		return len(sched), nil
	}
	k, rerr := loop(w.r, &w.rb)
	w.log = append(w.log, func(m *paged.Manager) { _, _ = loop(m, new(paged.Batch)) })
	if rerr != nil && !errors.Is(rerr, paged.ErrNoSpace) {
		t.Fatalf("step %v %v: the loop was refused with %v, which the step's check did not expect", sched, tokens, rerr)
	}
	if n != k || sentinel(err) != sentinel(rerr) {
		t.Fatalf("step %v %v (decode %v): got %d, %v; the loop %d, %v", sched, tokens, decode, n, err, k, rerr)
	}
	if decode && err == nil {
		sameBatch(t, &w.ab, &w.rb)
	}
}

// expectStep is the refusal the step should meet before it changes
// anything (nil: none), found on a replay of the reference's history: in
// entry order, Append's own refusal of the entry (but ErrNoSpace, which a
// step meets as it goes), then DecodeStep's (a waiting sequence, other
// than one new token), then a sequence named twice.
func (w *stepWorld) expectStep(sched []paged.Scheduled, tokens []int32, decode bool) error {
	c, err := paged.New(w.cfg)
	if err != nil {
		panic(err)
	}
	for _, op := range w.log {
		op(c)
		// compare takes the pending copies after every operation, which
		// ends the step (a Copy's source parked until then is released):
		// the replay keeps the same step boundaries.
		_ = c.TakeCopies(nil)
	}
	seen := map[paged.SeqID]bool{}
	for i, sc := range sched {
		if seen[sc.ID] {
			return paged.ErrInvalid
		}
		seen[sc.ID] = true
		running, _ := c.Running(sc.ID)
		if err := c.Append(sc.ID, tokens[i]); err != nil && !errors.Is(err, paged.ErrNoSpace) {
			return sentinel(err)
		}
		if decode && !running {
			return paged.ErrSequenceState
		}
		if decode && sc.NewTokens != 1 {
			return paged.ErrInvalid
		}
	}
	return nil
}

// compare checks that the two managers are in the same state: counters,
// every sequence's tokens and tables, the pending copies and events, and
// their own invariants.
func (w *stepWorld) compare(t *rapid.T) {
	if a, r := w.a.Stats(), w.r.Stats(); a != r {
		t.Fatalf("stats differ:\n%+v\n%+v", a, r)
	}
	for _, id := range w.ids {
		ta, ea := w.a.Tokens(id)
		tr, er := w.r.Tokens(id)
		if !slices.Equal(ta, tr) || sentinel(ea) != sentinel(er) {
			t.Fatalf("%v: tokens %v (%v), reference %v (%v)", id, ta, ea, tr, er)
		}
		for g := range max(1, len(w.cfg.Groups)) {
			ba, _ := w.a.TableGroup(id, g)
			br, _ := w.r.TableGroup(id, g)
			if !slices.Equal(ba, br) {
				t.Fatalf("%v: group %d table %v, reference %v", id, g, ba, br)
			}
		}
	}
	if a, r := w.a.TakeCopies(nil), w.r.TakeCopies(nil); !slices.Equal(a, r) {
		t.Fatalf("copies %v, reference %v", a, r)
	}
	if a, r := w.a.DrainEvents(nil), w.r.DrainEvents(nil); fmt.Sprint(a) != fmt.Sprint(r) {
		t.Fatalf("events %v, reference %v", a, r)
	}
	for _, m := range []*paged.Manager{w.a, w.r} {
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

// sameBatch checks that two batches say the same to a kernel.
func sameBatch(t *rapid.T, a, r *paged.Batch) {
	n := len(r.Seqs)
	if a.Stride != r.Stride || !slices.Equal(a.Seqs, r.Seqs) || !slices.Equal(a.SeqLens, r.SeqLens) ||
		!slices.Equal(a.QueryLens, r.QueryLens) || !slices.Equal(a.QueryStart, r.QueryStart) ||
		!slices.Equal(a.Slots, r.Slots) || !slices.Equal(a.BlocksPerSeq, r.BlocksPerSeq) ||
		!slices.Equal(a.Tables[:n*a.Stride], r.Tables[:n*r.Stride]) || !slices.Equal(a.Copies, r.Copies) ||
		fmt.Sprint(a.GroupTables, a.GroupSlots) != fmt.Sprint(r.GroupTables, r.GroupSlots) {
		t.Fatalf("batches differ:\n%+v\n%+v", a, r)
	}
}

// TestStepMatchesLoop: AppendStep and DecodeStep do what the loop of
// Append calls (and BuildBatch) does, refusals and ErrNoSpace included,
// on random workloads with shared prefixes, forks (copy-on-write),
// preemption, drafts, sliding windows, a pool small enough to run out,
// with and without prefix caching and events, for one group and for a
// full + sliding-window pair; and a refused step changes nothing.
func TestStepMatchesLoop(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := paged.Config{
			BlockSize:            rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs"),
			NumBlocks:            rapid.IntRange(4, 24).Draw(t, "blocks"),
			DisablePrefixCaching: rapid.IntRange(0, 3).Draw(t, "nocache") == 0,
		}
		if rapid.Bool().Draw(t, "events") {
			cfg.Events = 256
		}
		if rapid.IntRange(0, 3).Draw(t, "hybrid") == 0 {
			cfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2 * cfg.BlockSize}}
		}
		w := &stepWorld{cfg: cfg}
		var err error
		if w.a, err = paged.New(cfg); err != nil {
			t.Fatal(err)
		}
		if w.r, err = paged.New(cfg); err != nil {
			t.Fatal(err)
		}
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			switch rapid.IntRange(0, 6).Draw(t, "kind") {
			case 0, 1:
				w.create(t)
			case 2:
				w.other(t)
			default:
				w.step(t)
			}
			w.compare(t)
		}
	})
}

// TestDecodeStepRefusals: each refusal names its entry and changes
// nothing; DecodeStep's own (a nil batch, a waiting sequence, a NewTokens
// other than 1, a table past a fixed Stride) too.
func TestDecodeStepRefusals(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, MaxModelLen: 64})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	long, _, err := m.Create(seqOf(100, 16), nil) // 4 blocks; its next token starts a fifth
	require.NoError(t, err)
	waiting, err := m.Add(seqOf(200, 3), nil)
	require.NoError(t, err)
	one := func(ids ...paged.SeqID) []paged.Scheduled {
		sched := make([]paged.Scheduled, len(ids))
		for i, id := range ids {
			sched[i] = paged.Scheduled{ID: id, NewTokens: 1}
		}
		return sched
	}
	before := m.Stats()
	la, _ := m.Tokens(a)
	la = slices.Clone(la)
	for _, c := range []struct {
		name   string
		b      *paged.Batch
		sched  []paged.Scheduled
		tokens []int32
		want   error
		append bool // AppendStep refuses it too
	}{
		{"nil batch", nil, one(a), []int32{1}, paged.ErrInvalid, false},
		{"length mismatch", &paged.Batch{}, one(a, long), []int32{1}, paged.ErrInvalid, true},
		{"twice", &paged.Batch{}, one(a, long, a), []int32{1, 2, 3}, paged.ErrInvalid, true},
		{"unknown", &paged.Batch{}, one(a, paged.SeqID(99)), []int32{1, 2}, paged.ErrUnknownSequence, true},
		{"negative token", &paged.Batch{}, one(a, long), []int32{1, -2}, paged.ErrInvalid, true},
		{"waiting", &paged.Batch{}, one(a, waiting), []int32{1, 2}, paged.ErrSequenceState, false},
		{"two new tokens", &paged.Batch{}, []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: long, NewTokens: 2}}, []int32{1, 2}, paged.ErrInvalid, false},
		{"past a fixed stride", &paged.Batch{Stride: 4}, one(a, long), []int32{1, 2}, paged.ErrInvalid, false},
	} {
		n, err := m.DecodeStep(c.b, c.sched, c.tokens)
		assert.ErrorIs(t, err, c.want, c.name)
		assert.Zero(t, n, c.name)
		if c.append {
			n, err := m.AppendStep(c.sched, c.tokens)
			assert.ErrorIs(t, err, c.want, c.name)
			assert.Zero(t, n, c.name)
		}
		assert.Equal(t, before, m.Stats(), c.name)
		got, _ := m.Tokens(a)
		assert.Equal(t, la, got, c.name)
	}
	_, err = m.DecodeStep(&paged.Batch{}, one(a, long, waiting), []int32{1, 2, 3})
	assert.ErrorContains(t, err, "DecodeStep entry 2")
	// AppendStep takes a waiting sequence's token, as Append does.
	n, err := m.AppendStep(one(a, waiting), []int32{1, 2})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	require.NoError(t, m.Check())
}

// TestDecodeStepNoSpace: when the pool runs out at an entry, the entries
// before it have their tokens, the rest do not, and the step is finished
// as the documentation says, with AppendStep and BuildBatch after a
// preemption.
func TestDecodeStepNoSpace(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 4, DisablePrefixCaching: true})
	require.NoError(t, err)
	var sched []paged.Scheduled
	for i := range 3 {
		id, _, err := m.Create(seqOf(10*i, 4), nil) // one full block each
		require.NoError(t, err)
		sched = append(sched, paged.Scheduled{ID: id, NewTokens: 1})
	}
	var b paged.Batch
	n, err := m.DecodeStep(&b, sched, []int32{1, 2, 3}) // needs 3 blocks, 0 free
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, 0, n)
	require.NoError(t, m.Preempt(sched[2].ID)) // frees one block
	n, err = m.DecodeStep(&b, sched[:2], []int32{1, 2})
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, 1, n, "the first entry took the freed block")
	require.NoError(t, m.Preempt(sched[1].ID))
	n, err = m.AppendStep(sched[1:1], nil) // nothing left to append
	require.NoError(t, err)
	assert.Zero(t, n)
	require.NoError(t, m.BuildBatch(&b, sched[:1]))
	assert.Equal(t, []int32{5}, b.SeqLens)
	tbl, err := m.Table(sched[0].ID)
	require.NoError(t, err)
	assert.Equal(t, []int64{int64(tbl[1]) * 4}, b.Slots)
	require.NoError(t, m.Check())
}

// TestStepAPIAllocatesNothing: DecodeStep and AppendStep allocate
// nothing in the steady state of the decode benchmark's workload, with
// and without prefix caching.
func TestStepAPIAllocatesNothing(t *testing.T) {
	for _, caching := range []bool{true, false} {
		m, sched := decodeSetup(t, 64, 16, 1<<14, !caching)
		var batch paged.Batch
		tokens := make([]int32, len(sched))
		steps := 0
		step := func() {
			var err error
			if steps%2 == 0 {
				_, err = m.DecodeStep(&batch, sched, tokens)
			} else {
				_, err = m.AppendStep(sched, tokens)
			}
			if err != nil {
				panic(err)
			}
			steps++
			if steps%64 == 0 {
				for _, sc := range sched {
					if err := m.Truncate(sc.ID, 100); err != nil {
						panic(err)
					}
				}
			}
		}
		for range 200 {
			step()
		}
		assert.Zero(t, testing.AllocsPerRun(500, step), "caching %v", caching)
		require.NoError(t, m.Check())
	}
}

// TestDecodeStepNoSpaceKeepsWidth: a DecodeStep that runs out of blocks
// at an entry before the sequence whose new token would outgrow the
// batch's automatic width leaves the width as it was, as the loop of
// Append calls (which stops before its BuildBatch) does. It used to widen
// first, so the next batches differed from the loop's in Stride
// (TestStepMatchesLoop found it, seed 2447925960254469175).
func TestDecodeStepNoSpaceKeepsWidth(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 18})
	if err != nil {
		t.Fatal(err)
	}
	long := make([]int32, 16)
	for i := range long {
		long[i] = int32(100 + i)
	}
	a, _, err := m.Create(long, nil) // 16 blocks
	if err != nil {
		t.Fatal(err)
	}
	bID, _, err := m.Create([]int32{7}, nil) // 1 block: the pool is full
	if err != nil {
		t.Fatal(err)
	}
	sched := []paged.Scheduled{{ID: bID, NewTokens: 1}, {ID: a, NewTokens: 1}}
	var b paged.Batch
	if err := m.BuildBatch(&b, sched); err != nil {
		t.Fatal(err)
	}
	if b.Stride != 16 {
		t.Fatalf("stride %d, want 16", b.Stride)
	}
	n, err := m.DecodeStep(&b, sched, []int32{1, 2})
	if n != 0 || !errors.Is(err, paged.ErrNoSpace) {
		t.Fatalf("DecodeStep = %d, %v; want 0 and ErrNoSpace", n, err)
	}
	if b.Stride != 16 {
		t.Fatalf("after the refused step the stride is %d, want 16 as before", b.Stride)
	}
	// The caller preempts and goes on: the next step widens, as
	// BuildBatch would.
	if err := m.Preempt(bID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DecodeStep(&b, sched[1:], []int32{2}); err != nil {
		t.Fatal(err)
	}
	if b.Stride != 32 || b.BlocksPerSeq[0] != 17 {
		t.Fatalf("stride %d, blocks %v; want 32 and 17", b.Stride, b.BlocksPerSeq)
	}
}
