package paged

import "testing"

// TestAudit14RunningSequencePinsEveryWindow: with two windows of
// different sizes (and a State group beside them), a running sequence
// that shares a computed prompt keeps, once both windows have slid past
// the prompt's end, the blocks each window needs for a hit there, by its
// own window; so a pool flooded by other sequences still gives a third
// request on the prompt its whole hit. A rule that keeps one window's
// need for both (the smaller) leaves the larger window's blocks to be
// evicted, and the hit falls to 0.
func TestAudit14RunningSequencePinsEveryWindow(t *testing.T) {
	const bs = 4
	for _, groups := range [][]Group{
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 3}, {Kind: SlidingWindow, Window: 13}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 13}, {Kind: SlidingWindow, Window: 3}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 13}, {Kind: State, Pages: 1}, {Kind: SlidingWindow, Window: 3}},
	} {
		m, err := New(Config{BlockSize: bs, NumBlocks: 64, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		prompt := make([]int32, 8*bs)
		for i := range prompt {
			prompt[i] = int32(i)
		}
		a, _, err := m.Create(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(a); err != nil {
			t.Fatal(err)
		}
		// x branches off the prompt's end: a State group takes its
		// checkpoint there.
		x, _, err := m.Create(append(append([]int32{}, prompt...), 700, 701, 702, 703, 704), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.TakeCheckpoints(nil)
		m.TakeCopies(nil)
		if err := m.Free(x); err != nil {
			t.Fatal(err)
		}
		// b shares the prompt (its branch point: 8 blocks), then runs
		// on until both windows left the prompt behind.
		b, cached, err := m.Create(append(append([]int32{}, prompt...), 500), nil)
		if err != nil || cached != len(prompt) {
			t.Fatalf("%v: b hits %d of %d: %v", groups, cached, len(prompt), err)
		}
		for i := range 6 * bs {
			if err := m.Append(b, int32(600+i)); err != nil {
				t.Fatal(err)
			}
		}
		// Flood the pool: every evictable block goes.
		var others []SeqID
		for k := 0; ; k++ {
			p := make([]int32, 2*bs)
			for i := range p {
				p[i] = int32(10000 + 100*k + i)
			}
			id, _, err := m.Create(p, nil)
			if err != nil {
				break
			}
			others = append(others, id)
		}
		for _, id := range others {
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		c, err := m.Add(append(append([]int32{}, prompt...), 900), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Admit(c)
		if err != nil {
			t.Fatal(err)
		}
		if got != len(prompt) {
			t.Errorf("%v: a request on the prompt b runs on hits %d tokens, want %d", groups, got, len(prompt))
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
