package paged

import (
	"errors"
	"testing"
)

// TestHandlesWithTheTopIndex: a handle whose index half is 2^32-1 (a
// SeqID of low word 0xffffffff, a PinID of low word 0) names no slot and
// is refused. The checks converted the uint32 index to int, which is
// -1 where int is 32 bits: the check passed and the slice index panicked
// (Unpin, found by TestRefusedCallsChangeNothing under GOARCH=arm).
func TestHandlesWithTheTopIndex(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 16})
	if err != nil {
		t.Fatal(err)
	}
	live, err := m.Add([]int32{1, 2, 3, 4, 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admit(live); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(4); err != nil {
		t.Fatal(err)
	}
	pid, _, err := m.Pin([]int32{1, 2, 3, 4}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []SeqID{SeqID(0xffffffff), SeqID(1<<32 | 0xffffffff), SeqID(uint64(live)>>32<<32 | 0xffffffff)} {
		for name, call := range map[string]func() error{
			"Len":       func() error { _, err := m.Len(id); return err },
			"Free":      func() error { return m.Free(id) },
			"Append":    func() error { return m.Append(id, 7) },
			"AppendTwo": func() error { return m.Append(id, 7, 8) },
			"BuildBatch": func() error {
				var b Batch
				return m.BuildBatch(&b, []Scheduled{{ID: id, NewTokens: 1}})
			},
			"AppendStep": func() error {
				_, err := m.AppendStep([]Scheduled{{ID: id, NewTokens: 1}}, []int32{7})
				return err
			},
		} {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s(%v) panicked: %v", name, id, r)
					}
				}()
				err = call()
			}()
			if err == nil {
				t.Errorf("%s(%v) succeeded", name, id)
			}
		}
	}
	for _, id := range []PinID{PinID(1 << 32), PinID(uint64(pid) >> 32 << 32)} {
		for name, call := range map[string]func() error{
			"Unpin":     func() error { return m.Unpin(id) },
			"ExtendPin": func() error { return m.ExtendPin(id, 5) },
		} {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s(%#x) panicked: %v", name, uint64(id), r)
					}
				}()
				err = call()
			}()
			if !errors.Is(err, ErrUnknownPin) {
				t.Errorf("%s(%#x) = %v, want ErrUnknownPin", name, uint64(id), err)
			}
		}
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
