package paged

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestAudit17AddOwnedStaysInsideTheHint: a server that decodes its
// requests' token IDs into one arena, each prompt in its own region sized
// for the request's MaxTokens, hands each region over. The manager may
// write up to the hint of each prompt and no further: a sequence that
// outgrows its hint (a hint limits nothing), or a later sequence reusing
// a freed slot's buffer, must not write into the next region, which holds
// another live sequence's tokens.
func TestAudit17AddOwnedStaysInsideTheHint(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64})
	mustOK(t, err)
	arena := make([]int32, 0, 64)
	a := append(arena[0:0], 1, 2, 3, 4, 5, 6, 7, 8) // region [0, 16)
	b := append(arena[16:16], 11, 12, 13, 14, 15, 16, 17, 18)
	wantB := slices.Clone(b)
	ida, err := m.AddOwned(a, &SeqOptions{MaxTokens: 16})
	mustOK(t, err)
	idb, err := m.AddOwned(b, &SeqOptions{MaxTokens: 16})
	mustOK(t, err)
	for _, id := range []SeqID{ida, idb} {
		_, err := m.Admit(id)
		mustOK(t, err)
	}
	// a outgrows its hint by four tokens.
	for tok := range int32(12) {
		mustOK(t, m.Append(ida, 100+tok))
	}
	if got, _ := m.Tokens(idb); !slices.Equal(got, wantB) {
		t.Fatalf("appending to one sequence past its hint rewrote another's tokens: %v, want %v", got, wantB)
	}
	// a's slot, freed, serves a longer prompt next.
	mustOK(t, m.Free(ida))
	long := make([]int32, 40)
	for i := range long {
		long[i] = int32(500 + i)
	}
	idc, err := m.Add(long, &SeqOptions{MaxTokens: 40})
	mustOK(t, err)
	if got, _ := m.Tokens(idb); !slices.Equal(got, wantB) {
		t.Fatalf("a later sequence in a freed slot rewrote a live one's tokens: %v, want %v", got, wantB)
	}
	if got, _ := m.Tokens(idc); !slices.Equal(got, long) {
		t.Fatalf("tokens %v, want %v", got, long)
	}
	mustOK(t, m.Check())
}

// TestAudit17AddOwnedWithoutHint: without a MaxTokens hint the manager
// takes the prompt's elements and nothing past them: the rest of the
// array's capacity stays the caller's.
func TestAudit17AddOwnedWithoutHint(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64})
	mustOK(t, err)
	arena := make([]int32, 0, 32)
	a := append(arena[0:0], 1, 2, 3, 4, 5)
	rest := arena[5:8]
	copy(rest, []int32{7, 7, 7})
	id, err := m.AddOwned(a, nil)
	mustOK(t, err)
	_, err = m.Admit(id)
	mustOK(t, err)
	mustOK(t, m.Append(id, 9, 9, 9))
	if !slices.Equal(rest, []int32{7, 7, 7}) {
		t.Fatalf("the manager wrote past a hintless prompt into the caller's memory: %v", rest)
	}
	if got, _ := m.Tokens(id); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 9, 9, 9}) {
		t.Fatalf("tokens %v", got)
	}
}

// TestAudit17AddOwnedForkAndReuse: a fork of a sequence that keeps the
// caller's array gets a copy (the two then write apart), and a slot that
// served such a sequence serves the next one without mixing their tokens.
func TestAudit17AddOwnedForkAndReuse(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64})
	mustOK(t, err)
	p := append(make([]int32, 0, 12), 1, 2, 3, 4, 5, 6)
	id, err := m.AddOwned(p, &SeqOptions{MaxTokens: 12})
	mustOK(t, err)
	_, err = m.Admit(id)
	mustOK(t, err)
	child, err := m.Fork(id)
	mustOK(t, err)
	mustOK(t, m.Append(id, 7, 7))
	mustOK(t, m.Append(child, 8, 8, 8))
	if got, _ := m.Tokens(id); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 6, 7, 7}) {
		t.Fatalf("parent %v", got)
	}
	if got, _ := m.Tokens(child); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 6, 8, 8, 8}) {
		t.Fatalf("child %v", got)
	}
	mustOK(t, m.Free(id))
	q := append(make([]int32, 0, 12), 9, 9, 9, 9, 9)
	id2, err := m.AddOwned(q, &SeqOptions{MaxTokens: 12})
	mustOK(t, err)
	if got, _ := m.Tokens(id2); !slices.Equal(got, []int32{9, 9, 9, 9, 9}) {
		t.Fatalf("reused slot %v", got)
	}
	if got, _ := m.Tokens(child); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 6, 8, 8, 8}) {
		t.Fatalf("child after the parent's slot was reused %v", got)
	}
	checkOwnHashes(t, m, 0)
	mustOK(t, m.Check())
}

// TestAudit17AddOwnedArena: a caller hands over regions of one arena,
// each sized for its request's hint and followed by memory it keeps
// using (a canary), while sequences are added by copy, appended to past
// their hints, forked and freed: every live sequence keeps its own tokens
// and hashes, and no canary changes.
func TestAudit17AddOwnedArena(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 4, 16}).Draw(rt, "bs")
		m, err := New(Config{BlockSize: bs, NumBlocks: 256})
		if err != nil {
			rt.Fatal(err)
		}
		arena := make([]int32, 1<<14)
		used := 0
		type canary struct{ at, n int }
		var canaries []canary
		type live struct {
			id     SeqID
			tokens []int32
		}
		var seqs []live
		next := int32(0)
		tok := func() int32 { next++; return next % 7 }
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			switch op := rapid.IntRange(0, 5).Draw(rt, "op"); {
			case op == 0 || len(seqs) == 0:
				n := rapid.IntRange(1, 3*bs).Draw(rt, "n")
				hint := n + rapid.IntRange(0, 2*bs).Draw(rt, "extra")
				c := rapid.IntRange(1, 8).Draw(rt, "canary")
				if used+hint+c > len(arena) {
					continue
				}
				p := arena[used:used]
				for range n {
					p = append(p, tok())
				}
				for i := range c {
					arena[used+hint+i] = -1 - int32(i)
				}
				model := slices.Clone(p)
				var id SeqID
				if rapid.Bool().Draw(rt, "owned") {
					id, err = m.AddOwned(p, &SeqOptions{MaxTokens: hint})
				} else {
					id, err = m.Add(p, &SeqOptions{MaxTokens: hint})
				}
				if err != nil {
					rt.Fatal(err)
				}
				canaries = append(canaries, canary{used + hint, c})
				used += hint + c
				if _, err := m.Admit(id); err != nil {
					rt.Fatal(err)
				}
				seqs = append(seqs, live{id, model})
			default:
				k := rapid.IntRange(0, len(seqs)-1).Draw(rt, "seq")
				s := &seqs[k]
				switch op {
				case 1:
					if err := m.Free(s.id); err != nil {
						rt.Fatal(err)
					}
					seqs = slices.Delete(seqs, k, k+1)
				case 2:
					c, err := m.Fork(s.id)
					if err != nil {
						rt.Fatal(err)
					}
					seqs = append(seqs, live{c, slices.Clone(s.tokens)})
				default:
					for range rapid.IntRange(1, 2*bs).Draw(rt, "appends") {
						x := tok()
						if err := m.Append(s.id, x); err != nil {
							rt.Fatal(err)
						}
						s.tokens = append(s.tokens, x)
					}
				}
			}
			for _, s := range seqs {
				if got, _ := m.Tokens(s.id); !slices.Equal(got, s.tokens) {
					rt.Fatalf("%v holds %v, want %v", s.id, got, s.tokens)
				}
			}
			for _, c := range canaries {
				for i := range c.n {
					if arena[c.at+i] != -1-int32(i) {
						rt.Fatalf("the manager wrote %d into the caller's memory at %d", arena[c.at+i], c.at+i)
					}
				}
			}
		}
		for i := range m.seqs {
			s := &m.seqs[i]
			if s.state == seqUnused {
				continue
			}
			if want := m.chain.extend(nil, s.tokens, s.keys(), 0, len(s.hashes)); !slices.Equal(s.hashes, want) {
				rt.Fatalf("slot %d: hashes are not its tokens'", i)
			}
		}
		if err := m.Check(); err != nil {
			rt.Fatal(err)
		}
	})
}

// TestAudit17TokensViewAppend: a multi-turn server builds the next turn's
// prompt by appending to the previous turn's tokens (Tokens). The view
// must not lend the sequence's spare capacity: the append must copy, so
// that the sequence's next token neither rewrites the new prompt nor,
// handed over with AddOwned, another live sequence's tokens under its
// hashes.
func TestAudit17TokensViewAppend(t *testing.T) {
	for _, owned := range []bool{false, true} {
		m, err := New(Config{BlockSize: 4, NumBlocks: 64})
		mustOK(t, err)
		id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, &SeqOptions{MaxTokens: 32})
		mustOK(t, err)
		toks, err := m.Tokens(id)
		mustOK(t, err)
		next := append(toks, 50, 51)
		want := []int32{1, 2, 3, 4, 5, 6, 50, 51}
		var id2 SeqID
		if owned {
			id2, err = m.AddOwned(next, nil)
			mustOK(t, err)
		}
		mustOK(t, m.Append(id, 9, 9))
		if !owned {
			id2, err = m.Add(next, nil)
			mustOK(t, err)
		}
		if got, _ := m.Tokens(id2); !slices.Equal(got, want) {
			t.Fatalf("owned %v: the follow-up prompt became %v, want %v", owned, got, want)
		}
		if got, _ := m.Tokens(id); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 6, 9, 9}) {
			t.Fatalf("owned %v: the first turn became %v", owned, got)
		}
		checkOwnHashes(t, m, 0)
	}
}

// TestTableViewsAppendCopies: Table and TableGroup hand out views whose
// capacity is their length, like Tokens, so a caller extending a copy of
// a block table (appending to the view) never writes where the manager's
// next block goes, and the manager's next block never rewrites the
// caller's slice. Before, the views carried the table's spare capacity.
func TestTableViewsAppendCopies(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 64}}})
	mustOK(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, &SeqOptions{MaxTokens: 32})
	mustOK(t, err)
	for g := range 2 {
		view, err := m.TableGroup(id, g)
		mustOK(t, err)
		if g == 0 {
			view, err = m.Table(id)
			mustOK(t, err)
		}
		mine := append(view, 999)
		mustOK(t, m.Append(id, 7, 8, 9))
		if mine[len(mine)-1] != 999 {
			t.Fatalf("group %d: the manager's next block rewrote the caller's appended entry: %v", g, mine)
		}
		got, err := m.TableGroup(id, g)
		mustOK(t, err)
		if slices.Contains(got, 999) {
			t.Fatalf("group %d: the caller's append reached the manager's table: %v", g, got)
		}
	}
	mustOK(t, m.Check())
}
