package paged

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestGroupsAppendFastPathMatchesGeneral drives two hybrid managers with
// the same operations, one appending every token through Append (its
// one-token fast paths: the inline write, appendOne, startPair) and the
// other through appendTokens (growGroups, the general path), and requires
// the same outcome after every step: the error, every group's table of
// every sequence, the counters and the pool's occupancy. Pools are small
// so that appends run out of space and windows slide into eviction, in
// both free-queue modes.
func TestGroupsAppendFastPathMatchesGeneral(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4, 16}).Draw(t, "bs")
		groups := []Group{{Kind: FullAttention}}
		unified := rapid.Bool().Draw(t, "unified")
		layout := rapid.IntRange(0, 5).Draw(t, "layout")
		if unified {
			layout %= 4 // the vLLM-compatible mode takes one other kind
		}
		switch layout {
		case 0, 1: // the common pair
			groups = append(groups, Group{Kind: SlidingWindow, Window: rapid.IntRange(1, 6*bs).Draw(t, "window")})
		case 2:
			groups = append(groups, Group{Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")})
		case 3:
			w := rapid.IntRange(1, 6*bs).Draw(t, "window")
			groups = append(groups, Group{Kind: SlidingWindow, Window: w}, Group{Kind: FullAttention}, Group{Kind: SlidingWindow, Window: w})
		case 4: // one window beside a state (Hymba): the window's fast paths
			groups = append(groups, Group{Kind: State, Pages: 1}, Group{Kind: SlidingWindow, Window: rapid.IntRange(1, 6*bs).Draw(t, "window")})
		case 5: // two windows and a chunk: the general paths only
			w := rapid.IntRange(1, 6*bs).Draw(t, "window")
			groups = append(groups, Group{Kind: SlidingWindow, Window: w}, Group{Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")},
				Group{Kind: SlidingWindow, Window: w + rapid.IntRange(1, 4*bs).Draw(t, "window2")})
		}
		cfg := Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(6, 40).Draw(t, "blocks"),
			UnifiedFreeQueue: unified,
			Groups:           groups,
		}
		fast, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var ids []SeqID
		next := int32(0)
		for step := range rapid.IntRange(1, 120).Draw(t, "steps") {
			op := rapid.IntRange(0, 9).Draw(t, "op")
			var ef, es error
			switch {
			case op == 0 || len(ids) == 0:
				idf := addTwinPrompt(t, fast, slow, 5*bs, step)
				ids = append(ids, idf)
				_, ef = fast.Admit(idf)
				_, es = slow.Admit(idf)
			case op == 1:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "free")
				ef, es = fast.Free(ids[i]), slow.Free(ids[i])
				ids = append(ids[:i], ids[i+1:]...)
			case op == 2:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "admit")
				_, ef = fast.Admit(ids[i])
				_, es = slow.Admit(ids[i])
			default:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "append")
				for range rapid.IntRange(1, 2*bs).Draw(t, "tokens") {
					next++
					ef = fast.Append(ids[i], next)
					es = slow.appendTokens(ids[i], []int32{next}, false)
					if (ef == nil) != (es == nil) {
						break
					}
				}
			}
			if (ef == nil) != (es == nil) || errors.Is(ef, ErrNoSpace) != errors.Is(es, ErrNoSpace) {
				t.Fatalf("step %d op %d: fast path %v, general path %v", step, op, ef, es)
			}
			if fast.Stats() != slow.Stats() {
				t.Fatalf("step %d op %d: stats differ:\nfast    %+v\ngeneral %+v", step, op, fast.Stats(), slow.Stats())
			}
			for _, id := range ids {
				for g := range groups {
					tf, e1 := fast.TableGroup(id, g)
					ts, e2 := slow.TableGroup(id, g)
					if e1 != nil || e2 != nil || !slices.Equal(tf, ts) {
						t.Fatalf("step %d op %d: %v group %d: fast %v (%v), general %v (%v)", step, op, id, g, tf, e1, ts, e2)
					}
				}
			}
			if err := fast.Check(); err != nil {
				t.Fatalf("step %d: fast: %v", step, err)
			}
			if err := slow.Check(); err != nil {
				t.Fatalf("step %d: general: %v", step, err)
			}
		}
	})
}

// addTwinPrompt adds a prompt of 1 to maxLen tokens from one of three
// prefixes (so admissions hit) to both twin managers, which must give it
// the same ID, and returns it.
func addTwinPrompt(t *rapid.T, fast, slow *Manager, maxLen, step int) SeqID {
	n := rapid.IntRange(1, maxLen).Draw(t, "prompt")
	base := int32(rapid.IntRange(0, 2).Draw(t, "prefix")) * 1000
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = base + int32(i)
	}
	idf, e1 := fast.Add(prompt, nil)
	ids, e2 := slow.Add(prompt, nil)
	if e1 != nil || e2 != nil || idf != ids {
		t.Fatalf("step %d: Add: %v %v %v %v", step, idf, e1, ids, e2)
	}
	return idf
}
