package paged

import (
	"errors"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// retainRecorder is the priority policy recording the blocks Retain is
// called for.
type retainRecorder struct {
	*eviction.Priority
	calls []allocator.BlockID
}

func (r *retainRecorder) policy(capacity int) eviction.Policy {
	r.Priority = eviction.NewPriority(capacity).(*eviction.Priority)
	return r
}

func (r *retainRecorder) Retain(id allocator.BlockID, priority int, expires int64) {
	r.calls = append(r.calls, id)
	r.Priority.Retain(id, priority, expires)
}

// TestAudit15RetentionReachesEveryGroup: on a hybrid manager a request with
// a Retention passes its promise for every device block its admission hit,
// in every group (the full-attention chain, the window blocks before the
// hit's end, a state checkpoint's pages), and Stats.RetainedHits counts
// exactly the blocks passed. A promise that skipped the window groups'
// hits, or a RetainedHits that left out the checkpoint pages, survived
// every other test (audit15's mutations).
func TestAudit15RetentionReachesEveryGroup(t *testing.T) {
	for _, groups := range [][]Group{
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 5}},
		{{Kind: FullAttention}, {Kind: State, Pages: 1}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 3}, {Kind: State, Pages: 2}},
	} {
		rec := &retainRecorder{}
		m, err := New(Config{BlockSize: 2, NumBlocks: 60, Groups: groups, Policy: rec.policy})
		if err != nil {
			t.Fatal(err)
		}
		c := newConversation(5, 3, false)
		var windowHits, pageHits uint64
		for step := range 600 {
			// Every third request makes a promise; the others only
			// build the conversation.
			if step%3 != 0 {
				c.step(t, m)
				m.TakeCheckpoints(nil) // the server saves the states asked for
				continue
			}
			var p []int32
			if len(c.prompts) > 0 {
				p = slices.Clone(c.prompts[c.rng.IntN(len(c.prompts))])
			}
			p = append(p, int32(c.rng.IntN(3)))
			before := m.Stats()
			rec.calls = rec.calls[:0]
			id, cached, err := m.Create(p, &SeqOptions{Retention: &Retention{Priority: 90, Ticks: 5}})
			if errors.Is(err, ErrNoSpace) || errors.Is(err, ErrNever) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			c.prompts, c.running = append(c.prompts, p), append(c.running, id)
			m.TakeCheckpoints(nil)
			m.EndStep() // the step writing the checkpoints ran: they are hits now (audit 65)
			if got := m.Stats().RetainedHits - before.RetainedHits; got != uint64(len(rec.calls)) {
				t.Fatalf("%v step %d: RetainedHits rose by %d, Retain was called for %d blocks", groups, step, got, len(rec.calls))
			}
			hit := cached / m.bs
			for g := range groups {
				tab, err := m.TableGroup(id, g)
				if err != nil {
					t.Fatal(err)
				}
				if groups[g].Kind == State {
					continue // its pages are the sequence's own; the checkpoint's are counted above
				}
				for _, b := range tab[:min(hit, len(tab))] {
					if b == nullBlock {
						continue
					}
					if !slices.Contains(rec.calls, b) {
						t.Fatalf("%v step %d: group %d's hit block %d got no promise (calls %v)", groups, step, g, b, rec.calls)
					}
					if g > 0 {
						windowHits++
					}
				}
			}
			full, _ := m.TableGroup(id, 0)
			for _, b := range rec.calls {
				if !slices.Contains(full[:hit], b) {
					pageHits++ // a window block or a checkpoint page
				}
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		if pageHits == 0 {
			t.Errorf("%v: no promise beyond the full-attention chain was passed: the test checks nothing", groups)
		}
		t.Logf("%v: %d window hit blocks, %d blocks beside the chain promised", groups, windowHits, pageHits)
	}
}

// TestAudit15ExtendPinEarlier: a pin whose expiry ExtendPin moves earlier
// ends at the new tick, not the old one. (ExtendPin not telling the
// expiry scan of the earlier tick survived every other test.)
func TestAudit15ExtendPinEarlier(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 10})
	if err != nil {
		t.Fatal(err)
	}
	p := []int32{1, 2, 3, 4, 5}
	run(t, m, p, nil)
	if err := m.SetPinBudget(4); err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Pin(p, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ExtendPin(id, 10); err != nil {
		t.Fatal(err)
	}
	m.Advance(10)
	if ps := m.PinStats(); ps.Pins != 0 || ps.Expired != 1 {
		t.Fatalf("a pin moved to expire at 10 is live at 10: %+v", ps)
	}
	if err := m.Unpin(id); !errors.Is(err, ErrUnknownPin) {
		t.Fatalf("Unpin after expiry: %v", err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAudit15PinEventsAndPeak: ExtendPin reports PinExtended with the new
// expiry, and pins that claim cached blocks raise PeakUsedBlocks at once.
// (Both survived every other test as audit15's mutations: the event
// dropped, the peak left to the next allocation.)
func TestAudit15PinEventsAndPeak(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 16})
	if err != nil {
		t.Fatal(err)
	}
	a, b := []int32{1, 2, 3, 4, 5, 6, 7}, []int32{9, 8, 7, 6, 5, 4, 3}
	run(t, m, a, nil) // 4 blocks at peak, 3 cached
	run(t, m, b, nil)
	if err := m.SetPinBudget(6); err != nil {
		t.Fatal(err)
	}
	pa, _, err := m.Pin(a, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Pin(b, nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats().PeakUsedBlocks; got != 6 {
		t.Fatalf("two pins hold 6 blocks; PeakUsedBlocks %d", got)
	}
	m.Advance(3)
	if err := m.ExtendPin(pa, 9); err != nil {
		t.Fatal(err)
	}
	ev := m.TakePinEvents(nil)
	if len(ev) != 3 || ev[2].Kind != PinExtended || ev[2].Pin != pa || ev[2].Until != 9 || ev[2].Now != 3 || ev[2].Blocks != 3 {
		t.Fatalf("events %+v, want Pinned, Pinned, PinExtended of the first pin to 9 at 3", ev)
	}
}

// TestAudit15HybridPinStopsAtHost: on a hybrid manager with a host tier, a
// pin of a prompt whose tail was offloaded pins the longest prefix whose
// every needed block is on the device, not nothing. (A pin that gave up at
// the first host block survived every other test.)
func TestAudit15HybridPinStopsAtHost(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 12, HostBlocks: 32, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	p := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	run(t, m, p[:5], nil) // a shorter turn first: p branches from it at 2 blocks
	run(t, m, p, nil)
	// Evict a few blocks (the oldest released, the chain's tail) to the host.
	for i := range 3 {
		run(t, m, []int32{int32(100 + i), 7, int32(200 + i)}, nil)
	}
	if err := m.SetPinBudget(10); err != nil {
		t.Fatal(err)
	}
	hs, err := m.BlockHashes(nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	onHost := false
	for i := range hs {
		if _, ok := m.bp.index.get(&hs[i]); !ok {
			onHost = true
		}
	}
	if !onHost {
		t.Fatal("nothing of the prompt left the device: the test checks nothing")
	}
	_, tokens, err := m.Pin(p, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The hit at the branch point, 2 blocks, has its window block on the
	// device (kept there for the branch point); the blocks after it left.
	if _, ok := m.bp.index.getIn(&hs[1], groupSalt(1)); !ok {
		t.Fatal("the branch point's window block left the device: the test checks nothing")
	}
	if tokens != 4 {
		t.Fatalf("pinned %d tokens of a prompt whose first 4 are a hit on the device", tokens)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
