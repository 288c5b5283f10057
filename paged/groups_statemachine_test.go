package paged_test

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// hyKV is the KV a group's layers compute at position p of a sequence: it
// depends on every token up to p and on the group.
func hyKV(g int, tokens []int32) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, g, tokens)
	return h.Sum64()
}

type hySeq struct {
	id     paged.SeqID
	tokens []int32
	run    bool
	// fresh: trailing tokens whose KV this step computes (since the last
	// batch), as a scheduler would schedule them.
	fresh int
}

// hyModel drives a manager with KV cache groups and a shadow of every
// group's KV, written through the tables as a server writes, and reads
// every running sequence back through every group's table after each step.
type hyModel struct {
	m      *paged.Manager
	groups []paged.Group
	bs     int
	seqs   []*hySeq
	shadow map[int64]uint64
	// prefixes are shared prompt beginnings, so prefix hits happen.
	prefixes [][]int32
}

// live is the first position group g must still hold for a sequence of n
// tokens: the window of the next query, or 0.
func (h *hyModel) live(g, n int) int {
	switch k := h.groups[g]; k.Kind {
	case paged.SlidingWindow:
		return max(0, n-k.Window+1)
	case paged.ChunkedLocal:
		return n / k.Chunk * k.Chunk
	}
	return 0
}

// kvGroup is the group whose KV group g's table reads: a shared group
// reads its target's. A state group has no positions (-1).
func (h *hyModel) kvGroup(g int) int {
	switch k := h.groups[g]; k.Kind {
	case paged.Shared:
		return k.Target
	case paged.State:
		return -1
	}
	return g
}

func (h *hyModel) write(t *rapid.T, s *hySeq, from int) {
	for g := range h.groups {
		if h.kvGroup(g) != g {
			continue // no KV of its own
		}
		table, err := h.m.TableGroup(s.id, g)
		if err != nil {
			t.Fatalf("TableGroup(%v, %d): %v", s.id, g, err)
		}
		for p := from; p < len(s.tokens); p++ {
			b := table[p/h.bs]
			if b == 0 {
				if p >= h.live(g, len(s.tokens)) {
					t.Fatalf("group %d of %v: position %d (in the window) maps to the null block", g, s.id, p)
				}
				continue // a window group's KV before its window is not kept
			}
			h.shadow[int64(b)*int64(h.bs)+int64(p%h.bs)] = hyKV(g, s.tokens[:p+1])
		}
	}
}

func (h *hyModel) readBack(t *rapid.T) {
	for _, s := range h.seqs {
		if !s.run {
			continue
		}
		for g := range h.groups {
			table, err := h.m.TableGroup(s.id, g)
			if err != nil {
				t.Fatalf("TableGroup(%v, %d): %v", s.id, g, err)
			}
			kv := h.kvGroup(g)
			if kv < 0 {
				if len(table) != h.groups[g].Pages || slices.Contains(table, 0) {
					t.Fatalf("state group %d of %v: pages %v", g, s.id, table)
				}
				continue
			}
			for p := h.live(kv, len(s.tokens)); p < len(s.tokens); p++ {
				b := table[p/h.bs]
				sl := int64(b)*int64(h.bs) + int64(p%h.bs)
				if b == 0 || h.shadow[sl] != hyKV(kv, s.tokens[:p+1]) {
					t.Fatalf("read-back of %v group %d position %d (block %d): not its own KV", s.id, g, p, b)
				}
			}
		}
	}
}

func (h *hyModel) check(t *rapid.T) {
	if err := h.m.Check(); err != nil {
		t.Fatal(err)
	}
	h.readBack(t)
}

func (h *hyModel) pick(t *rapid.T, run bool) *hySeq {
	var c []*hySeq
	for _, s := range h.seqs {
		if s.run == run {
			c = append(c, s)
		}
	}
	if len(c) == 0 {
		t.Skip("no such sequence")
	}
	return rapid.SampledFrom(c).Draw(t, "seq")
}

func (h *hyModel) admit(t *rapid.T, s *hySeq) {
	cached, err := h.m.Admit(s.id)
	if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
		return
	}
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if cached%h.bs != 0 || cached >= len(s.tokens) {
		t.Fatalf("Admit: %d cached tokens of %d", cached, len(s.tokens))
	}
	s.run = true
	s.fresh = len(s.tokens) - cached
	// The hit's KV is already there: read it back before computing the rest.
	h.write(t, s, cached)
}

// TestGroupsStateMachine: random hybrid layouts (full attention with zero
// or more full and sliding-window groups), both free-queue modes, shared
// prompt prefixes, under pool pressure; after every step Check passes and
// every running sequence reads its own KV back through every group.
func TestGroupsStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4, 16}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		// One kind besides full attention, of one size, and shared groups.
		other := rapid.SampledFrom([]paged.Group{
			{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 6*bs).Draw(t, "window")},
			{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")},
			{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")},
		}).Draw(t, "other")
		for range rapid.IntRange(1, 3).Draw(t, "extra") {
			switch rapid.IntRange(0, 2).Draw(t, "kind") {
			case 0:
				groups = append(groups, paged.Group{Kind: paged.FullAttention})
			case 1:
				groups = append(groups, other)
			case 2:
				target := rapid.IntRange(0, len(groups)-1).Draw(t, "target")
				if k := groups[target].Kind; k == paged.State || k == paged.Shared {
					target = 0
				}
				groups = append(groups, paged.Group{Kind: paged.Shared, Target: target})
			}
		}
		m, err := paged.New(paged.Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(2, 64).Draw(t, "blocks"),
			Groups:           groups,
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
			MaxModelLen:      12 * bs,
			Events:           64,
		})
		if err != nil {
			t.Fatal(err)
		}
		h := &hyModel{m: m, groups: groups, bs: bs, shadow: map[int64]uint64{}}
		for i := range 3 {
			p := make([]int32, rapid.IntRange(1, 5*bs).Draw(t, "prefix"))
			for k := range p {
				p[k] = int32(100*i + k)
			}
			h.prefixes = append(h.prefixes, p)
		}
		next := int32(1 << 20)
		t.Repeat(map[string]func(*rapid.T){
			"add": func(t *rapid.T) {
				prompt := append([]int32(nil), rapid.SampledFrom(h.prefixes).Draw(t, "prefix")...)
				for range rapid.IntRange(0, 3*bs).Draw(t, "tail") {
					next++
					prompt = append(prompt, next)
				}
				id, err := h.m.Add(prompt, nil)
				if errors.Is(err, paged.ErrNever) {
					return
				}
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
				s := &hySeq{id: id, tokens: prompt}
				h.seqs = append(h.seqs, s)
				if rapid.Bool().Draw(t, "admit now") {
					h.admit(t, s)
				}
			},
			"admit": func(t *rapid.T) { h.admit(t, h.pick(t, false)) },
			"append": func(t *rapid.T) {
				s := h.pick(t, true)
				if s.fresh > 0 {
					// Appending slides windows past the positions before
					// it, so those must have been computed (batched).
					t.Skip("fresh tokens not batched yet")
				}
				n := rapid.IntRange(1, 2*bs).Draw(t, "n")
				toks := make([]int32, n)
				for k := range toks {
					next++
					toks[k] = next
				}
				before := len(s.tokens)
				err := h.m.Append(s.id, toks...)
				if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					// A scheduler preempts or waits; what was fresh belonged
					// to an earlier step.
					s.fresh = 0
					return
				}
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				s.tokens = append(s.tokens, toks...)
				s.fresh += n
				h.write(t, s, before)
			},
			"preempt": func(t *rapid.T) {
				s := h.pick(t, true)
				if err := h.m.Preempt(s.id); err != nil {
					t.Fatalf("Preempt: %v", err)
				}
				s.run, s.fresh = false, 0
			},
			"free": func(t *rapid.T) {
				s := h.pick(t, rapid.Bool().Draw(t, "running"))
				if err := h.m.Free(s.id); err != nil {
					t.Fatalf("Free: %v", err)
				}
				for i, x := range h.seqs {
					if x == s {
						h.seqs = append(h.seqs[:i], h.seqs[i+1:]...)
						break
					}
				}
			},
			"batch": func(t *rapid.T) {
				var sched []paged.Scheduled
				for _, s := range h.seqs {
					if s.run && s.fresh > 0 {
						sched = append(sched, paged.Scheduled{ID: s.id, NewTokens: s.fresh})
						s.fresh = 0
					}
				}
				var b paged.Batch
				if err := h.m.BuildBatch(&b, sched); err != nil {
					t.Fatalf("BuildBatch: %v", err)
				}
				for g := 1; g < len(groups); g++ {
					for i, sc := range sched {
						table, _ := h.m.TableGroup(sc.ID, g)
						width := b.Stride
						if groups[g].Kind == paged.State {
							width = groups[g].Pages
						}
						row := b.GroupTables[g-1][i*width : i*width+len(table)]
						for k := range table {
							if int32(table[k]) != row[k] {
								t.Fatalf("group %d row of %v entry %d: batch %d, table %d", g, sc.ID, k, row[k], table[k])
							}
						}
					}
				}
			},
			"events": func(t *rapid.T) {
				for _, e := range h.m.DrainEvents(nil) {
					if e.Group < 0 || e.Group >= len(groups) {
						t.Fatalf("event of group %d", e.Group)
					}
				}
			},
			"": h.check,
		})
	})
}
