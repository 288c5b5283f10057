package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13SlotRefusesReleasedPositions checks Slot against the table of
// a sliding-window sequence: every position of a released (null) entry is
// refused with ErrInvalid, up to the last one, and every other position
// answers its block's slot. (Mutation M55 answered the last released
// position with a slot of the null block.)
func TestAudit13SlotRefusesReleasedPositions(t *testing.T) {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 16})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 10)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	id, _, err := m.Create(prompt, &paged.SeqOptions{Window: 5})
	if err != nil {
		t.Fatal(err)
	}
	released := 0
	for tok := range int32(12) {
		if err := m.Append(id, 100+tok); err != nil {
			t.Fatal(err)
		}
		tbl, _ := m.Table(id)
		n, _ := m.Len(id)
		released = 0
		for released < len(tbl) && tbl[released] == 0 {
			released++
		}
		for pos := range n {
			slot, err := m.Slot(id, pos)
			if pos < released*bs {
				if !errors.Is(err, paged.ErrInvalid) {
					t.Fatalf("%d tokens, %d released blocks: Slot(%d) = %d, %v; want ErrInvalid", n, released, pos, slot, err)
				}
				continue
			}
			if want := int64(tbl[pos/bs])*bs + int64(pos%bs); err != nil || slot != want {
				t.Fatalf("%d tokens: Slot(%d) = %d, %v; want %d", n, pos, slot, err, want)
			}
		}
	}
	if released == 0 {
		t.Fatal("the window released no block; the test checks nothing")
	}
}
