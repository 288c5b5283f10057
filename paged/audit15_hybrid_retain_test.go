package paged

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit15HybridRetentionEveryPolicy drives hybrid managers (windows,
// chunks and states, with and without a host tier) under every eviction
// policy with requests that make retention promises, pins with budgets
// and expiries, logical time, preemption and resumption, forks and the
// checkpoints the server saves, and checks the manager's invariants after
// every operation (with a host tier, swaps too): the combinations of the session-8 retention with the
// layouts of several kinds that no other test drives together.
func TestAudit15HybridRetentionEveryPolicy(t *testing.T) {
	layouts := [][]Group{
		nil, // one full-attention group
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 5}},
		{{Kind: FullAttention}, {Kind: State, Pages: 1}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 3}, {Kind: State, Pages: 2}},
		{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: 6}, {Kind: SlidingWindow, Window: 4}},
	}
	for _, name := range eviction.Names() {
		f, _ := eviction.ByName(name)
		for li, groups := range layouts {
			for _, host := range []int{0, 16} {
				t.Run(fmt.Sprintf("%s/%d/host%d", name, li, host), func(t *testing.T) {
					m, err := New(Config{BlockSize: 2, NumBlocks: 40, Groups: groups, Policy: f, HostBlocks: host, Events: 1 << 10})
					if err != nil {
						t.Fatal(err)
					}
					if err := m.SetPinBudget(8); err != nil {
						t.Fatal(err)
					}
					hybridRetentionWalk(t, m, uint64(li*100+host))
				})
			}
		}
	}
}

func hybridRetentionWalk(t *testing.T, m *Manager, seed uint64) {
	c := newConversation(seed, 3, true)
	rng := rand.New(rand.NewPCG(seed, 99))
	var pins []PinID
	var waiting, swapped []SeqID
	now := int64(0)
	for step := range 800 {
		var op string
		switch k := rng.IntN(12); {
		case k == 10 && len(c.running) > 0 && m.tier != nil:
			op = "swap out"
			i := rng.IntN(len(c.running))
			if err := m.SwapOut(c.running[i]); err == nil {
				swapped = append(swapped, c.running[i])
				c.running = slices.Delete(c.running, i, i+1)
			} else if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
				t.Fatal(err)
			}
		case k == 11 && len(swapped) > 0:
			op = "swap in"
			i := rng.IntN(len(swapped))
			if err := m.SwapIn(swapped[i]); err == nil {
				c.running = append(c.running, swapped[i])
				swapped = slices.Delete(swapped, i, i+1)
			} else if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
				t.Fatal(err)
			}
		case k < 4:
			op = "request"
			c.step(t, m)
		case k == 4 && len(c.prompts) > 0:
			op = "pin"
			until := int64(0)
			if rng.IntN(2) == 0 {
				until = now + 1 + int64(rng.IntN(6))
			}
			id, _, err := m.Pin(c.prompts[rng.IntN(len(c.prompts))], nil, until)
			switch {
			case err == nil:
				pins = append(pins, id)
			case !errors.Is(err, ErrPinBudget):
				t.Fatal(err)
			}
		case k == 5 && len(pins) > 0:
			op = "unpin"
			i := rng.IntN(len(pins))
			if err := m.Unpin(pins[i]); err != nil && !errors.Is(err, ErrUnknownPin) {
				t.Fatal(err)
			}
			pins = slices.Delete(pins, i, i+1)
		case k == 6:
			op = "advance"
			now += int64(rng.IntN(3))
			m.Advance(now)
		case k == 7 && len(c.running) > 0:
			op = "preempt"
			i := rng.IntN(len(c.running))
			if err := m.Preempt(c.running[i]); err != nil {
				t.Fatal(err)
			}
			waiting = append(waiting, c.running[i])
			c.running = slices.Delete(c.running, i, i+1)
		case k == 8 && len(waiting) > 0:
			op = "resume"
			i := rng.IntN(len(waiting))
			id := waiting[i]
			if _, err := m.Admit(id); err == nil {
				c.running = append(c.running, id)
				waiting = slices.Delete(waiting, i, i+1)
			} else if !errors.Is(err, ErrNoSpace) {
				// Too big to ever come back: dropped.
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
				waiting = slices.Delete(waiting, i, i+1)
			}
		case k == 9 && len(c.running) > 0:
			op = "fork"
			if id, err := m.Fork(c.running[rng.IntN(len(c.running))]); err == nil {
				c.running = append(c.running, id)
			} else if !errors.Is(err, ErrNoSpace) {
				t.Fatal(err)
			}
		default:
			op = "append"
			if len(c.running) > 0 {
				id := c.running[rng.IntN(len(c.running))]
				if err := m.Append(id, int32(rng.IntN(3))); err != nil && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
					t.Fatal(err)
				}
			}
		}
		m.TakeCheckpoints(nil)
		m.TakeCopies(nil)
		m.TakeSwaps(nil)
		m.DrainEvents(nil)
		if err := m.Check(); err != nil {
			t.Fatalf("step %d (%s): %v", step, op, err)
		}
	}
	for _, id := range append(append(c.running, waiting...), swapped...) {
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pins {
		if err := m.Unpin(p); err != nil && !errors.Is(err, ErrUnknownPin) {
			t.Fatal(err)
		}
	}
	if st := m.Stats(); st.UsedBlocks != 0 {
		t.Fatalf("%d blocks still used with nothing running or pinned", st.UsedBlocks)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
