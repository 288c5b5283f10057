package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests of session 22's third mutation round (docs/testing.md, "Mutation
// testing, third round (session 22)"): each kills a mutation of the step
// stamps, of fresh blocks or of voidShared that every earlier test let
// through (M175, the voided sharers left on their fast path, is
// equivalent: docs/testing.md).

// TestAudit42PinStopsAtFreshBlocksCommittedOneByOne: a manager that
// reports its commits (events, a host tier) commits a prompt block by
// block (blockPool.commit), not by the silent run (commitRun): those
// blocks are stamped fresh too, so a pin made in the admitting step holds
// none of them, and one made after the step holds the prompt (M164).
func TestAudit42PinStopsAtFreshBlocksCommittedOneByOne(t *testing.T) {
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	for _, tc := range []struct {
		name string
		cfg  paged.Config
	}{
		{"events", paged.Config{BlockSize: 2, NumBlocks: 40, Events: 64}},
		{"host tier", paged.Config{BlockSize: 2, NumBlocks: 40, HostBlocks: 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := paged.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SetPinBudget(20); err != nil {
				t.Fatal(err)
			}
			id, _ := pinStepCreate(t, m, prompt)
			pin, held, err := m.Pin(prompt, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if held != 0 {
				t.Errorf("a pin made in the step admitting the prompt holds %d tokens, want 0 (no kernel computed them)", held)
			}
			if err := m.Unpin(pin); err != nil {
				t.Fatal(err)
			}
			m.EndStep()
			if _, held, err := m.Pin(prompt, nil, 0); err != nil || held != 6 {
				t.Errorf("a pin made after the admitting step holds %d tokens (%v), want 6", held, err)
			}
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAudit42PinHoldsSwappedInPrefix: blocks a SwapIn brings back from the
// host tier, their device copies evicted meanwhile, are committed again
// (recommit) in the step being built, but hold KV a step computed (their
// SwapIn directive runs before the step's kernels): a pin made in that
// step holds them, as it holds onboarded blocks (M167).
func TestAudit42PinHoldsSwappedInPrefix(t *testing.T) {
	m := hostPinManager(t, 9)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	id, _ := pinStepCreate(t, m, prompt)
	m.EndStep()
	if err := m.SwapOut(id); err != nil {
		t.Fatal(err)
	}
	m.TakeSwaps(nil) // the step ran
	// Prompts that take every block, evicting the swapped-out prompt's
	// device copies.
	for i := range int32(3) {
		o, _ := pinStepCreate(t, m, []int32{100 + i, 1, 2, 3, 4, 5, 6, 7})
		m.TakeSwaps(nil)
		if err := m.Free(o); err != nil {
			t.Fatal(err)
		}
	}
	if _, held, err := m.Pin(prompt, nil, 0); err != nil || held != 0 {
		t.Fatalf("before the SwapIn a pin holds %d tokens (%v): the prompt's device copies were not evicted, the test checks nothing", held, err)
	}
	if err := m.SwapIn(id); err != nil {
		t.Fatal(err)
	}
	if _, held, err := m.Pin(prompt, nil, 0); err != nil || held != 6 {
		t.Errorf("a pin of a prefix swapped in during the step being built holds %d tokens (%v), want 6", held, err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAudit42UncomputeKeepsSharedComputedBlocks: Uncompute forgets a
// block another sequence shares only when the step being built stored it
// (fresh): a prefix a step computed, which a later admission hit, stays
// cached for that sharer and for later hits when the first sequence gives
// its KV back (M171).
func TestAudit42UncomputeKeepsSharedComputedBlocks(t *testing.T) {
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	for _, tc := range pinStepLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m := pinStepManager(t, tc.groups)
			p, _ := pinStepCreate(t, m, prompt)
			m.EndStep()
			c, cached := pinStepCreate(t, m, prompt)
			if cached != 6 {
				t.Fatalf("the second admission hits %d tokens, want 6: the test checks nothing", cached)
			}
			m.EndStep()
			if err := m.Uncompute(p, 0); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			q, cached := pinStepCreate(t, m, prompt)
			if cached != 6 {
				t.Errorf("after Uncompute of one of two sequences sharing a computed prefix, a new Create hits %d tokens, want 6", cached)
			}
			for _, id := range []paged.SeqID{p, c, q} {
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAudit42VoidKeepsSharersRetentionPins: a sequence sharing another's
// prefix stored in the step being built (its fork, or an admission that
// hit it) that then slid its window past it pins those window blocks for
// retention (a reference beside the running
// tables). When the first sequence gives its KV back (Uncompute from 0),
// voidShared forgets the shared fresh blocks that the running tables
// alone hold, not a pinned one: a retention pin holds cached content
// (Check). The sharer computes its tokens in the step, and a later
// prompt hits all of them (M173).
func TestAudit42VoidKeepsSharersRetentionPins(t *testing.T) {
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	for _, tc := range pinStepLayouts {
		for _, sharer := range []string{"fork", "hit"} {
			t.Run(tc.name+", "+sharer, func(t *testing.T) {
				m := pinStepManager(t, tc.groups)
				p, c := shareStep(t, m, prompt, sharer)
				// Two tokens: a window of 3 slides past the prompt's
				// blocks, which the sharer pins.
				for _, tok := range []int32{8, 9} {
					if err := m.Append(c, tok); err != nil {
						t.Fatal(err)
					}
				}
				if err := m.Uncompute(p, 0); err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				if err := m.Free(p); err != nil {
					t.Fatal(err)
				}
				for _, tok := range []int32{10, 11, 12} {
					if err := m.Append(c, tok); err != nil {
						t.Fatal(err)
					}
				}
				m.EndStep()
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				if err := m.Free(c); err != nil {
					t.Fatal(err)
				}
				want := append(append([]int32(nil), prompt...), 8, 9, 10, 11, 12, 13)
				_, cached := pinStepCreate(t, m, want)
				if cached != 12 {
					t.Errorf("the sharer computed 12 tokens in the step: a new Create hits %d tokens, want 12", cached)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
