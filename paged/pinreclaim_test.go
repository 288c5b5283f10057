package paged

import (
	"errors"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestPinReclaimChunkedShareAlone: the audit's shape. Three windows of 8
// tokens beside full attention, 3 tokens a block, 17 usable blocks; an
// earlier request computed a 4-token prompt whose first block starts a
// 13-token prompt, which therefore branches after one block and would pin
// that block in each window once they leave it. Computed 2 tokens a step
// alone in the pool, it fits without those pins and not with them: before
// pins were a soft cost AdmitChunk refused it (ErrNever: chunkNever
// counted them) and a scheduler aborted it, though a fresh pool serves
// it. Now it is admitted and runs to the end alone, its pins released
// when its own chunks need the room (RetentionPinsReleased), Check
// passing after every step.
func TestPinReclaimChunkedShareAlone(t *testing.T) {
	prompt := shareAlonePrompt()
	run := func(history bool) (released uint64, err error) {
		m, _ := shareAloneShape(t, 18, history)
		id, err := m.Add(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, err := m.AdmitChunk(id, 2, nil)
		if err != nil {
			return 0, err
		}
		for step := 0; len(rest) > 0 || step < 6; step++ {
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			tokens := []int32{1}
			if len(rest) > 0 {
				tokens = rest[:min(2, len(rest))]
				rest = rest[len(tokens):]
			}
			if err := m.Append(id, tokens...); err != nil {
				return 0, err
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		st := m.Stats()
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		if got := m.Stats(); got.RetentionPins != 0 || got.UsedBlocks != 0 {
			t.Fatalf("after Free: %+v", got)
		}
		return st.RetentionPinsReleased, nil
	}
	if _, err := run(false); err != nil {
		t.Fatalf("a fresh pool: %v", err)
	}
	released, err := run(true)
	if errors.Is(err, ErrNever) || errors.Is(err, ErrNoSpace) {
		t.Fatalf("sharing a block of prefix: %v, which a fresh pool serves", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if released == 0 {
		t.Fatal("no retention pin released: the test no longer has the audit's shape")
	}
}

// shareAlonePrompt is TestPinReclaimChunkedShareAlone's 13-token prompt.
func shareAlonePrompt() []int32 {
	prompt := make([]int32, 13)
	for i := range prompt {
		prompt[i] = int32(100 + i)
	}
	return prompt
}

// shareAloneShape returns a manager of TestPinReclaimChunkedShareAlone's
// layout (three windows of 8 tokens beside full attention, blocks of 3)
// in a pool of n blocks, and its prompt; with history, an earlier
// request computed a 4-token prompt whose first block starts it, so the
// prompt branches after one block.
func shareAloneShape(t *testing.T, n int, history bool) (*Manager, []int32) {
	t.Helper()
	m, err := New(Config{BlockSize: 3, NumBlocks: n, Groups: []Group{
		{Kind: FullAttention},
		{Kind: SlidingWindow, Window: 8}, {Kind: SlidingWindow, Window: 8}, {Kind: SlidingWindow, Window: 8},
	}})
	if err != nil {
		t.Fatal(err)
	}
	prompt := shareAlonePrompt()
	if history {
		a, _, err := m.Create(append(append([]int32{}, prompt[:3]...), 7), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(a); err != nil {
			t.Fatal(err)
		}
	}
	return m, prompt
}

// TestPinReclaimFastPathsMatchGeneral: the shape of the failure that
// reverted the first merge (TestAudit14MultiKindFastPathsLookupAndReads,
// seed 17852057859916819501). A sequence alone in the pool hit a state
// checkpoint: its admission's Copy directives read the checkpoint's
// pages, which it pins, and the window pins a block before its branch
// point; it then decodes past the free blocks, so its growth needs the
// room of its pins. Whether the copies' sources may go is decided by the
// step, not by the append path: while the copies are pending they stay
// held (pinHeld), once they are handed out (TakeCopies, BuildBatch,
// DecodeStep) they go too. So every append path (Append's fast paths:
// inline, appendOne, startPair with one window; AppendStep; DecodeStep)
// must leave, token by token, the same error, Stats and tables as the
// general path (appendTokens) given the same step ends: the failure was
// a harness that ended the fast manager's steps (DecodeStep, BuildBatch)
// and not the general one's, and the two released different pins (6 and
// 4). Both timelines are run: copies left pending, and the step ended
// after every token.
func TestPinReclaimFastPathsMatchGeneral(t *testing.T) {
	layouts := []struct {
		name   string
		groups []Group
		blocks int
	}{
		// m.pair: group 0's and the window's blocks by startPair.
		{"pair", []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}, {Kind: SlidingWindow, Window: 4}}, 14},
		// Two windows: appendOne through growGroups.
		{"two windows", []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}, {Kind: Shared, Target: 0},
			{Kind: SlidingWindow, Window: 4}, {Kind: SlidingWindow, Window: 2}}, 18},
	}
	type entry struct {
		noSpace bool
		stats   Stats
		tables  [][]allocator.BlockID
	}
	prefix := []int32{1, 2, 3, 4, 5, 6, 7, 8} // two blocks
	with := func(tail ...int32) []int32 { return append(append([]int32{}, prefix...), tail...) }
	// setup returns a manager whose one running sequence hit the
	// checkpoint a former sequence took at the branch point after
	// prefix, its Copy directives not taken.
	setup := func(t *testing.T, groups []Group, blocks int) (*Manager, SeqID) {
		m, err := New(Config{BlockSize: 4, NumBlocks: blocks, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][]int32{with(100), with(200, 201, 202, 203, 204, 205)} {
			id, _, err := m.Create(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		id, cached, err := m.Create(with(300, 301, 302, 303, 304, 305), nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); cached != len(prefix) || st.RetentionPins < 2 || len(m.copies) != 2 {
			t.Fatalf("setup: %d tokens cached, %d pins, %d copies: want a hit of the checkpoint after %d tokens, its 2 pages pinned and copied",
				cached, st.RetentionPins, len(m.copies), len(prefix))
		}
		return m, id
	}
	type path struct {
		name string
		ends bool // the call ends the step itself
		add  func(m *Manager, b *Batch, sched []Scheduled, tok int32) error
	}
	paths := []path{
		{"general", false, func(m *Manager, _ *Batch, sched []Scheduled, tok int32) error {
			return m.appendTokens(sched[0].ID, []int32{tok}, false)
		}},
		{"Append", false, func(m *Manager, _ *Batch, sched []Scheduled, tok int32) error { return m.Append(sched[0].ID, tok) }},
		{"AppendStep", false, func(m *Manager, _ *Batch, sched []Scheduled, tok int32) error {
			_, err := m.AppendStep(sched, []int32{tok})
			return err
		}},
		{"DecodeStep", true, func(m *Manager, b *Batch, sched []Scheduled, tok int32) error {
			_, err := m.DecodeStep(b, sched, []int32{tok})
			return err
		}},
	}
	for _, l := range layouts {
		name, groups := l.name, l.groups
		for _, endSteps := range []bool{false, true} {
			var want []entry
			for _, p := range paths {
				if p.ends && !endSteps {
					continue // DecodeStep hands the copies out
				}
				m, id := setup(t, groups, l.blocks)
				sched := []Scheduled{{ID: id, NewTokens: 1}}
				var b Batch
				var got []entry
				for n := range 40 {
					err := p.add(m, &b, sched, int32(400+n))
					if err != nil && !errors.Is(err, ErrNoSpace) {
						t.Fatalf("%s, %s, token %d: %v", name, p.name, n, err)
					}
					if err == nil && endSteps && !p.ends {
						if err := m.BuildBatch(&b, sched); err != nil {
							t.Fatalf("%s, %s, token %d: BuildBatch: %v", name, p.name, n, err)
						}
					}
					if err := m.Check(); err != nil {
						t.Fatalf("%s, %s, token %d: %v", name, p.name, n, err)
					}
					e := entry{noSpace: err != nil, stats: m.Stats()}
					for g := range groups {
						tab, _ := m.TableGroup(id, g)
						e.tables = append(e.tables, slices.Clone(tab))
					}
					got = append(got, e)
					if err != nil {
						break
					}
				}
				if p.name == "general" {
					want = got
					last := got[len(got)-1]
					// The shape: refused in the end, having released
					// pins, the copies' sources held while pending.
					if !last.noSpace || last.stats.RetentionPinsReleased == 0 {
						t.Fatalf("%s, step ends %v: the general path ended %+v: no longer the shape", name, endSteps, last)
					}
					if held := last.stats.RetentionPins; endSteps != (held == 0) {
						t.Fatalf("%s, step ends %v: %d pins held at the refusal: want the copies' 2 sources held just while the copies are pending", name, endSteps, held)
					}
					continue
				}
				if len(got) != len(want) {
					t.Fatalf("%s, step ends %v: %s took %d calls to the refusal, the general path %d", name, endSteps, p.name, len(got), len(want))
				}
				for n := range got {
					if g, w := got[n], want[n]; g.noSpace != w.noSpace || g.stats != w.stats || !slices.EqualFunc(g.tables, w.tables, slices.Equal) {
						t.Fatalf("%s, step ends %v, token %d: %s\n%+v\ngeneral path\n%+v", name, endSteps, n, p.name, g, w)
					}
				}
			}
		}
	}
}
