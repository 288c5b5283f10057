package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// pinStepLayouts are the managers audit36's pin tests run on: one group,
// and hybrid ones whose pins hold window, chunk and shared blocks too.
var pinStepLayouts = []struct {
	name   string
	groups []paged.Group
}{
	{"one group", nil},
	{"window group", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}}},
	{"chunked-local group", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 4}}},
	{"window and shared groups", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}, {Kind: paged.Shared, Target: 1}}},
}

func pinStepManager(t *testing.T, groups []paged.Group) *paged.Manager {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 40, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(20); err != nil {
		t.Fatal(err)
	}
	return m
}

// pinStepCreate creates a sequence for prompt and returns it with its
// cached tokens.
func pinStepCreate(t *testing.T, m *paged.Manager, prompt []int32) (paged.SeqID, int) {
	t.Helper()
	id, cached, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id, cached
}

// dropStep drops ids from the step being built (Uncompute from 0 of
// each, then Free of each), then creates a sequence for prompt and
// returns it with its cached tokens.
func dropStep(t *testing.T, m *paged.Manager, prompt []int32, ids ...paged.SeqID) (paged.SeqID, int) {
	t.Helper()
	for _, id := range ids {
		if err := m.Uncompute(id, 0); err != nil {
			t.Fatal(err)
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
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	return pinStepCreate(t, m, prompt)
}

// TestPinDuringAdmittingStep: a pin made while the step that admitted
// its prompt is being built holds nothing (that KV is not computed yet),
// so a step that then drops the sequence (Uncompute, Free) leaves no
// uncomputed block in the cache for a later hit. Before, the pin held 6
// tokens and kept them cached: a new Create of the prompt hit 6 tokens of
// KV no step computed (audit33's open finding (a)). After the step's
// directives are taken, a pin holds the prefix.
func TestPinDuringAdmittingStep(t *testing.T) {
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	for _, tc := range pinStepLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m := pinStepManager(t, tc.groups)
			id, _, err := m.Create(prompt, nil)
			if err != nil {
				t.Fatal(err)
			}
			pin, held, err := m.Pin(prompt, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if held != 0 {
				t.Errorf("a pin made in the step admitting the prompt holds %d tokens, want 0 (no kernel computed them)", held)
			}
			id, cached := dropStep(t, m, prompt, id)
			if cached != 0 {
				t.Errorf("after the admitting step dropped the prompt (Uncompute 0, Free) beside a pin, a new Create hits %d tokens of uncomputed KV", cached)
			}
			if err := m.Unpin(pin); err != nil {
				t.Fatal(err)
			}
			// This admission's step runs: the prompt is computed, and a
			// pin holds it, whichever call ended the step.
			for i, end := range []func(){m.EndStep, func() { m.TakeSwaps(nil) }, func() { m.TakeCopies(nil) }} {
				end()
				pin, held, err := m.Pin(prompt, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				if held != 6 {
					t.Errorf("end %d: a pin made after the admitting step ran holds %d tokens, want 6", i, held)
				}
				if err := m.Unpin(pin); err != nil {
					t.Fatal(err)
				}
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

// TestPinStopsAtStepsBlocks: a prompt whose first blocks a step computed
// and whose next ones the step being built stores (it extends a cached
// prefix) pins the computed prefix only; after the step, all of it.
func TestPinStopsAtStepsBlocks(t *testing.T) {
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	for _, tc := range pinStepLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m := pinStepManager(t, tc.groups)
			id, _, err := m.Create(prompt[:5], nil)
			if err != nil {
				t.Fatal(err)
			}
			m.EndStep()
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
			_, before, err := m.Pin(prompt, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if before == 0 {
				t.Fatal("the computed prefix pins nothing: the test checks nothing")
			}
			id, cached := pinStepCreate(t, m, prompt)
			if cached != 4 {
				t.Fatalf("the prompt hits %d tokens, want the 4 computed", cached)
			}
			_, during, err := m.Pin(prompt, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if during != before {
				t.Errorf("a pin made while the step storing blocks 2 to 4 is built holds %d tokens, want the %d computed before it", during, before)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			var b paged.Batch
			if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: len(prompt) - cached}}); err != nil {
				t.Fatal(err)
			}
			_, after, err := m.Pin(prompt, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if after != 10 {
				t.Errorf("a pin made after the step holds %d tokens, want 10", after)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPinAfterStampsComeBack: the step stamps are 16 bits, so the stamp
// of the step that computed a prompt comes back 65,535 steps later; the
// sweep in EndStep has cleared it by then, so a pin made in that later
// step still holds the prompt.
func TestPinAfterStampsComeBack(t *testing.T) { pinAfterStampsComeBack(t, 0) }

// pinAfterStampsComeBack is TestPinAfterStampsComeBack with the prompt
// computed after steps EndSteps.
func pinAfterStampsComeBack(t *testing.T, steps int) {
	t.Helper()
	m := pinStepManager(t, nil)
	for range steps {
		m.EndStep()
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 1<<16 - 1 {
		m.EndStep()
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if _, held, err := m.Pin(prompt, nil, 0); err != nil || held != 6 {
		t.Fatalf("65,535 steps after the prompt was computed (%d steps in), a pin holds %d tokens (%v), want 6", steps, held, err)
	}
}

// hostPinManager returns a manager of numBlocks blocks of 2 tokens with a
// host tier of 32 blocks and a pin budget of 4 blocks.
func hostPinManager(t *testing.T, numBlocks int) *paged.Manager {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: numBlocks, HostBlocks: 32})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(4); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPinHoldsOnboardedPrefix: blocks onboarded from the host tier during
// the step being built hold KV a step computed (their Onboard directive
// runs before the step's kernels): a pin made in that step holds them.
func TestPinHoldsOnboardedPrefix(t *testing.T) {
	m := hostPinManager(t, 8)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	for i := range int32(4) { // the prompt, then three that evict it
		p := prompt
		if i > 0 {
			p = []int32{100 * i, 1, 2, 3, 4, 5, 6}
		}
		id, _, err := m.Create(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.TakeSwaps(nil) // the step ran
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	host := m.Stats().Tiers.HostHitBlocks
	id, cached := pinStepCreate(t, m, prompt)
	if cached != 6 || m.Stats().Tiers.HostHitBlocks-host != 3 {
		t.Fatalf("the prompt hits %d tokens, %d blocks on the host: the test checks nothing", cached, m.Stats().Tiers.HostHitBlocks-host)
	}
	if _, held, err := m.Pin(prompt, nil, 0); err != nil || held != 6 {
		t.Errorf("a pin of a prefix onboarded in the step being built holds %d tokens (%v), want 6", held, err)
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// shareStep creates a sequence for prompt (of 7 tokens, blocks of 2) and
// a sharer of the blocks the step being built stores for it: its fork
// (sharer "fork") or a second admission of the prompt that hits them
// ("hit"). It returns both.
func shareStep(t *testing.T, m *paged.Manager, prompt []int32, sharer string) (paged.SeqID, paged.SeqID) {
	t.Helper()
	p, _ := pinStepCreate(t, m, prompt)
	var c paged.SeqID
	var err error
	if sharer == "fork" {
		c, err = m.Fork(p)
	} else {
		var cached int
		c, cached, err = m.Create(prompt, nil)
		if err == nil && cached != 6 {
			t.Fatalf("the second admission hits %d tokens, want 6: the test checks nothing", cached)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// TestUncomputeForgetsSharedStepBlocks: a fork made in the step admitting
// its parent shares blocks that step stored; Uncompute of parent and
// child from 0, then Free of both, leaves none of them cached (before, a
// new Create of the prompt hit 6 tokens of KV no step computed: audit33's
// open finding (b)). The same for a second admission of the step that
// hit the first's blocks. A sharer that stays and appends commits the
// blocks again, so what it computes is cached after all.
func TestUncomputeForgetsSharedStepBlocks(t *testing.T) {
	prompt := []int32{1, 2, 3, 4, 5, 6, 7}
	for _, tc := range pinStepLayouts {
		for _, sharer := range []string{"fork", "hit"} {
			t.Run(tc.name+", "+sharer, func(t *testing.T) {
				m := pinStepManager(t, tc.groups)
				share := func() (paged.SeqID, paged.SeqID) {
					t.Helper()
					return shareStep(t, m, prompt, sharer)
				}
				p, c := share()
				id, cached := dropStep(t, m, prompt, p, c)
				if cached != 0 {
					t.Errorf("after the step dropped both sharers (Uncompute 0, Free), a new Create hits %d tokens of uncomputed KV", cached)
				}
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
				m.EndStep()

				// Only the first is dropped: the sharer computes the
				// prompt in the step and, with its next token, caches it.
				p, c = share()
				if err := m.Uncompute(p, 0); err != nil {
					t.Fatal(err)
				}
				if err := m.Free(p); err != nil {
					t.Fatal(err)
				}
				if err := m.Append(c, 8); err != nil {
					t.Fatal(err)
				}
				m.EndStep()
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				if err := m.Free(c); err != nil {
					t.Fatal(err)
				}
				_, cached = pinStepCreate(t, m, prompt)
				if cached != 6 {
					t.Errorf("the sharer that stayed computed the prompt: a new Create hits %d tokens, want 6", cached)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
