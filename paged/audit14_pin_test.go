package paged

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

// TestAudit14PinHoldsHitInEveryGroup: on an adversarial layout of several
// kinds (drawAdversarialLayout), a prompt pinned after it was computed
// keeps the hit Pin reported in every group through any churn of other
// sequences in a small pool: a later admission of the prompt hits at
// least as many tokens, and its lookup's rows name cached blocks for every
// block each group needs (checkLookup, against oracleHit).
func TestAudit14PinHoldsHitInEveryGroup(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 3, 4}).Draw(t, "bs")
		groups := drawAdversarialLayout(t, bs)
		m, err := New(Config{BlockSize: bs, NumBlocks: rapid.IntRange(len(groups)*6, 64).Draw(t, "blocks"), Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPinBudget(m.cfg.NumBlocks / 2); err != nil {
			t.Fatal(err)
		}
		opts := &SeqOptions{AllowFullHit: true}
		prompt := make([]int32, rapid.IntRange(bs, 5*bs).Draw(t, "prompt"))
		for i := range prompt {
			prompt[i] = int32(i)
		}
		// Computed twice, so that a State group's checkpoint (taken at a
		// second admission's branch point) can exist.
		for range 2 {
			id, _, err := m.Create(prompt, opts)
			if err != nil {
				t.Skip("prompt does not fit")
			}
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		pin, pinned, err := m.Pin(prompt, opts, 0)
		if errors.Is(err, ErrPinBudget) {
			t.Skip("over the pin budget")
		} else if err != nil {
			t.Fatal(err)
		}
		next := int32(10000)
		var ids []SeqID
		for range rapid.IntRange(1, 40).Draw(t, "churn") {
			switch op := rapid.IntRange(0, 3).Draw(t, "op"); {
			case op == 0 || len(ids) == 0:
				p := make([]int32, rapid.IntRange(1, 6*bs).Draw(t, "other"))
				share := rapid.IntRange(0, len(prompt)).Draw(t, "share")
				for i := range p {
					if i < share {
						p[i] = prompt[i]
					} else {
						p[i], next = next, next+1
					}
				}
				if id, _, err := m.Create(p, nil); err == nil {
					ids = append(ids, id)
				} else if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
					t.Fatal(err)
				}
				m.TakeCheckpoints(nil)
			case op == 1:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "free")
				if err := m.Free(ids[i]); err != nil {
					t.Fatal(err)
				}
				ids = append(ids[:i], ids[i+1:]...)
			default:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "append")
				for range rapid.IntRange(1, 2*bs).Draw(t, "n") {
					next++
					if m.Append(ids[i], next) != nil {
						break
					}
				}
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		id, err := m.Add(prompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := m.seq(id)
		if hit := m.lookupGroups(s, len(s.hashes)); hit*bs < pinned {
			t.Fatalf("%v: pinned %d tokens, lookup hits %d blocks of %d", groups, pinned, hit, bs)
		}
		cached, err := m.Admit(id)
		if err != nil {
			t.Fatal(err)
		}
		if cached < pinned {
			t.Fatalf("%v: pinned %d tokens, admission hits %d", groups, pinned, cached)
		}
		if err := m.Unpin(pin); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
