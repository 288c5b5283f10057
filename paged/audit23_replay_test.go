package paged_test

import (
	"errors"
	"maps"
	"slices"
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
	// offloads, onboards and hostEvictions count each group's moves to
	// the host, moves back, and removals from the host.
	offloads, onboards, hostEvictions map[int]uint64
	// parent is the parent each (content, group) was stored under
	// (BlockStored, or an onboard's move with its tokens); root marks a
	// chain's first block.
	parent map[tierKey]paged.Hash
	root   map[tierKey]bool
	// resynced is a second consumer's counts, rebuilt from a snapshot
	// taken at event resyncSeq with events still queued (nil until the
	// first), which then follows the events numbered after it (audit 61).
	resynced  map[tierKey]int
	resyncSeq uint64
}

func newTierReplay() *tierReplay {
	return &tierReplay{held: map[tierKey]int{}, offloads: map[int]uint64{}, onboards: map[int]uint64{}, hostEvictions: map[int]uint64{},
		parent: map[tierKey]paged.Hash{}, root: map[tierKey]bool{}}
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
		parent, has := ev.Parent, ev.HasParent
		for _, h := range ev.Hashes {
			if ev.Kind == paged.BlockStored || ev.Kind == paged.BlockMoved && ev.Medium == paged.Device && len(ev.Tokens) > 0 {
				k := tierKey{h: h, g: ev.Group}
				r.parent[k], r.root[k] = parent, !has
				parent, has = h, true
			}
			switch ev.Kind {
			case paged.BlockStored:
				add(ev, h, ev.Medium, 1)
			case paged.BlockRemoved:
				add(ev, h, ev.Medium, -1)
				if ev.Medium == paged.Host {
					r.hostEvictions[ev.Group]++
				}
			case paged.BlockMoved:
				if ev.Medium == paged.Host {
					r.offloads[ev.Group]++
				} else {
					r.onboards[ev.Group]++
				}
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
	if rapid.IntRange(0, 3).Draw(t, "resync") == 0 {
		var at paged.Snapshot
		m.Snapshot(&at)
		r.resynced, r.resyncSeq = map[tierKey]int{}, at.Seq
		for _, b := range at.Blocks {
			r.resynced[tierKey{b.Hash, b.Group, b.Medium}]++
		}
	}
	if rapid.IntRange(0, 2).Draw(t, "later") == 0 {
		return // the queue keeps its events for the next check
	}
	evs := m.DrainEvents(nil)
	r.apply(t, evs, len(groups))
	if r.resynced != nil {
		r.follow(t, evs)
	}
	if d := m.Stats().EventsDropped; d != 0 {
		t.Fatalf("%d events dropped", d)
	}
	var snap paged.Snapshot
	m.Snapshot(&snap)
	if snap.Seq != r.seq {
		t.Fatalf("snapshot at event %d, stream at %d", snap.Seq, r.seq)
	}
	got := map[tierKey]int{}
	parents := m.Config().Events > 0
	for _, b := range snap.Blocks {
		k := tierKey{b.Hash, b.Group, b.Medium}
		if got[k]++; b.Medium == paged.Host && got[k] > 1 {
			t.Fatalf("snapshot lists %x of group %d on the host twice", b.Hash[:6], b.Group)
		}
		if pk := (tierKey{h: b.Hash, g: b.Group}); parents && (b.HasParent == r.root[pk] || b.HasParent && b.Parent != r.parent[pk]) {
			t.Fatalf("%x of group %d on %v: snapshot parent %x (%v), the events stored it under %x (root %v)",
				b.Hash[:6], b.Group, b.Medium, b.Parent[:6], b.HasParent, r.parent[pk], r.root[pk])
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
	r.checkStats(t, m, groups, got)
}

// follow folds the events numbered after resyncSeq into the resynced
// consumer's counts and requires them to equal the replay's.
func (r *tierReplay) follow(t *rapid.T, evs []paged.Event) {
	add := func(k tierKey, d int) {
		n := r.resynced[k] + d
		if n < 0 {
			t.Fatalf("a consumer resynced at event %d: %x of group %d taken from %v, where it holds none", r.resyncSeq, k.h[:6], k.g, k.m)
		}
		if n == 0 {
			delete(r.resynced, k)
			return
		}
		r.resynced[k] = n
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Seq <= r.resyncSeq {
			continue // in the snapshot
		}
		if ev.Kind == paged.AllBlocksCleared {
			clear(r.resynced)
			continue
		}
		for _, h := range ev.Hashes {
			k := tierKey{h, ev.Group, ev.Medium}
			switch ev.Kind {
			case paged.BlockStored:
				add(k, 1)
			case paged.BlockRemoved:
				add(k, -1)
			case paged.BlockMoved:
				add(tierKey{h, ev.Group, ev.From}, -1)
				add(k, 1)
			}
		}
	}
	if !maps.Equal(r.resynced, r.held) {
		t.Fatalf("a consumer resynced at event %d knows other contents than the stream (%d and %d of them)", r.resyncSeq, len(r.resynced), len(r.held))
	}
}

// checkStats checks that the host tier's figures add up: its blocks are
// free, cached or used; the groups' figures sum to TierStats'; and each
// group whose moves are events (all but State groups) offloaded, onboarded
// and gave up as many blocks as its events say, and holds on the host
// what the snapshot lists there.
func (r *tierReplay) checkStats(t *rapid.T, m *paged.Manager, groups []paged.Group, snap map[tierKey]int) {
	st := m.Stats().Tiers
	if st.HostBlocks == 0 {
		return
	}
	if st.HostFree+st.HostCached+st.HostUsed != st.HostBlocks {
		t.Fatalf("host tier: %d free + %d cached + %d used != %d blocks", st.HostFree, st.HostCached, st.HostUsed, st.HostBlocks)
	}
	host := map[int]int{}
	for k, n := range snap {
		if k.m == paged.Host {
			host[k.g] += n
		}
	}
	var sum paged.GroupTierStats
	for g := range groups {
		gs, err := m.TierStatsGroup(g)
		if err != nil {
			t.Fatalf("TierStatsGroup(%d): %v", g, err)
		}
		sum.HostCached += gs.HostCached
		sum.SwapOutBlocks += gs.SwapOutBlocks
		sum.SwapInBlocks += gs.SwapInBlocks
		sum.Offloads += gs.Offloads
		sum.Onboards += gs.Onboards
		sum.HostEvictions += gs.HostEvictions
		if groups[g].Kind == paged.State {
			continue // checkpoint pages move without events
		}
		if gs.Offloads != r.offloads[g] || gs.Onboards != r.onboards[g] || gs.HostEvictions != r.hostEvictions[g] {
			t.Fatalf("group %d: %d offloads, %d onboards, %d host evictions; the events say %d, %d, %d",
				g, gs.Offloads, gs.Onboards, gs.HostEvictions, r.offloads[g], r.onboards[g], r.hostEvictions[g])
		}
		if gs.HostCached != host[g] {
			t.Fatalf("group %d: %d host blocks cached, the snapshot lists %d", g, gs.HostCached, host[g])
		}
	}
	want := paged.GroupTierStats{HostCached: st.HostCached, SwapOutBlocks: st.SwapOutBlocks, SwapInBlocks: st.SwapInBlocks,
		Offloads: st.Offloads, Onboards: st.Onboards, HostEvictions: st.HostEvictions}
	if sum != want {
		t.Fatalf("the groups' host figures sum to %+v, TierStats has %+v", sum, want)
	}
}

// replayEvents is the event buffer a run of runGroupsMachine needs to
// drop nothing between two checks when it replays them (0 otherwise).
func replayEvents(replay func(*rapid.T, *paged.Manager, []paged.Group)) int {
	if replay == nil {
		return 0
	}
	return 1 << 12 // the check after every step drains them
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
		tally.replay = newTierReplay().check
		runGroupsMachine(t, rapid.Bool().Draw(t, "offloading"), false, &tally)
	})
	if tally.runs >= 100 { // go test's default; CI's 32-bit pass runs 10
		assert.Positive(t, tally.onboards[0]+tally.onboards[1], "no run onboarded content")
	}
}

// TestAudit23TierEventsReplayToSnapshot is TestStateMachineTiers (swaps,
// offload, onboarding, windows, forks, drafts, ResetCache) with events
// replayed into both tiers after every step, and with pins, retention
// promises that lapse (Advance) and the offload floor among its actions:
// the snapshot must list exactly what the stream says each tier holds,
// and the host figures add up.
func TestAudit23TierEventsReplayToSnapshot(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newTierMachine(t, 1<<12)
		if err := s.m.SetPinBudget(rapid.IntRange(0, s.m.Stats().UsableBlocks).Draw(t, "pinBudget")); err != nil {
			t.Fatal(err)
		}
		r := newTierReplay()
		groups := []paged.Group{{Kind: paged.FullAttention}}
		var pins []paged.PinID
		var prompts [][]int32
		now := int64(0)
		acts := s.tierActions()
		delete(acts, "drain") // the check drains
		check := acts[""]
		for name, act := range map[string]func(*rapid.T){
			"retained": func(t *rapid.T) {
				// A request with a retention promise runs and ends: its
				// blocks offload or not by the floor, and keep the promise
				// on the host.
				prompt := s.tokens(t, "rprompt")
				ret := &paged.Retention{Priority: rapid.IntRange(0, 100).Draw(t, "priority"), Ticks: int64(rapid.IntRange(0, 3).Draw(t, "ticks"))}
				ms := &modelSeq{tokens: prompt}
				id, cached, err := s.m.Create(prompt, &paged.SeqOptions{Retention: ret})
				if err != nil {
					return
				}
				ms.running = true
				s.add(id, ms)
				s.flushCopies(t)
				s.compute(t, id, ms, cached)
				prompts = append(prompts, prompt)
				if rapid.Bool().Draw(t, "end") {
					if err := s.m.Free(id); err != nil {
						t.Fatalf("Free: %v", err)
					}
					s.remove(id)
				}
			},
			"advance": func(t *rapid.T) {
				now += int64(rapid.IntRange(1, 3).Draw(t, "dt"))
				s.m.Advance(now)
			},
			"pin": func(t *rapid.T) {
				for _, ms := range s.seqs {
					prompts = append(prompts, ms.tokens)
				}
				if len(prompts) == 0 {
					t.Skip("no prompt")
				}
				p := rapid.SampledFrom(prompts).Draw(t, "pinned")
				until := int64(0)
				if rapid.Bool().Draw(t, "expires") {
					until = now + int64(rapid.IntRange(1, 3).Draw(t, "for"))
				}
				before := s.m.Stats()
				id, _, err := s.m.Pin(p, nil, until)
				if err != nil {
					if !errors.Is(err, paged.ErrPinBudget) || s.m.Stats() != before {
						t.Fatalf("Pin: %v", err)
					}
					return
				}
				pins = append(pins, id)
			},
			"unpin": func(t *rapid.T) {
				if len(pins) == 0 {
					t.Skip("no pin")
				}
				i := rapid.IntRange(0, len(pins)-1).Draw(t, "unpinned")
				if err := s.m.Unpin(pins[i]); err != nil && !errors.Is(err, paged.ErrUnknownPin) {
					t.Fatalf("Unpin: %v", err) // expired pins are gone
				}
				pins = slices.Delete(pins, i, i+1)
			},
			"": func(t *rapid.T) {
				check(t)
				r.check(t, s.m, groups)
			},
		} {
			acts[name] = act
		}
		t.Repeat(acts)
	})
}

// checkSplit checks the split-KV plan of a hybrid batch against every
// group's tables: the plan covers each sequence's BlocksPerSeq blocks once
// (SplitPlan.Check), that is every block of its group 0 table, which is
// as long as every attention group's table, entry for entry (a window's
// released entries are null there), so the plan's items read each
// position of each such group exactly once; and a sequence's blocks hold
// its SeqLens tokens.
func (h *hyModel) checkSplit(t *rapid.T, b *paged.Batch, sched []paged.Scheduled) {
	if b.SplitUnits == 0 {
		return
	}
	if err := b.Split.CheckFrom(b.FirstBlocks, b.BlocksPerSeq); err != nil {
		t.Fatalf("split plan of %d units: %v", b.SplitUnits, err)
	}
	for i, sc := range sched {
		n := int(b.BlocksPerSeq[i])
		if want := (int(b.SeqLens[i]) + h.bs - 1) / h.bs; n != want {
			t.Fatalf("%v: %d blocks for %d tokens", sc.ID, n, b.SeqLens[i])
		}
		covered := 0
		for _, it := range b.Split.Partials(i) {
			covered += it.Blocks()
		}
		if covered != n {
			t.Fatalf("%v: the plan covers %d of its %d blocks", sc.ID, covered, n)
		}
		for g := range h.groups {
			if h.groups[g].Kind == paged.State {
				continue
			}
			table, err := h.m.TableGroup(sc.ID, g)
			if err != nil {
				t.Fatalf("TableGroup(%v, %d): %v", sc.ID, g, err)
			}
			if len(table) != n {
				t.Fatalf("%v group %d: a table of %d blocks, the plan's rows %d", sc.ID, g, len(table), n)
			}
		}
	}
}

// twinConfig draws the configuration of a twin test: blocks of 1, 2 or 4
// tokens, one group or a hybrid layout (State groups replaced by full
// attention unless withState), either free-queue mode, a small pool.
func twinConfig(t *rapid.T, withState bool) paged.Config {
	bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
	unified := rapid.Bool().Draw(t, "unified")
	var groups []paged.Group
	if rapid.IntRange(0, 3).Draw(t, "hybrid") > 0 {
		groups = drawHybridLayout(t, bs, !unified && rapid.Bool().Draw(t, "multi"))
	}
	pages := 0
	for i, g := range groups {
		if g.Kind == paged.State && !withState {
			groups[i] = paged.Group{Kind: paged.FullAttention}
		}
		pages = max(pages, groups[i].Pages)
	}
	return paged.Config{
		BlockSize:        bs,
		NumBlocks:        max(rapid.IntRange(6, 40).Draw(t, "blocks"), pages+1),
		Groups:           groups,
		UnifiedFreeQueue: unified,
		MaxModelLen:      12 * bs,
	}
}

// twinPrompt draws a prompt of a twin test: a cut of one of two shared
// prefixes and a few fresh tokens (from *next on).
func twinPrompt(t *rapid.T, bs int, next *int32) []int32 {
	prefixes := [][]int32{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}}
	p := rapid.SampledFrom(prefixes).Draw(t, "prefix")
	p = slices.Clone(p[:rapid.IntRange(1, min(len(p), 10*bs)).Draw(t, "cut")])
	for range rapid.IntRange(0, 2*bs).Draw(t, "tail") {
		*next++
		p = append(p, *next)
	}
	return p
}

// TestAudit23OnboardAheadKeepsTheHit: Onboard moves a waiting sequence's
// host-resident prefix to the device ahead of its admission, and the
// admission then hits every block it would have hit without it: two twin
// managers run one history (prompts over shared prefixes, run and ended,
// under pool pressure that offloads), and the next request is admitted at
// once in one twin and after Onboard in the other. On every hybrid layout.
func TestAudit23OnboardAheadKeepsTheHit(t *testing.T) {
	onboarded := 0
	rapid.Check(t, func(t *rapid.T) {
		cfg := twinConfig(t, true)
		cfg.HostBlocks = rapid.IntRange(4, 64).Draw(t, "host blocks")
		var twins [2]*paged.Manager
		for i := range twins {
			m, err := paged.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			twins[i] = m
		}
		next := int32(1000)
		prompt := func() []int32 { return twinPrompt(t, cfg.BlockSize, &next) }
		for range rapid.IntRange(1, 12).Draw(t, "history") {
			p := prompt()
			var errs [2]error
			for i, m := range twins {
				var id paged.SeqID
				id, _, errs[i] = m.Create(p, nil)
				if errs[i] == nil {
					errs[i] = m.Free(id)
				}
				m.TakeSwaps(nil)
				m.TakeCopies(nil)
				m.TakeCheckpoints(nil)
			}
			if (errs[0] == nil) != (errs[1] == nil) {
				t.Fatalf("the twins differ: %v, %v", errs[0], errs[1])
			}
		}
		p := prompt()
		var hits [2]int
		var errs [2]error
		for i, m := range twins {
			id, err := m.Add(p, nil)
			if errors.Is(err, paged.ErrNever) {
				return // longer than a sequence may grow
			}
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if i == 1 {
				before := m.Stats()
				n, err := m.Onboard(id)
				if errors.Is(err, paged.ErrNoSpace) {
					if m.Stats() != before {
						t.Fatalf("a refused Onboard changed the statistics")
					}
				} else if err != nil {
					t.Fatalf("Onboard: %v", err)
				}
				onboarded += n
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			hits[i], errs[i] = m.Admit(id)
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		if errs[0] == nil && (errs[1] != nil || hits[1] != hits[0]) {
			t.Fatalf("admitted at once: %d tokens hit; after Onboard: %d (%v)", hits[0], hits[1], errs[1])
		}
	})
	t.Logf("%d blocks onboarded ahead", onboarded)
}

// TestAudit23HostTierLosesNothing: a device pool backed by a host tier
// large enough never to give content up hits every prefix a device pool
// large enough never to evict hits: each evicted block is offloaded unless
// another copy stays, and the hybrid lookup takes host-resident blocks
// (window, chunk, state checkpoint pages) as present. Twin managers run
// one history of requests over shared prefixes, some kept running, and
// every admission both make hits as many tokens in each. State groups are
// left out: a checkpoint is taken only when the pool has room for its pages
// at that moment, which the small pool may not have.
func TestAudit23HostTierLosesNothing(t *testing.T) {
	var onboards uint64
	runs := 0
	rapid.Check(t, func(t *rapid.T) {
		runs++
		small := twinConfig(t, false)
		small.HostBlocks = 4096
		big := small
		big.NumBlocks, big.HostBlocks = 4096, 0
		a, err := paged.New(small)
		if err != nil {
			t.Fatal(err)
		}
		b, err := paged.New(big)
		if err != nil {
			t.Fatal(err)
		}
		next := int32(1000)
		var live [][2]paged.SeqID
		for step := range rapid.IntRange(1, 40).Draw(t, "steps") {
			if len(live) > 0 && rapid.Bool().Draw(t, "end one") {
				i := rapid.IntRange(0, len(live)-1).Draw(t, "ended")
				for j, m := range []*paged.Manager{a, b} {
					if err := m.Free(live[i][j]); err != nil {
						t.Fatalf("Free: %v", err)
					}
				}
				live = slices.Delete(live, i, i+1)
				continue
			}
			p := twinPrompt(t, small.BlockSize, &next)
			ida, hita, err := a.Create(p, nil)
			if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
				continue
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			idb, hitb, err := b.Create(p, nil)
			if err != nil {
				t.Fatalf("Create in the big pool: %v", err)
			}
			if hita != hitb {
				t.Fatalf("step %d: with a host tier %d tokens hit, in the big pool %d (%d offloads, %d host evictions)",
					step, hita, hitb, a.Stats().Tiers.Offloads, a.Stats().Tiers.HostEvictions)
			}
			for _, m := range []*paged.Manager{a, b} {
				m.TakeSwaps(nil)
				m.TakeCopies(nil)
				m.TakeCheckpoints(nil)
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			live = append(live, [2]paged.SeqID{ida, idb})
		}
		st := a.Stats()
		if st.Tiers.HostEvictions > 0 {
			t.Fatalf("the host tier gave content up: %+v", st.Tiers)
		}
		onboards += st.Tiers.Onboards
	})
	if runs >= 100 { // go test's default; CI's 32-bit pass runs 10
		assert.Positive(t, onboards, "no run hit the host tier")
	}
}
