package paged_test

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// TestDroppedStepLeavesNoHit drives creations (prompts of a few shared
// families), forks, appends, steps and drops (a step that drops a
// sequence: Uncompute from the first position given in the step, then
// Free, now or after the others dropped with it) and keeps a model of
// group 0's blocks: computed (a step that ended computed them) or
// pending (stored in the step being built by a sequence that computes
// them in it). Dropping a sequence drops every sequence that shares a
// block it was to compute (a fork, or an admission that hit it): their
// KV needs it. Every hit of a Create must be on a computed block or a
// pending one; before audit36 a block shared by two dropped sequences
// stayed cached, and a later Create hit it.
func TestDroppedStepLeavesNoHit(t *testing.T) {
	var drops, shared, hits int
	rapid.Check(t, func(t *rapid.T) {
		tc := pinStepLayouts[rapid.IntRange(0, len(pinStepLayouts)-1).Draw(t, "layout")]
		m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 24, Groups: tc.groups})
		if err != nil {
			t.Fatal(err)
		}
		const bs = 2
		type seq struct {
			id    paged.SeqID
			toks  []int32
			start int // the first position given in the step being built
		}
		var live []*seq
		computed := map[allocator.BlockID]bool{}
		pending := map[allocator.BlockID]*seq{} // storer, this step
		table := func(s *seq) []allocator.BlockID {
			tab, err := m.Table(s.id)
			if err != nil {
				t.Fatal(err)
			}
			return tab
		}
		store := func(s *seq, tab []allocator.BlockID, from int) {
			for _, b := range tab[from:] {
				pending[b] = s
				delete(computed, b)
			}
		}
		remove := func(s *seq) {
			live = slices.DeleteFunc(live, func(x *seq) bool { return x == s })
		}
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 3: // create
				fam := int32(rapid.IntRange(0, 2).Draw(t, "family"))
				n := rapid.IntRange(1, 11).Draw(t, "len")
				p := make([]int32, n)
				for i := range p {
					p[i] = 100*fam + int32(i)
				}
				if rapid.IntRange(0, 3).Draw(t, "branch") == 0 {
					p[n-1] = 999
				}
				id, cached, err := m.Create(p, nil)
				if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				s := &seq{id: id, toks: p}
				tab := table(s)
				for k, b := range tab[:cached/bs] {
					hits++
					if st, ok := pending[b]; !computed[b] && (!ok || st == nil) {
						t.Fatalf("Create of %v hits block %d (entry %d), which holds KV no step computed", p, b, k)
					}
				}
				store(s, tab, cached/bs)
				live = append(live, s)
			case op == 3 && len(live) > 0: // fork
				p := live[rapid.IntRange(0, len(live)-1).Draw(t, "parent")]
				id, err := m.Fork(p.id)
				if errors.Is(err, paged.ErrNoSpace) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				live = append(live, &seq{id: id, toks: slices.Clone(p.toks), start: p.start})
			case op < 6 && len(live) > 0: // append a token
				s := live[rapid.IntRange(0, len(live)-1).Draw(t, "appender")]
				before := slices.Clone(table(s))
				tok := int32(rapid.IntRange(0, 3).Draw(t, "token"))
				if err := m.Append(s.id, tok); errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				s.toks = append(s.toks, tok)
				tab := table(s)
				k := len(s.toks) - 1
				for j := range tab {
					if j == k/bs || j >= len(before) || tab[j] != before[j] {
						pending[tab[j]] = s
						delete(computed, tab[j])
					}
				}
			case op < 8 && len(live) > 0: // a step drops a sequence
				first := live[rapid.IntRange(0, len(live)-1).Draw(t, "dropped")]
				drop := map[*seq]int{first: first.start}
				// Every sharer of a block a dropped one was to compute
				// is dropped too, from that block on at the latest.
				for grew := true; grew; {
					grew = false
					for _, x := range live {
						for k, b := range table(x) {
							st := pending[b]
							if _, dropped := drop[st]; !dropped || st == x {
								continue
							}
							c, in := drop[x]
							if c2 := min(k*bs, x.start); !in || c2 < c {
								drop[x], grew = c2, true
							}
						}
					}
				}
				order := make([]*seq, 0, len(drop))
				for _, x := range live {
					if _, ok := drop[x]; ok {
						order = append(order, x)
					}
				}
				if len(order) > 1 {
					shared++
				}
				var later []*seq
				for _, x := range order {
					if err := m.Uncompute(x.id, drop[x]); err != nil {
						t.Fatal(err)
					}
					drops++
					for b, st := range pending {
						if st == x {
							pending[b] = nil
						}
					}
					if rapid.Bool().Draw(t, "freeNow") {
						if err := m.Free(x.id); err != nil {
							t.Fatal(err)
						}
						remove(x)
					} else {
						later = append(later, x)
					}
				}
				for _, x := range later {
					if err := m.Free(x.id); err != nil {
						t.Fatal(err)
					}
					remove(x)
				}
			case op == 8 && len(live) > 0: // a sequence that computed nothing this step finishes
				s := live[rapid.IntRange(0, len(live)-1).Draw(t, "finished")]
				busy := false
				for _, b := range table(s) {
					if pending[b] != nil {
						busy = true
					}
				}
				if busy {
					break
				}
				if err := m.Free(s.id); err != nil {
					t.Fatal(err)
				}
				remove(s)
			default: // the step runs
				m.EndStep()
				for b, st := range pending {
					if st != nil {
						computed[b] = true
					}
				}
				clear(pending)
				for _, s := range live {
					s.start = len(s.toks)
				}
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("%d hits checked, %d sequences dropped, %d drops of several sharers", hits, drops, shared)
}
