package paged_test

import (
	"maps"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// eventModel is what a consumer of the KV event stream (a router's index)
// knows of a manager's device cache: how many device blocks hold each
// content, and the parent each content was stored under.
type eventModel struct {
	held   map[paged.Hash]int
	parent map[paged.Hash]paged.Hash
	root   map[paged.Hash]bool // stored as the first block of its chain
	seq    uint64
}

// apply folds events into the model, failing on a gap or on a removal of
// content the stream never stored.
func (e *eventModel) apply(t *rapid.T, evs []paged.Event) {
	for _, ev := range evs {
		if ev.Seq != e.seq+1 {
			t.Fatalf("event %d follows %d: a gap with no event dropped", ev.Seq, e.seq)
		}
		e.seq = ev.Seq
		switch ev.Kind {
		case paged.BlockStored:
			parent, has := ev.Parent, ev.HasParent
			for _, h := range ev.Hashes {
				e.held[h]++
				e.parent[h], e.root[h] = parent, !has
				parent, has = h, true
			}
		case paged.BlockRemoved:
			for _, h := range ev.Hashes {
				if e.held[h] == 0 {
					t.Fatalf("event %d removes %x, which no device block holds", ev.Seq, h[:6])
				}
				if e.held[h]--; e.held[h] == 0 {
					delete(e.held, h)
				}
			}
		case paged.AllBlocksCleared:
			clear(e.held)
		default:
			t.Fatalf("event %d: %v without a host tier", ev.Seq, ev.Kind)
		}
	}
}

// TestAudit13EventsReplayToSnapshot drives the shared state machine with
// events on and, after every step, replays the drained events into a
// consumer's model and compares it with Snapshot: the same contents, each
// held by as many device blocks, each stored under the parent the
// snapshot names. A commit the stream does not report, a reset without
// AllBlocksCleared, or content reported (or snapshotted) under the wrong
// parent shows (mutations M25, M26 and M28 of internal/mutation, which
// TestRefusedCallsChangeNothing also catches, only through a refused
// call's before-and-after comparison). A second consumer resyncs from
// snapshots taken while events are still queued (the check drains only
// some of the time) and follows the events numbered after their Seq: it
// must know what the first knows (audit 61).
func TestAudit13EventsReplayToSnapshot(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "blockSize")
		m, err := paged.New(paged.Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(2, 24).Draw(t, "blocks"),
			Policy:           policy(t, "policy"),
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
			Events:           1 << 12,
		})
		if err != nil {
			t.Fatal(err)
		}
		s := newMachine(t, m, bs)
		model := &eventModel{held: map[paged.Hash]int{}, parent: map[paged.Hash]paged.Hash{}, root: map[paged.Hash]bool{}}
		var evs []paged.Event
		var snap paged.Snapshot
		// A second consumer resyncs from a snapshot taken with events
		// still queued, then follows the events numbered after its Seq
		// (as fleet.Index.Resync does): it must know what the first does
		// (audit 61).
		var resynced map[paged.Hash]int
		var resyncSeq uint64
		actions := s.actions()
		delete(actions, "drain") // this test drains
		check := actions[""]
		actions[""] = func(t *rapid.T) {
			check(t)
			if rapid.IntRange(0, 3).Draw(t, "resync") == 0 {
				var at paged.Snapshot
				m.Snapshot(&at)
				resynced, resyncSeq = map[paged.Hash]int{}, at.Seq
				for _, b := range at.Blocks {
					resynced[b.Hash]++
				}
			}
			if rapid.IntRange(0, 2).Draw(t, "later") == 0 {
				return // the queue keeps its events for the next step
			}
			evs = m.DrainEvents(evs[:0])
			model.apply(t, evs)
			if resynced != nil {
				follow(t, resynced, resyncSeq, evs)
				if !maps.Equal(resynced, model.held) {
					t.Fatalf("a consumer resynced at event %d knows other contents than the stream (%d and %d of them)", resyncSeq, len(resynced), len(model.held))
				}
			}
			if d := m.Stats().EventsDropped; d != 0 {
				t.Fatalf("%d events dropped", d)
			}
			m.Snapshot(&snap)
			if snap.Seq != model.seq {
				t.Fatalf("snapshot at event %d, stream at %d", snap.Seq, model.seq)
			}
			count := map[paged.Hash]int{}
			for _, b := range snap.Blocks {
				count[b.Hash]++
				if b.HasParent == model.root[b.Hash] || (b.HasParent && b.Parent != model.parent[b.Hash]) {
					t.Fatalf("block %x: snapshot parent %x (%v), events stored it under %x (root %v)",
						b.Hash[:6], b.Parent[:6], b.HasParent, model.parent[b.Hash], model.root[b.Hash])
				}
			}
			if len(count) != len(model.held) {
				t.Fatalf("snapshot holds %d contents, the event stream %d", len(count), len(model.held))
			}
			for h, n := range count {
				if model.held[h] != n {
					t.Fatalf("content %x: %d device blocks, the event stream says %d", h[:6], n, model.held[h])
				}
			}
		}
		t.Repeat(actions)
	})
}

// follow folds the events numbered after seq into held, a consumer's
// device counts rebuilt from a snapshot taken at event seq.
func follow(t *rapid.T, held map[paged.Hash]int, seq uint64, evs []paged.Event) {
	for _, ev := range evs {
		if ev.Seq <= seq {
			continue // in the snapshot
		}
		switch ev.Kind {
		case paged.BlockStored:
			for _, h := range ev.Hashes {
				held[h]++
			}
		case paged.BlockRemoved:
			for _, h := range ev.Hashes {
				if held[h] == 0 {
					t.Fatalf("event %d removes %x, which the resynced consumer does not hold", ev.Seq, h[:6])
				}
				if held[h]--; held[h] == 0 {
					delete(held, h)
				}
			}
		case paged.AllBlocksCleared:
			clear(held)
		}
	}
}
