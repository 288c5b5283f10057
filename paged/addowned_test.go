package paged

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// ownedPrompt makes prompt i of a family that shares prefixes (the first
// 2*bs tokens are one of four heads), with capacity c.
func ownedPrompt(r *rand.Rand, i, n, c int) []int32 {
	p := make([]int32, 0, c)
	for j := range n {
		if j < 32 {
			p = append(p, int32(i%4*100+j))
		} else {
			p = append(p, int32(r.IntN(1000)))
		}
	}
	return p
}

// sameArray reports whether a and b start at the same element.
func sameArray(a, b []int32) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// TestAddOwnedMatchesAdd drives two managers with the same calls, one
// adding each prompt with Add and the other with AddOwned (capacities at,
// above and below the MaxTokens hint, and without a hint): every answer,
// table, token list and statistic must agree, and AddOwned must keep the
// caller's array exactly when its capacity holds the hint.
func TestAddOwnedMatchesAdd(t *testing.T) {
	for _, groups := range [][]Group{nil, {{Kind: FullAttention}, {Kind: SlidingWindow, Window: 32}}} {
		cfg := Config{BlockSize: 16, NumBlocks: 64, UnifiedFreeQueue: true, Groups: groups}
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := New(cfg)
		r := rand.New(rand.NewPCG(1, 2))
		var ida, idb []SeqID
		var kept int
		for i := range 400 {
			n := 1 + r.IntN(120)
			gen := 1 + r.IntN(40)
			opts := &SeqOptions{MaxTokens: n + gen}
			c := n + gen
			switch i % 4 {
			case 1:
				c += 50 // room to spare
			case 2:
				c = n + r.IntN(gen) // short of the hint: copied
			case 3:
				opts = nil // no hint: kept
				c = n
			}
			prompt := ownedPrompt(r, i, n, c)
			orig := slices.Clone(prompt)
			x, errA := a.Add(orig, opts)
			y, errB := b.AddOwned(prompt, opts)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("request %d: Add %v, AddOwned %v", i, errA, errB)
			}
			if errA != nil {
				continue
			}
			tok, _ := b.Tokens(y)
			want := cap(prompt) >= n+gen || opts == nil
			if sameArray(tok, prompt) != want {
				t.Fatalf("request %d: cap %d, hint %v: kept the caller's array %v, want %v", i, cap(prompt), opts, sameArray(tok, prompt), want)
			}
			if want {
				kept++
			}
			ida, idb = append(ida, x), append(idb, y)
			// Admit the oldest waiting ones, decode the running ones a
			// few tokens, free some.
			for k := 0; k < len(ida); k++ {
				runA, _ := a.Running(ida[k])
				if !runA {
					ca, ea := a.Admit(ida[k])
					cb, eb := b.Admit(idb[k])
					if ca != cb || !errors.Is(eb, unwrapSentinel(ea)) {
						t.Fatalf("request %d, seq %d: Admit %d %v against %d %v", i, k, ca, ea, cb, eb)
					}
					continue
				}
				tok := int32(r.IntN(1000))
				ea, eb := a.Append(ida[k], tok), b.Append(idb[k], tok)
				if !errors.Is(eb, unwrapSentinel(ea)) {
					t.Fatalf("request %d, seq %d: Append %v against %v", i, k, ea, eb)
				}
				if ea != nil || r.IntN(8) == 0 {
					if err := a.Free(ida[k]); err != nil {
						t.Fatal(err)
					}
					if err := b.Free(idb[k]); err != nil {
						t.Fatal(err)
					}
					ida = slices.Delete(ida, k, k+1)
					idb = slices.Delete(idb, k, k+1)
					k--
				}
			}
			for k := range ida {
				ta, _ := a.Tokens(ida[k])
				tb, _ := b.Tokens(idb[k])
				if !slices.Equal(ta, tb) {
					t.Fatalf("request %d, seq %d: tokens differ", i, k)
				}
				for g := range max(1, len(groups)) {
					xa, _ := a.TableGroup(ida[k], g)
					xb, _ := b.TableGroup(idb[k], g)
					if !slices.Equal(xa, xb) {
						t.Fatalf("request %d, seq %d, group %d: tables %v and %v", i, k, g, xa, xb)
					}
				}
			}
			if sa, sb := a.Stats(), b.Stats(); sa != sb {
				t.Fatalf("request %d: statistics differ:\n%+v\n%+v", i, sa, sb)
			}
		}
		if kept < 100 {
			t.Fatalf("only %d prompts kept", kept)
		}
		if err := b.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

// unwrapSentinel maps an error to the sentinel errors.Is should find in
// its twin's (nil to nil).
func unwrapSentinel(err error) error {
	for _, s := range []error{ErrNoSpace, ErrNever, ErrInvalid, ErrSequenceState, ErrUnknownSequence} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// TestAddOwnedKeepsTheArrayThroughDecode: the tokens appended up to the
// hint land in the caller's array, which is never reallocated.
func TestAddOwnedKeepsTheArrayThroughDecode(t *testing.T) {
	m, _ := New(Config{BlockSize: 4, NumBlocks: 32})
	prompt := make([]int32, 0, 20)
	prompt = append(prompt, 1, 2, 3, 4, 5, 6)
	id, err := m.AddOwned(prompt, &SeqOptions{MaxTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admit(id); err != nil {
		t.Fatal(err)
	}
	for tok := range int32(14) {
		if err := m.Append(id, 100+tok); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := m.Tokens(id)
	if len(got) != 20 || !sameArray(got, prompt) {
		t.Fatalf("tokens %v (len %d) moved off the caller's array", got, len(got))
	}
	if p := prompt[:20]; p[6] != 100 || p[19] != 113 {
		t.Fatalf("appended tokens are not in the array: %v", p)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAddOwnedBadInput: each refused AddOwned returns the sentinel, keeps
// nothing (no sequence, the same statistics) and leaves the prompt as it
// was.
func TestAddOwnedBadInput(t *testing.T) {
	m, _ := New(Config{BlockSize: 4, NumBlocks: 8, MaxWaiting: 1, MaxModelLen: 16})
	if _, err := m.AddOwned([]int32{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	full, _ := New(Config{BlockSize: 4, NumBlocks: 8, MaxModelLen: 16})
	cases := []struct {
		name   string
		m      *Manager
		prompt []int32
		opts   *SeqOptions
		want   error
	}{
		{"empty", full, make([]int32, 0, 8), nil, ErrInvalid},
		{"negative token", full, []int32{1, -2, 3}, nil, ErrInvalid},
		{"negative hint", full, []int32{1, 2}, &SeqOptions{MaxTokens: -1}, ErrInvalid},
		{"negative LoRA", full, []int32{1, 2}, &SeqOptions{LoRA: -1}, ErrInvalid},
		{"too long", full, make([]int32, 17, 40), nil, ErrNever},
		{"waiting set full", m, []int32{4, 5}, nil, ErrNoSpace},
	}
	for _, c := range cases {
		before := c.m.Stats()
		orig := slices.Clone(c.prompt)
		id, err := c.m.AddOwned(c.prompt, c.opts)
		if !errors.Is(err, c.want) || id != 0 {
			t.Errorf("%s: got %v, %v; want %v", c.name, id, err, c.want)
		}
		if after := c.m.Stats(); after != before {
			t.Errorf("%s: statistics changed:\n%+v\n%+v", c.name, before, after)
		}
		if !slices.Equal(orig, c.prompt) {
			t.Errorf("%s: prompt changed to %v", c.name, c.prompt)
		}
		if err := c.m.Check(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestAddOwnedNoAllocs: a server that hands each prompt over allocates
// nothing in the manager once its slots have their buffers (the hash
// buffer is the slot's; the token buffer is the caller's).
func TestAddOwnedNoAllocs(t *testing.T) {
	m, _ := New(Config{BlockSize: 16, NumBlocks: 256})
	const runs = 200
	prompts := make([][]int32, runs+2)
	for i := range prompts {
		prompts[i] = make([]int32, 100, 120)
		for j := range prompts[i] {
			prompts[i][j] = int32(i*7 + j)
		}
	}
	opts := &SeqOptions{MaxTokens: 120}
	next := 0
	cycle := func() {
		id, err := m.AddOwned(prompts[next], opts)
		next++
		must(t, err)
		_, err = m.Admit(id)
		must(t, err)
		must(t, m.Free(id))
	}
	cycle() // the slot gets its buffers
	if allocs := testing.AllocsPerRun(runs, cycle); allocs != 0 {
		t.Fatalf("AddOwned, Admit, Free: %v allocations a request", allocs)
	}
}
