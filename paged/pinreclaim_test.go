package paged

import (
	"errors"
	"testing"
)

// TestPinReclaimChunkedShareAlone: the audit's shape. Three windows of 8
// tokens beside full attention, 3 tokens a block, 17 usable blocks; an
// earlier request computed a 4-token prompt whose first block starts a
// 13-token prompt, which therefore branches after one block and would pin
// that block in each window once they leave it. Computed 2 tokens a step
// alone in the pool, it fits without those pins and not with them: before
// pins were a soft cost AdmitChunk refused it (ErrNever: chunkNever
// counted them) and a scheduler aborted it, though a fresh pool serves
// it. Now it is admitted and runs to the end alone, its pins released
// when its own chunks need the room (RetentionPinsReleased), Check
// passing after every step.
func TestPinReclaimChunkedShareAlone(t *testing.T) {
	cfg := Config{BlockSize: 3, NumBlocks: 18, Groups: []Group{
		{Kind: FullAttention},
		{Kind: SlidingWindow, Window: 8}, {Kind: SlidingWindow, Window: 8}, {Kind: SlidingWindow, Window: 8},
	}}
	prompt := make([]int32, 13)
	for i := range prompt {
		prompt[i] = int32(100 + i)
	}
	run := func(history bool) (released uint64, err error) {
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if history {
			a, _, err := m.Create(append(append([]int32{}, prompt[:3]...), 7), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Free(a); err != nil {
				t.Fatal(err)
			}
		}
		id, err := m.Add(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, err := m.AdmitChunk(id, 2, nil)
		if err != nil {
			return 0, err
		}
		for step := 0; len(rest) > 0 || step < 6; step++ {
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			tokens := []int32{1}
			if len(rest) > 0 {
				tokens = rest[:min(2, len(rest))]
				rest = rest[len(tokens):]
			}
			if err := m.Append(id, tokens...); err != nil {
				return 0, err
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		st := m.Stats()
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		if got := m.Stats(); got.RetentionPins != 0 || got.UsedBlocks != 0 {
			t.Fatalf("after Free: %+v", got)
		}
		return st.RetentionPinsReleased, nil
	}
	if _, err := run(false); err != nil {
		t.Fatalf("a fresh pool: %v", err)
	}
	released, err := run(true)
	if errors.Is(err, ErrNever) || errors.Is(err, ErrNoSpace) {
		t.Fatalf("sharing a block of prefix: %v, which a fresh pool serves", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if released == 0 {
		t.Fatal("no retention pin released: the test no longer has the audit's shape")
	}
}
