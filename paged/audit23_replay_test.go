package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// tierKey names one content of one group on one tier.
type tierKey struct {
	h paged.Hash
	g int
	m paged.Medium
}

// tierReplay is what a consumer of a hybrid manager's KV events knows of
// its caches: how many blocks of each tier hold each (content, group), the
// parent each content was last stored or moved under, and where the
// stream stands.
type tierReplay struct {
	held map[tierKey]int
	seq  uint64
}

// apply folds events into the replay, failing on a gap, on a removal or a
// move of content the stream does not hold there, and on an event that
// names no group of the layout.
func (r *tierReplay) apply(t *rapid.T, evs []paged.Event, groups int) {
	add := func(ev *paged.Event, h paged.Hash, m paged.Medium, d int) {
		k := tierKey{h, ev.Group, m}
		n := r.held[k] + d
		if n < 0 {
			t.Fatalf("event %d (%v of group %d) takes %x from %v, where the stream holds none", ev.Seq, ev.Kind, ev.Group, h[:6], m)
		}
		if n == 0 {
			delete(r.held, k)
			return
		}
		r.held[k] = n
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Seq != r.seq+1 {
			t.Fatalf("event %d follows %d: a gap with no event dropped", ev.Seq, r.seq)
		}
		r.seq = ev.Seq
		if ev.Kind != paged.AllBlocksCleared && (ev.Group < 0 || ev.Group >= groups || len(ev.Hashes) == 0) {
			t.Fatalf("event %d: %v of group %d with %d hashes", ev.Seq, ev.Kind, ev.Group, len(ev.Hashes))
		}
		for _, h := range ev.Hashes {
			switch ev.Kind {
			case paged.BlockStored:
				add(ev, h, ev.Medium, 1)
			case paged.BlockRemoved:
				add(ev, h, ev.Medium, -1)
			case paged.BlockMoved:
				if ev.From == ev.Medium {
					t.Fatalf("event %d moves %x from %v to itself", ev.Seq, h[:6], ev.From)
				}
				add(ev, h, ev.From, -1)
				add(ev, h, ev.Medium, 1)
			}
		}
		if ev.Kind == paged.AllBlocksCleared {
			clear(r.held)
		}
	}
}

// check drains m's events into the replay and compares it with m's
// snapshot: every (content, group, tier) held by as many blocks, at the
// same point of the stream; offloaded content is on the host at most once
// per group (tiers are exclusive for it).
func (r *tierReplay) check(t *rapid.T, m *paged.Manager, groups []paged.Group) {
	r.apply(t, m.DrainEvents(nil), len(groups))
	if d := m.Stats().EventsDropped; d != 0 {
		t.Fatalf("%d events dropped", d)
	}
	var snap paged.Snapshot
	m.Snapshot(&snap)
	if snap.Seq != r.seq {
		t.Fatalf("snapshot at event %d, stream at %d", snap.Seq, r.seq)
	}
	got := map[tierKey]int{}
	for _, b := range snap.Blocks {
		k := tierKey{b.Hash, b.Group, b.Medium}
		if got[k]++; b.Medium == paged.Host && got[k] > 1 {
			t.Fatalf("snapshot lists %x of group %d on the host twice", b.Hash[:6], b.Group)
		}
	}
	for k, n := range got {
		if r.held[k] != n {
			t.Fatalf("%x of group %d on %v: snapshot %d blocks, the event stream %d", k.h[:6], k.g, k.m, n, r.held[k])
		}
	}
	for k, n := range r.held {
		if got[k] != n {
			t.Fatalf("%x of group %d on %v: the event stream %d blocks, snapshot %d", k.h[:6], k.g, k.m, n, got[k])
		}
	}
}

// replayEvents is the event buffer a run of runGroupsMachine needs to
// drop nothing between two checks when it replays them (0 otherwise).
func replayEvents(replay func(*rapid.T, *paged.Manager, []paged.Group)) int {
	if replay == nil {
		return 0
	}
	return 1 << 16
}

// TestAudit23GroupsEventsReplayToSnapshot runs the hybrid state machine
// with an offloading host tier (every kind of group, swaps, offload,
// onboarding, forks, drafts, dropped steps) and, after every step, replays
// the drained events into a consumer's model of both tiers: every (content,
// group, tier) the snapshot lists is held by as many blocks in the replay,
// and nothing more, numbered where the stream stands. TestAudit13's replay
// covers one group without a host tier.
func TestAudit23GroupsEventsReplayToSnapshot(t *testing.T) {
	var tally hyTally
	rapid.Check(t, func(t *rapid.T) {
		r := &tierReplay{held: map[tierKey]int{}}
		runGroupsMachine(t, rapid.Bool().Draw(t, "offloading"), &tally, r.check)
	})
	assert.Positive(t, tally.onboards[0]+tally.onboards[1], "no run onboarded content")
}
