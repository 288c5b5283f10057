package paged_test

import (
	"errors"

	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// retainMachine is the model machine (statemachine_test.go) with the
// retention features on top: requests with a Retention, logical time,
// pins with a budget and expiries, over every eviction policy, with or
// without the unified free queue. Fork, preemption, truncation, chunked
// admission and resets run between them, so every interaction of pins
// and promises with those is checked by the machine's read-back and
// Check after every step.
type retainMachine struct {
	*machine
	now    int64
	budget int
	pins   []livePin
}

// livePin is a pin the model believes live: its prompt, the tokens Pin
// said it holds, and its expiry (0: none).
type livePin struct {
	id     paged.PinID
	prompt []int32
	tokens int
	until  int64
}

// createRetained is the machine's create with a Retention drawn.
func (r *retainMachine) createRetained(t *rapid.T) {
	s := r.machine
	prompt := s.tokens(t, "prompt")
	ms := &modelSeq{tokens: prompt}
	ret := &paged.Retention{
		Priority: rapid.SampledFrom([]int{0, 10, 35, 50, 90, 100}).Draw(t, "priority"),
		Ticks:    int64(rapid.IntRange(0, 5).Draw(t, "ticks")),
	}
	before := s.m.Stats()
	id, cached, err := s.m.Create(prompt, &paged.SeqOptions{Retention: ret})
	if err != nil {
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	if after := s.m.Stats(); after.RetainedHits < before.RetainedHits {
		t.Fatalf("RetainedHits went back: %d -> %d", before.RetainedHits, after.RetainedHits)
	}
	ms.running = true
	s.add(id, ms)
	s.flushCopies(t)
	s.compute(t, id, ms, cached)
}

// advance moves logical time on: pins past their expiry end.
func (r *retainMachine) advance(t *rapid.T) {
	r.now += int64(rapid.IntRange(0, 3).Draw(t, "dt"))
	r.m.Advance(r.now)
	kept := r.pins[:0]
	for _, p := range r.pins {
		if p.until != 0 && p.until <= r.now {
			if err := r.m.Unpin(p.id); !errors.Is(err, paged.ErrUnknownPin) {
				t.Fatalf("pin %#x expired at %d, now %d: Unpin says %v", uint64(p.id), p.until, r.now, err)
			}
			continue
		}
		kept = append(kept, p)
	}
	r.pins = kept
}

// pin pins a prompt the machine has run (or a running sequence's tokens),
// checking that a refusal changes nothing but the pin counters.
func (r *retainMachine) pin(t *rapid.T) {
	var p []int32
	if id, ms, ok := r.pick(t, true); ok && rapid.Bool().Draw(t, "running-prompt") && ms.lora == 0 && ms.salt == "" {
		_ = id
		p = append([]int32(nil), ms.tokens...)
	} else {
		p = r.tokens(t, "pin-prompt")
	}
	var until int64
	if rapid.Bool().Draw(t, "expires") {
		until = r.now + int64(rapid.IntRange(1, 6).Draw(t, "for"))
	}
	before, pbefore := r.m.Stats(), r.m.PinStats()
	id, tokens, err := r.m.Pin(p, nil, until)
	if err != nil {
		if !errors.Is(err, paged.ErrPinBudget) {
			t.Fatalf("Pin: %v", err)
		}
		after, pafter := r.m.Stats(), r.m.PinStats()
		if after != before || pafter.Rejected != pbefore.Rejected+1 || pafter.PinnedBlocks != pbefore.PinnedBlocks || pafter.Pins != pbefore.Pins {
			t.Fatalf("a refused pin changed the manager: %+v %+v -> %+v %+v", before, pbefore, after, pafter)
		}
		return
	}
	if tokens%r.bs != 0 || tokens > len(p) {
		t.Fatalf("Pin of %d tokens holds %d", len(p), tokens)
	}
	if ps := r.m.PinStats(); ps.PinnedBlocks > r.budget {
		t.Fatalf("%d blocks pinned, budget %d", ps.PinnedBlocks, r.budget)
	}
	r.pins = append(r.pins, livePin{id, p, tokens, until})
}

// unpin releases a live pin.
func (r *retainMachine) unpin(t *rapid.T) {
	if len(r.pins) == 0 {
		return
	}
	i := rapid.IntRange(0, len(r.pins)-1).Draw(t, "pin")
	if err := r.m.Unpin(r.pins[i].id); err != nil {
		t.Fatalf("Unpin of a live pin: %v", err)
	}
	if err := r.m.Unpin(r.pins[i].id); !errors.Is(err, paged.ErrUnknownPin) {
		t.Fatalf("second Unpin: %v", err)
	}
	r.pins = append(r.pins[:i], r.pins[i+1:]...)
}

// extend moves a live pin's expiry.
func (r *retainMachine) extend(t *rapid.T) {
	if len(r.pins) == 0 {
		return
	}
	i := rapid.IntRange(0, len(r.pins)-1).Draw(t, "pin")
	var until int64
	if rapid.Bool().Draw(t, "expires") {
		until = r.now + int64(rapid.IntRange(-1, 6).Draw(t, "for"))
	}
	before := r.m.PinStats()
	err := r.m.ExtendPin(r.pins[i].id, until)
	if until != 0 && until <= r.now {
		if !errors.Is(err, paged.ErrInvalid) || r.m.PinStats() != before {
			t.Fatalf("ExtendPin to %d at %d: %v", until, r.now, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("ExtendPin: %v", err)
	}
	r.pins[i].until = until
}

// hitPinned runs a request for a pinned prompt: it hits at least what the
// pin holds (bar the last token, which is always recomputed).
func (r *retainMachine) hitPinned(t *rapid.T) {
	if len(r.pins) == 0 {
		return
	}
	p := rapid.SampledFrom(r.pins).Draw(t, "pinned")
	want := min(p.tokens, (len(p.prompt)-1)/r.bs*r.bs)
	before := r.m.Stats()
	id, cached, err := r.m.Create(p.prompt, nil)
	if err != nil {
		expectNoSpaceUnchanged(t, r.m, before, err)
		return
	}
	if cached < want {
		t.Fatalf("a request for a prompt pinned at %d tokens hit %d", p.tokens, cached)
	}
	ms := &modelSeq{tokens: append([]int32(nil), p.prompt...), running: true}
	r.add(id, ms)
	r.flushCopies(t)
	r.compute(t, id, ms, cached)
}

func (r *retainMachine) actions() map[string]func(*rapid.T) {
	a := r.machine.actions()
	a["retained"] = r.createRetained
	a["advance"] = r.advance
	a["pin"] = r.pin
	a["unpin"] = r.unpin
	a["extend"] = r.extend
	a["hitPinned"] = r.hitPinned
	check := a[""]
	a[""] = func(t *rapid.T) {
		check(t)
		if ps := r.m.PinStats(); ps.Pins != len(r.pins) {
			t.Fatalf("%d pins live, the model has %d", ps.Pins, len(r.pins))
		}
	}
	return a
}

// TestAudit15RetentionMachine drives every policy through the model
// machine with retention promises, logical time and pins (see
// retainMachine).
func TestAudit15RetentionMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "blockSize")
		cfg := paged.Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(3, 24).Draw(t, "blocks"),
			Policy:           policy(t, "policy"),
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
			Events:           rapid.SampledFrom([]int{0, 64}).Draw(t, "events"),
		}
		m, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		budget := rapid.IntRange(0, cfg.NumBlocks-1).Draw(t, "budget")
		if err := m.SetPinBudget(budget); err != nil {
			t.Fatal(err)
		}
		r := &retainMachine{machine: newMachine(t, m, bs), budget: budget}
		t.Repeat(r.actions())
	})
}
