package paged

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"pgregory.net/rapid"
)

// audit27Plan is what an admission plan answers: the plan, the
// admission and the hit rows of every group and the checkpoint's pages.
type audit27Plan struct {
	p     plan
	a     Admission
	hits  []allocator.BlockID
	ghits [][]allocator.BlockID
	pages []allocator.BlockID
}

func (m *Manager) audit27PlanOf(s *sequence) audit27Plan {
	p, a := m.planAdmit(s)
	r := audit27Plan{p: p, a: a, hits: slices.Clone(m.hits), pages: slices.Clone(m.ret.hitPages)}
	for _, row := range m.ghits {
		r.ghits = append(r.ghits, slices.Clone(row))
	}
	return r
}

// TestAudit27GuessesMatchIndex: the lookups' guesses (the last answer
// left in the hit buffer's spare capacity, read block by block; the
// window scan's sibling memory m.sib; the block after the one before)
// never change an answer. A manager runs random calls (requests over
// shared prefixes run and ended, preemption, swaps and onboarding on a
// host tier, evictions under pressure, ResetCache, truncation), and
// every waiting sequence's admission plan is asked twice after each:
// with the guesses as the calls left them, or overwritten with block IDs
// that hold other content, were evicted or are out of range, and with no
// guesses at all (the buffers replaced, the sibling memory cleared); the
// plans, their hit rows and checkpoint pages must be the same. On one
// group (with and without a sliding window) and every hybrid layout.
func TestAudit27GuessesMatchIndex(t *testing.T) {
	compared, guessedHits, checks := 0, 0, 0
	rapid.Check(t, func(t *rapid.T) {
		checks++
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		unified := rapid.Bool().Draw(t, "unified")
		var groups []Group
		if rapid.IntRange(0, 2).Draw(t, "hybrid") > 0 {
			w := rapid.IntRange(1, 5*bs).Draw(t, "window")
			groups = []Group{{Kind: FullAttention}}
			for range rapid.IntRange(1, 2).Draw(t, "others") {
				groups = append(groups, rapid.SampledFrom([]Group{
					{Kind: SlidingWindow, Window: w},
					{Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 5*bs).Draw(t, "chunk")},
					{Kind: State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")},
					{Kind: FullAttention},
				}).Draw(t, "group"))
			}
		}
		cfg := Config{BlockSize: bs, NumBlocks: rapid.IntRange(8, 48).Draw(t, "blocks"), Groups: groups,
			UnifiedFreeQueue: unified, MaxModelLen: 16 * bs}
		if rapid.Bool().Draw(t, "host") {
			cfg.HostBlocks = rapid.IntRange(2, 40).Draw(t, "host blocks")
		}
		window := 0
		if groups == nil && rapid.IntRange(0, 3).Draw(t, "seq window") == 0 {
			window = rapid.IntRange(1, 5*bs).Draw(t, "sliding window")
		}
		m, err := New(cfg)
		if err != nil {
			t.Skip(err)
		}
		prefixes := [][]int32{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}}
		next := int32(1000)
		prompt := func() []int32 {
			p := rapid.SampledFrom(prefixes).Draw(t, "prefix")
			n := rapid.IntRange(1, min(len(p), 12*bs)).Draw(t, "cut")
			p = slices.Clone(p[:n])
			for range rapid.IntRange(0, 2*bs).Draw(t, "tail") {
				next++
				p = append(p, next)
			}
			return p
		}
		var ids []SeqID
		opts := &SeqOptions{Window: window}
		check := func(what string) {
			for _, id := range ids {
				idx, _ := id.parts()
				s := &m.seqs[idx]
				if s.state != seqWaiting {
					continue
				}
				want := m.audit27PlanOf(s) // the guesses the calls left
				if len(want.hits) > 0 {
					guessedHits++
				}
				// Adversarial guesses: every spare slot of the hit
				// buffers names some block or none (out of range,
				// negative: a host reference), and the sibling memory
				// some block of the pool (its invariant: an ID of the
				// pool, or 0).
				for _, buf := range [][]allocator.BlockID{m.hits[:cap(m.hits)], m.wids[:cap(m.wids)]} {
					for i := range buf {
						buf[i] = allocator.BlockID(rapid.IntRange(-3, cfg.NumBlocks+2).Draw(t, "guess"))
					}
				}
				for i := range m.sib {
					m.sib[i] = allocator.BlockID(rapid.IntRange(0, cfg.NumBlocks-1).Draw(t, "sibling"))
				}
				for g := range m.ghits {
					row := m.ghits[g][:cap(m.ghits[g])]
					for i := range row {
						row[i] = allocator.BlockID(rapid.IntRange(-3, cfg.NumBlocks+2).Draw(t, "guess"))
					}
				}
				bad := m.audit27PlanOf(s)
				// No guesses at all.
				m.hits, m.wids = nil, nil
				for g := range m.ghits {
					m.ghits[g] = nil
				}
				clear(m.sib)
				none := m.audit27PlanOf(s)
				for name, got := range map[string]audit27Plan{"adversarial guesses": bad, "no guesses": none} {
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("after %s, %v: with the calls' guesses %+v, with %s %+v", what, id, want, name, got)
					}
				}
				compared++
			}
			if err := m.Check(); err != nil {
				t.Fatalf("after %s: %v", what, err)
			}
		}
		pick := func() (int, SeqID) {
			k := rapid.IntRange(0, len(ids)-1).Draw(t, "seq")
			return k, ids[k]
		}
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			op := rapid.IntRange(0, 10).Draw(t, "op")
			if len(ids) == 0 && op > 1 && op != 9 {
				op = 0
			}
			switch op {
			case 0: // a request run and ended: its content cached
				if id, _, err := m.Create(prompt(), opts); err == nil {
					for range rapid.IntRange(0, 2*bs).Draw(t, "decode") {
						next++
						if m.Append(id, next) != nil {
							break
						}
					}
					if err := m.Free(id); err != nil {
						t.Fatal(err)
					}
				}
			case 1:
				if id, err := m.Add(prompt(), opts); err == nil {
					ids = append(ids, id)
				}
			case 2:
				_, id := pick()
				m.Admit(id)
			case 3:
				_, id := pick()
				next++
				m.Append(id, next)
			case 4:
				_, id := pick()
				m.Preempt(id)
			case 5:
				k, id := pick()
				if m.Free(id) == nil {
					ids = slices.Delete(ids, k, k+1)
				}
			case 6:
				_, id := pick()
				m.SwapOut(id)
			case 7:
				_, id := pick()
				if rapid.Bool().Draw(t, "in") {
					m.SwapIn(id)
				} else {
					m.Onboard(id)
				}
			case 8:
				_, id := pick()
				m.Truncate(id, rapid.IntRange(1, 12*bs).Draw(t, "truncate"))
			case 9:
				m.ResetCache()
			default:
				m.EndStep()
			}
			m.TakeSwaps(nil)
			m.TakeCopies(nil)
			m.TakeCheckpoints(nil)
			check(fmt.Sprintf("step %d op %d", step, op))
		}
	})
	// (Asked of 100 runs or more, go test's default: CI's 32-bit pass
	// runs 10.)
	if checks >= 100 && (compared == 0 || guessedHits == 0) {
		t.Fatalf("%d plans compared, %d with hits", compared, guessedHits)
	}
}
