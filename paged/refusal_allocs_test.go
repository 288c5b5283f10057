package paged_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestRefusalAllocatesNothing: a scheduler under memory pressure is
// refused thousands of times a second; the ErrNoSpace of Admit, Append,
// AppendSpeculative and Fork is the manager's own value, so a refusal
// allocates nothing (it allocated its 32-byte error), and still says
// what was refused (its message is read before the next refusal).
func TestRefusalAllocatesNothing(t *testing.T) {
	for _, groups := range [][]paged.Group{nil, {{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 7 + 2*len(groups), Watermark: 0.2, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := m.Create(seqOf(1, 7), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Create(seqOf(50, 8), nil); err != nil {
			t.Fatal(err)
		}
		b, err := m.Add(seqOf(100, 12), nil)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if err := m.Append(a, 5); err != nil {
				break
			}
		}
		more := seqOf(9, 4)
		calls := map[string]func() error{
			"Admit":              func() error { _, err := m.Admit(b); return err },
			"Append":             func() error { return m.Append(a, 5) },
			"Append many":        func() error { return m.Append(a, more...) },
			"AppendSpeculative":  func() error { return m.AppendSpeculative(a, 5) },
			"Fork (State group)": func() error { _, err := m.Fork(a); return err },
		}
		for name, call := range calls {
			if name == "Fork (State group)" && groups == nil {
				continue // a fork takes no block without a State group
			}
			err := call()
			if !errors.Is(err, paged.ErrNoSpace) {
				t.Fatalf("%d groups, %s: %v, want ErrNoSpace", len(groups), name, err)
			}
			msg := err.Error()
			if n := testing.AllocsPerRun(100, func() { _ = call() }); n != 0 {
				t.Errorf("%d groups, refused %s: %v allocations, want 0", len(groups), name, n)
			}
			if again := call(); again.Error() != msg || !errors.Is(again, paged.ErrNoSpace) {
				t.Errorf("%d groups, %s: %q then %q", len(groups), name, msg, again)
			}
			if w := fmt.Errorf("wrapped: %w", call()); !errors.Is(w, paged.ErrNoSpace) || w.Error() != "wrapped: "+msg {
				t.Errorf("%d groups, %s: wrapped %q", len(groups), name, w)
			}
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
