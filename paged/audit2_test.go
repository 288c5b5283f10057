package paged

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fataler is what the replay reports failures through (*testing.T or
// *rapid.T).
type fataler interface {
	Fatalf(format string, args ...any)
}

// replayKey is one cached block as an event consumer knows it.
type replayKey struct {
	h      Hash
	medium Medium
	group  int
}

// replay is an event consumer: a multiset of the blocks the events say
// are cached, which must end equal to the manager's Snapshot.
type replay struct {
	blocks map[replayKey]int
	// parents holds each stored block's parent (nil: starts its chain).
	parents map[replayKey]*Hash
	seq     uint64
	// lost counts the gaps found (events dropped by a full buffer),
	// after which the consumer resynced from a Snapshot.
	lost int
}

func (r *replay) apply(t fataler, evs []Event) {
	for _, e := range evs {
		if e.Seq <= r.seq {
			continue // in the snapshot the consumer resynced from
		}
		if e.Seq != r.seq+1 {
			t.Fatalf("event %+v after seq %d: a gap the consumer did not resync", e, r.seq)
		}
		r.seq = e.Seq
		switch e.Kind {
		case BlockStored:
			if len(e.Tokens) != len(e.Hashes)*e.BlockSize {
				t.Fatalf("stored event %+v: %d tokens for %d blocks", e, len(e.Tokens), len(e.Hashes))
			}
			for i, h := range e.Hashes {
				k := replayKey{h, e.Medium, e.Group}
				r.blocks[k]++
				var parent *Hash
				switch {
				case i > 0:
					parent = &e.Hashes[i-1]
				case e.HasParent:
					parent = &e.Parent
				}
				r.setParent(t, k, parent)
			}
		case BlockRemoved:
			for _, h := range e.Hashes {
				k := replayKey{h, e.Medium, e.Group}
				if r.blocks[k] == 0 {
					t.Fatalf("removed event %+v names %v, which no event stored", e, k)
				}
				r.blocks[k]--
			}
		case BlockMoved:
			for _, h := range e.Hashes {
				k := replayKey{h, e.From, e.Group}
				if r.blocks[k] == 0 {
					t.Fatalf("moved event %+v names %v, which no event stored", e, k)
				}
				r.blocks[k]--
				to := replayKey{h, e.Medium, e.Group}
				r.blocks[to]++
				r.setParent(t, to, r.parents[k])
			}
		case AllBlocksCleared:
			clear(r.blocks)
			clear(r.parents)
		default:
			t.Fatalf("event of kind %v", e.Kind)
		}
	}
}

// setParent records k's parent, which must be the one recorded for
// another copy of the same content.
func (r *replay) setParent(t fataler, k replayKey, parent *Hash) {
	if parent != nil {
		p := *parent
		parent = &p
	}
	old, ok := r.parents[k]
	same := (old == nil) == (parent == nil) && (old == nil || *old == *parent)
	if ok && r.blocks[k] > 1 && !same {
		t.Fatalf("block %x stored with parent %v, another copy with %v", k.h[:4], parent, old)
	}
	r.parents[k] = parent
}

// drain applies the manager's pending events and, after a gap (events
// dropped by a full buffer), resyncs from a Snapshot as a consumer must.
func (r *replay) drain(t *rapid.T, m *Manager) {
	evs := m.DrainEvents(nil)
	if len(evs) > 0 && evs[0].Seq == r.seq+1 && evs[len(evs)-1].Seq == m.bp.events.seq && uint64(len(evs)) == m.bp.events.seq-r.seq {
		r.apply(t, evs)
		return
	}
	if len(evs) == 0 && m.bp.events.seq == r.seq {
		return
	}
	// A gap: start again from a snapshot, then the events after it
	// (none: the snapshot is taken after the drain).
	r.lost++
	var snap Snapshot
	m.Snapshot(&snap)
	clear(r.blocks)
	clear(r.parents)
	for _, b := range snap.Blocks {
		k := replayKey{b.Hash, b.Medium, b.Group}
		r.blocks[k]++
		if b.HasParent {
			r.setParent(t, k, &b.Parent)
		} else {
			r.setParent(t, k, nil)
		}
	}
	r.seq = snap.Seq
	r.apply(t, evs)
}

// check requires the replayed content to be the snapshot's.
func (r *replay) check(t fataler, m *Manager, what string) {
	var snap Snapshot
	m.Snapshot(&snap)
	if snap.Seq != r.seq {
		t.Fatalf("%s: snapshot at seq %d, events up to %d", what, snap.Seq, r.seq)
	}
	want := map[replayKey]int{}
	listed, seen := map[Hash]bool{}, map[Hash]bool{}
	for _, b := range snap.Blocks {
		listed[b.Hash] = true
	}
	for i, b := range snap.Blocks {
		if b.HasParent && listed[b.Parent] && !seen[b.Parent] {
			t.Fatalf("%s: snapshot block %d (%x) comes before its parent %x", what, i, b.Hash[:4], b.Parent[:4])
		}
		seen[b.Hash] = true
		k := replayKey{b.Hash, b.Medium, b.Group}
		want[k]++
		if p := r.parents[k]; (p != nil) != b.HasParent || p != nil && *p != b.Parent {
			t.Fatalf("%s: the snapshot gives %x (%v, group %d) parent %x (%v), the events %v", what, k.h[:4], k.medium, k.group, b.Parent[:4], b.HasParent, p)
		}
	}
	for k, n := range r.blocks {
		if n != want[k] {
			t.Fatalf("%s: events leave %d copies of %x (%v, group %d), the snapshot has %d", what, n, k.h[:4], k.medium, k.group, want[k])
		}
		delete(want, k)
	}
	for k, n := range want {
		if n != 0 {
			t.Fatalf("%s: the snapshot has %d copies of %x (%v, group %d) no event stored", what, n, k.h[:4], k.medium, k.group)
		}
	}
}

// observed is what a caller (and the block pool) can see of a manager:
// a refused call must leave it as it was.
type observed struct {
	Stats      Stats
	Pins       PinStats
	PinEvents  []PinEvent
	Now        int64
	EventSeq   uint64
	Events     []Event
	Snapshot   []CachedBlock
	Moves      []Swap
	Copies     []Copy
	Pend       int
	Available  int
	Seqs       []observedSeq
	GroupTiers []GroupTierStats
	Cached     []bool
	Hashes     []Hash
}

type observedSeq struct {
	ID                  SeqID
	State               seqState
	Tokens              []int32
	Hashes              []Hash
	Committed, Released int
	Spec                int
	Tables              [][]allocator.BlockID
	Hosts               [][]allocator.BlockID
}

func observe(m *Manager, ids []SeqID) observed {
	o := observed{
		Stats: m.Stats(), Pins: m.PinStats(), PinEvents: slices.Clone(m.pins.events), Now: m.now,
		EventSeq: m.bp.events.seq, Copies: slices.Clone(m.copies), Pend: len(m.ret.pend), Available: m.available(),
		Cached: m.bp.cachedFlags(), Hashes: slices.Clone(m.bp.hash),
	}
	if len(o.PinEvents) == 0 {
		o.PinEvents = nil // drained or never queued: the same
	}
	for _, e := range m.bp.events.queue {
		e.Hashes, e.Tokens = slices.Clone(e.Hashes), slices.Clone(e.Tokens)
		o.Events = append(o.Events, e)
	}
	var snap Snapshot
	m.Snapshot(&snap)
	o.Snapshot = snap.Blocks
	if m.tier != nil {
		o.Moves = slices.Clone(m.tier.moves)
		for g := range m.ntables() {
			gs, _ := m.TierStatsGroup(g)
			o.GroupTiers = append(o.GroupTiers, gs)
		}
	}
	for _, id := range ids {
		s, err := m.seq(id)
		if err != nil {
			continue
		}
		os := observedSeq{ID: id, State: s.state, Tokens: slices.Clone(s.tokens), Hashes: slices.Clone(s.hashes),
			Committed: s.committed, Released: s.released, Spec: s.spec}
		for g := range m.ntables() {
			blocks, _, _, host := s.tableAt(g)
			os.Tables = append(os.Tables, slices.Clone(*blocks))
			os.Hosts = append(os.Hosts, slices.Clone(*host))
		}
		o.Seqs = append(o.Seqs, os)
	}
	return o
}

// diffObserved names the fields of o that differ, with both values.
func diffObserved(before, after observed) string {
	var out string
	b, c := reflect.ValueOf(before), reflect.ValueOf(after)
	for i := range b.NumField() {
		if x, y := b.Field(i).Interface(), c.Field(i).Interface(); !reflect.DeepEqual(x, y) {
			out += fmt.Sprintf("\n%s before %+v\n%s after  %+v", b.Type().Field(i).Name, x, b.Type().Field(i).Name, y)
		}
	}
	return out
}

// auditRig drives one manager and checks, after every call, Check, the
// event replay against the snapshot, and that a refused call changed
// nothing (but the counters its docs say a refusal counts).
type auditRig struct {
	m    *Manager
	ids  []SeqID
	dead []SeqID
	pins []PinID
	gone []PinID // unpinned or maybe expired
	// promised holds each pin's hashes, cut to the tokens it pinned:
	// while it lives they are a device hit.
	promised map[PinID][]Hash
	r        replay
	// Directives taken so far: copies (Batch.Copies and DeviceCopy
	// swaps) and swaps by group and kind, against the stats' counters.
	copies int
	swaps  map[[2]int]uint64
	next   int32
	step   int
	// pinEvents counts the pin events taken, by kind.
	pinEvents [PinRejected + 1]uint64
	// partial is the entries a step call (AppendStep, DecodeStep)
	// reported done before it ran out of space.
	partial int
}

func (a *auditRig) all() []SeqID { return slices.Concat(a.ids, a.dead) }

// call runs fn and, when it fails, requires the manager unchanged. The
// prefix statistics (and TierStats.HostHitBlocks) may count a refused
// admission (Admit, AdmitChunk);
// a pin refused for the budget counts itself (PinStats.Rejected and a
// PinRejected event).
func (a *auditRig) call(t *rapid.T, what string, fn func() error) error {
	a.step++
	before := observe(a.m, a.all())
	err := fn()
	if err != nil {
		after := observe(a.m, a.all())
		if errors.Is(err, ErrPinBudget) {
			after.Pins.Rejected = before.Pins.Rejected
			if n := len(after.PinEvents); n > 0 && after.PinEvents[n-1].Kind == PinRejected {
				after.PinEvents = slices.Clip(after.PinEvents[:n-1])
				if n == 1 {
					after.PinEvents = nil
				}
			}
		}
		for _, p := range []*observed{&before, &after} {
			p.Stats.PrefixQueries, p.Stats.PrefixQueryTokens, p.Stats.PrefixHitTokens = 0, 0, 0
			p.Stats.PrefixQueryBlocks, p.Stats.PrefixHitBlocks, p.Stats.Tiers.HostHitBlocks = 0, 0, 0
			// Work counters: a refused Create has hashed its prompt.
			p.Stats.BlocksHashed, p.Stats.HashesRecalled = 0, 0
		}
		// Documented (appendGroups): with UnifiedFreeQueue a hybrid
		// manager's window groups slide before Append's space check, as
		// vLLM's allocate_slots does.
		slid := errors.Is(err, ErrNoSpace) && a.m.cfg.UnifiedFreeQueue && a.m.hybrid()
		// AppendStep and DecodeStep keep the entries before the one that
		// ran out of space (documented).
		slid = slid || errors.Is(err, ErrNoSpace) && a.partial > 0
		if !slid && !reflect.DeepEqual(before, after) {
			t.Fatalf("step %d %s refused (%v) but changed the manager:%s", a.step, what, err, diffObserved(before, after))
		}
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) && !errors.Is(err, ErrUnknownSequence) &&
			!errors.Is(err, ErrSequenceState) && !errors.Is(err, ErrCacheInUse) && !errors.Is(err, ErrNoHostTier) &&
			!errors.Is(err, ErrPinBudget) && !errors.Is(err, ErrUnknownPin) {
			t.Fatalf("step %d %s: error %v wraps no sentinel", a.step, what, err)
		}
	}
	a.after(t, what)
	return err
}

// after checks the manager after a call (refused or not).
func (a *auditRig) after(t *rapid.T, what string) {
	what = fmt.Sprintf("step %d %s", a.step, what)
	if err := a.m.Check(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	st := a.m.Stats()
	if st.FreeBlocks+st.CachedBlocks+st.UsedBlocks != st.UsableBlocks || st.PeakUsedBlocks < st.UsedBlocks ||
		st.Running+st.Waiting != st.Sequences || st.PrefixHitTokens > st.PrefixQueryTokens ||
		st.PrefixHitBlocks > st.PrefixQueryBlocks {
		t.Fatalf("%s: inconsistent stats %+v (%d live handles)", what, st, len(a.ids))
	}
	if tr := st.Tiers; a.m.tier != nil {
		if tr.HostFree+tr.HostCached+tr.HostUsed != tr.HostBlocks {
			t.Fatalf("%s: host tier %+v does not add up", what, tr)
		}
		cached := 0
		for g := range a.m.ntables() {
			gs, _ := a.m.TierStatsGroup(g)
			cached += gs.HostCached
		}
		if cached != tr.HostCached {
			t.Fatalf("%s: the groups' host cached blocks add up to %d, the tier's %d", what, cached, tr.HostCached)
		}
	}
	if ps := a.m.PinStats(); ps.PinnedBlocks > ps.Budget || ps.PeakPinnedBlocks < ps.PinnedBlocks || ps.PinnedBlocks > st.UsedBlocks {
		t.Fatalf("%s: pin stats %+v with %d used blocks", what, ps, st.UsedBlocks)
	}
	if a.m.ret.ckpt && rapid.Bool().Draw(t, "takeCheckpoints") {
		// A server takes them once a step; sometimes a step passes
		// (the checkpoint of a sequence appended to is dropped).
		a.m.TakeCheckpoints(nil)
	}
	a.directives(t, what)
	for _, e := range a.m.TakePinEvents(nil) {
		a.pinEvents[e.Kind]++
		if e.Now != a.m.now && e.Kind != PinExpired || e.Kind == PinExpired && e.Now > a.m.now {
			t.Fatalf("%s: pin event %+v at time %d", what, e, a.m.now)
		}
	}
	if ps := a.m.PinStats(); ps.Made != a.pinEvents[Pinned] || ps.Unpinned != a.pinEvents[Unpinned] ||
		ps.Expired != a.pinEvents[PinExpired] || ps.Rejected != a.pinEvents[PinRejected] {
		t.Fatalf("%s: pin stats %+v, pin events by kind %v", what, ps, a.pinEvents)
	}
	for id, hs := range a.promised {
		if _, err := a.m.lookupPin(id); err != nil {
			delete(a.promised, id) // unpinned or expired
			continue
		}
		if hit := a.deviceHit(hs); hit != len(hs) {
			t.Fatalf("%s: pin %#x holds %d blocks of a prefix that hits %d", what, uint64(id), len(hs), hit)
		}
	}
	for i := range a.m.pins.pins {
		if p := &a.m.pins.pins[i]; p.live && p.until != 0 && p.until <= a.m.now {
			t.Fatalf("%s: pin %d expired at %d, still live at %d", what, i, p.until, a.m.now)
		}
	}
	if a.m.bp.events.on() {
		a.r.drain(t, a.m)
		a.r.check(t, a.m, what)
	}
}

func (a *auditRig) promise(id PinID, hs []Hash) {
	if a.promised == nil {
		a.promised = map[PinID][]Hash{}
	}
	a.promised[id] = hs
}

// deviceHit returns the blocks of hs a lookup finds on the device, in
// every group (the hit of a sequence whose hashes are hs and which may
// hit its last token).
func (a *auditRig) deviceHit(hs []Hash) int {
	m := a.m
	if !m.hybrid() {
		k := 0
		for ; k < len(hs); k++ {
			if _, ok := m.bp.index.get(&hs[k]); !ok {
				break
			}
		}
		return k
	}
	var probe sequence
	probe.hashes = hs
	for limit := len(hs); limit > 0; {
		hit := m.lookupGroups(&probe, limit)
		onHost := slices.ContainsFunc(m.hits[:hit], func(b allocator.BlockID) bool { return b < 0 }) ||
			slices.ContainsFunc(m.ret.hitPages, func(b allocator.BlockID) bool { return b < 0 })
		for _, row := range m.ghits {
			onHost = onHost || slices.ContainsFunc(row, func(b allocator.BlockID) bool { return b < 0 })
		}
		if !onHost {
			return hit
		}
		limit = hit - 1
	}
	return 0
}

// writes builds the batch of the n tokens just appended to running id
// (with a split-KV plan, sometimes) and requires every slot they are
// written to to lie in a block no one else holds: a shared block is never
// written in place.
func (a *auditRig) writes(t *rapid.T, id SeqID, n int) {
	m := a.m
	if s, _ := m.seq(id); s.state != seqRunning {
		return
	}
	var b Batch
	if rapid.Bool().Draw(t, "split") {
		b.SplitUnits = rapid.IntRange(1, 5).Draw(t, "units")
	}
	sched := []Scheduled{{ID: id, NewTokens: n}}
	if err := m.BuildBatch(&b, sched); err != nil {
		t.Fatalf("step %d BuildBatch(%v, %d new tokens): %v", a.step, id, n, err)
	}
	a.copies += len(b.Copies)
	for _, w := range b.Swaps {
		a.swapTaken(w)
	}
	if b.SplitUnits > 0 {
		if err := b.Split.CheckFrom(b.FirstBlocks, b.BlocksPerSeq); err != nil {
			t.Fatalf("step %d: split plan: %v", a.step, err)
		}
	}
	a.slotsOwned(t, &b)
	if err := checkBatchReads(m, &b, sched); err != nil {
		t.Fatalf("step %d: BuildBatch(%v, %d new tokens): %v", a.step, id, n, err)
	}
}

// slotsOwned requires every slot of b's new tokens to lie in a block that
// only its sequence holds: a shared block is never written in place.
func (a *auditRig) slotsOwned(t *rapid.T, b *Batch) {
	m := a.m
	check := func(g int, slots []int64) {
		for _, sl := range slots {
			blk := allocator.BlockID(sl / int64(m.bs))
			if blk == nullBlock || m.bp.pool.RefCount(blk) != 1 {
				t.Fatalf("step %d: a new token of %v goes to slot %d of group %d's block %d, held %d times", a.step, b.Seqs, sl, g, blk, m.bp.pool.RefCount(blk))
			}
		}
	}
	check(0, b.Slots)
	for g, slots := range b.GroupSlots {
		if m.cfg.Groups[g+1].Kind != Shared {
			check(g+1, slots)
		}
	}
}

func (a *auditRig) swapTaken(w Swap) {
	if w.Kind == DeviceCopy {
		a.copies++
		return
	}
	if a.swaps == nil {
		a.swaps = map[[2]int]uint64{}
	}
	a.swaps[[2]int{w.Group, int(w.Kind)}]++
}

// directives takes the pending directives and requires the stats'
// counters of copies, swaps, offloads and onboards to count them.
func (a *auditRig) directives(t *rapid.T, what string) {
	m := a.m
	a.copies += len(m.TakeCopies(nil))
	if a.swaps == nil {
		a.swaps = map[[2]int]uint64{}
	}
	for _, w := range m.TakeSwaps(nil) {
		a.swapTaken(w)
	}
	st := m.Stats()
	if uint64(a.copies) != st.Copies {
		t.Fatalf("%s: %d copy directives, Stats.Copies %d", what, a.copies, st.Copies)
	}
	if m.tier == nil {
		return
	}
	var all [DeviceCopy]uint64
	for g := range m.ntables() {
		gs, _ := m.TierStatsGroup(g)
		for k, n := range map[SwapKind]uint64{SwapOut: gs.SwapOutBlocks, SwapIn: gs.SwapInBlocks, Offload: gs.Offloads, Onboard: gs.Onboards} {
			if got := a.swaps[[2]int{g, int(k)}]; got != n {
				t.Fatalf("%s: group %d: %d %v directives, its stats count %d", what, g, got, k, n)
			}
			all[k] += n
		}
	}
	tr := st.Tiers
	if all[SwapOut] != tr.SwapOutBlocks || all[SwapIn] != tr.SwapInBlocks || all[Offload] != tr.Offloads || all[Onboard] != tr.Onboards {
		t.Fatalf("%s: the groups count %v directives (by kind), the tier %+v", what, all, tr)
	}
}

func (a *auditRig) prompt(t *rapid.T, bs int) []int32 {
	// rapid draws small values most: count the branch from the end, so
	// most prompts share long prefixes (hits, branch points, checkpoints).
	return drawBranchingPrompt(t, 5*bs, true)
}

// badSeq returns a handle no live sequence has: a freed one, one of the
// next generation of a live slot, one past the slots, or zero.
func (a *auditRig) badSeq(t *rapid.T) SeqID {
	switch rapid.IntRange(0, 3).Draw(t, "badSeq") {
	case 0:
		if len(a.dead) > 0 {
			id := rapid.SampledFrom(a.dead).Draw(t, "dead")
			if _, err := a.m.seq(id); err != nil {
				return id
			}
		}
	case 1:
		if len(a.ids) > 0 {
			idx, gen := rapid.SampledFrom(a.ids).Draw(t, "live").parts()
			return makeSeqID(idx, gen+1)
		}
	case 2:
		return makeSeqID(uint32(len(a.m.seqs)+3), 1)
	}
	return 0
}

// TestRefusedCallsChangeNothing drives a manager with a host tier, pins,
// retention, checkpoints and hybrid layouts through the operations of the
// less-travelled paths (swap, onboard, pins and their expiry, AdmitChunk,
// ResetCache, Uncompute, Truncate, Fork, Preempt) and through bad calls to
// every public method, and requires after each call: Check passes, the
// stats agree with each other, an event consumer that replays every event
// holds exactly the snapshot's blocks, and a refused call changed nothing
// (stats, pins, events, tier directives, tables, the index) but the
// counters its docs say a refusal counts. CI runs it at -rapid.checks=5000.
func TestRefusedCallsChangeNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		cfg := Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(6, 40).Draw(t, "blocks"),
			UnifiedFreeQueue: rapid.IntRange(0, 3).Draw(t, "unified") == 0,
			Events:           rapid.SampledFrom([]int{0, 1 << 14, 1 << 14, 2}).Draw(t, "events"),
			MaxWaiting:       rapid.SampledFrom([]int{0, 0, 2}).Draw(t, "maxWaiting"),
			Watermark:        rapid.SampledFrom([]float64{0, 0, 0.1}).Draw(t, "watermark"),
		}
		if rapid.IntRange(0, 3).Draw(t, "host") > 0 {
			cfg.HostBlocks = rapid.IntRange(2, 40).Draw(t, "hostBlocks")
			cfg.DisableOffload = rapid.IntRange(0, 4).Draw(t, "noOffload") == 0
			cfg.OffloadPriority = rapid.SampledFrom([]int{0, 0, 50}).Draw(t, "offloadPriority")
		}
		switch rapid.IntRange(0, 5).Draw(t, "policy") {
		case 0:
			cfg.Policy = eviction.NewARC
		case 1:
			cfg.Policy = eviction.NewS3FIFO
		case 2:
			cfg.Policy = eviction.NewPriority
		}
		switch rapid.IntRange(0, 9).Draw(t, "layout") {
		case 3:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 4*bs).Draw(t, "gwindow")}}
		case 4:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")}}
		case 5:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 4*bs).Draw(t, "chunk")}}
		case 6:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 4*bs).Draw(t, "gwindow")}, {Kind: Shared, Target: 1}}
		case 7: // several kinds (the default mode only): Hymba, SambaY
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: State, Pages: 1}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 4*bs).Draw(t, "gwindow")}, {Kind: Shared}}
			cfg.UnifiedFreeQueue = false
		case 8: // two windows
			w := rapid.IntRange(1, 4*bs).Draw(t, "gwindow")
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: w}, {Kind: SlidingWindow, Window: w + rapid.IntRange(1, 4*bs).Draw(t, "gwindow2")}}
			cfg.UnifiedFreeQueue = false
		case 9: // a chunk, a window and a state
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 4*bs).Draw(t, "chunk")}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 4*bs).Draw(t, "gwindow")}, {Kind: State, Pages: 1}}
			cfg.UnifiedFreeQueue = false
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a := &auditRig{m: m, r: replay{blocks: map[replayKey]int{}, parents: map[replayKey]*Hash{}}, next: 1 << 20}
		_ = m.SetPinBudget(rapid.IntRange(0, cfg.NumBlocks-1).Draw(t, "pinBudget"))
		a.after(t, "New")
		hybrid := len(cfg.Groups) > 0
		pick := func(label string) (int, SeqID) {
			i := rapid.IntRange(0, len(a.ids)-1).Draw(t, label)
			return i, a.ids[i]
		}
		// subset draws sequences in state want (mostly: sometimes any,
		// for the refusals).
		subset := func(label string, want seqState) []SeqID {
			any := rapid.IntRange(0, 3).Draw(t, label+"Any") == 0
			var ids []SeqID
			for _, id := range a.ids {
				if (any || m.seqAt(id).state == want) && rapid.Bool().Draw(t, label) {
					ids = append(ids, id)
				}
			}
			return ids
		}
		// pickIn picks a sequence in state want if there is one.
		pickIn := func(label string, want seqState) SeqID {
			var ids []SeqID
			for _, id := range a.ids {
				if m.seqAt(id).state == want {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 || rapid.IntRange(0, 3).Draw(t, label+"Any") == 0 {
				_, id := pick(label)
				return id
			}
			return rapid.SampledFrom(ids).Draw(t, label)
		}
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			op := rapid.IntRange(0, 25).Draw(t, "op")
			if len(a.ids) == 0 && op > 2 && op != 23 {
				op = rapid.IntRange(0, 2).Draw(t, "emptyOp")
			}
			switch op {
			case 0, 1: // Add, then Admit, AdmitChunk, or wait
				pr := a.prompt(t, bs)
				var opts SeqOptions
				if !hybrid && rapid.IntRange(0, 3).Draw(t, "windowed") == 0 {
					opts.Window = rapid.IntRange(1, 4*bs).Draw(t, "window")
				}
				if rapid.IntRange(0, 2).Draw(t, "retain") == 0 {
					opts.Retention = &Retention{Priority: rapid.IntRange(0, 100).Draw(t, "priority"), Ticks: int64(rapid.IntRange(0, 5).Draw(t, "ticks"))}
				}
				if rapid.IntRange(0, 4).Draw(t, "lora") == 0 {
					opts.LoRA = 3
				}
				var id SeqID
				if a.call(t, "Add", func() (err error) { id, err = m.Add(pr, &opts); return }) != nil {
					continue
				}
				a.ids = append(a.ids, id)
				switch rapid.IntRange(0, 3).Draw(t, "admit") {
				case 0, 1:
					a.admit(t, id)
				case 2:
					a.admitChunk(t, id, rapid.IntRange(1, 3*bs).Draw(t, "maxNew"))
				}
			case 2: // Pin a prompt's cached prefix
				pr := a.prompt(t, bs)
				until := int64(0)
				if rapid.Bool().Draw(t, "expires") {
					until = m.now + int64(rapid.IntRange(1, 5).Draw(t, "pinFor"))
				}
				var id PinID
				var n int
				if a.call(t, "Pin", func() (err error) { id, n, err = m.Pin(pr, nil, until); return }) == nil {
					a.pins = append(a.pins, id)
					hs, _ := m.BlockHashes(nil, pr, nil)
					a.promise(id, hs[:n/bs])
				}
			case 3, 4: // Append tokens
				_, id := pick("append")
				toks := make([]int32, rapid.IntRange(1, 2*bs+1).Draw(t, "toks"))
				for k := range toks {
					toks[k], a.next = a.next, a.next+1
				}
				if a.call(t, fmt.Sprintf("Append(%v, %d)", id, len(toks)), func() error { return m.Append(id, toks...) }) == nil {
					a.writes(t, id, len(toks))
				}
			case 5: // Free
				i, id := pick("free")
				if a.call(t, fmt.Sprintf("Free(%v)", id), func() error { return m.Free(id) }) == nil {
					a.dead = append(a.dead, id)
					a.ids = slices.Delete(a.ids, i, i+1)
				}
			case 6: // Preempt
				_, id := pick("preempt")
				a.call(t, fmt.Sprintf("Preempt(%v)", id), func() error { return m.Preempt(id) })
			case 7: // Admit a waiting sequence again
				id := pickIn("readmit", seqWaiting)
				if rapid.Bool().Draw(t, "readmitChunk") {
					a.admitChunk(t, id, rapid.IntRange(1, 3*bs).Draw(t, "maxNew"))
				} else {
					a.admit(t, id)
				}
			case 8: // SwapOut a group of sequences
				ids := subset("swapOut", seqRunning)
				a.call(t, fmt.Sprintf("SwapOut(%v)", ids), func() error { return m.SwapOut(ids...) })
			case 9: // SwapIn (CanSwapIn first: it changes nothing)
				ids := subset("swapIn", seqSwapped)
				var can Admission
				var need int
				cerr := a.call(t, fmt.Sprintf("CanSwapIn(%v)", ids), func() (err error) { can, need, err = m.CanSwapIn(ids...); return })
				used := m.Stats().UsedBlocks
				err := a.call(t, fmt.Sprintf("SwapIn(%v)", ids), func() error { return m.SwapIn(ids...) })
				if cerr != nil {
					if err == nil || err.Error() != strings.Replace(cerr.Error(), "CanSwapIn", "SwapIn", 1) {
						t.Fatalf("step %d SwapIn(%v): %v, CanSwapIn %v", a.step, ids, err, cerr)
					}
				} else {
					a.agree(t, fmt.Sprintf("SwapIn(%v)", ids), can, err)
				}
				if err == nil && m.Stats().UsedBlocks-used > need {
					t.Fatalf("step %d SwapIn(%v) took %d blocks, CanSwapIn said %d", a.step, ids, m.Stats().UsedBlocks-used, need)
				}
			case 10: // Onboard
				id := pickIn("onboard", seqWaiting)
				a.call(t, fmt.Sprintf("Onboard(%v)", id), func() error { _, err := m.Onboard(id); return err })
			case 11: // Fork
				_, id := pick("fork")
				var child SeqID
				if a.call(t, fmt.Sprintf("Fork(%v)", id), func() (err error) { child, err = m.Fork(id); return }) == nil {
					a.ids = append(a.ids, child)
				}
			case 12: // Truncate
				_, id := pick("truncate")
				n, _ := m.Len(id)
				k := rapid.IntRange(-1, n+1).Draw(t, "keep")
				a.call(t, fmt.Sprintf("Truncate(%v, %d of %d)", id, k, n), func() error { return m.Truncate(id, k) })
			case 13: // Uncompute
				_, id := pick("uncompute")
				n, _ := m.Len(id)
				k := rapid.IntRange(-1, n+1).Draw(t, "computed")
				a.call(t, fmt.Sprintf("Uncompute(%v, %d of %d)", id, k, n), func() error { return m.Uncompute(id, k) })
			case 14: // Unpin or ExtendPin, of a live or gone pin
				ids := slices.Concat(a.pins, a.gone, []PinID{0, 1 << 40})
				id := rapid.SampledFrom(ids).Draw(t, "pin")
				if rapid.Bool().Draw(t, "unpin") {
					pins := m.PinStats().Pins
					if a.call(t, fmt.Sprintf("Unpin(%#x)", id), func() error { return m.Unpin(id) }) == nil {
						a.gone = append(a.gone, id)
						if _, err := m.lookupPin(id); err == nil || m.PinStats().Pins != pins-1 {
							t.Fatalf("step %d: Unpin(%#x) left it live (%v), %d pins of %d", a.step, uint64(id), err, m.PinStats().Pins, pins)
						}
					}
				} else {
					until := m.now + int64(rapid.IntRange(-1, 5).Draw(t, "extend"))
					a.call(t, fmt.Sprintf("ExtendPin(%#x, %d)", id, until), func() error { return m.ExtendPin(id, until) })
				}
			case 15: // time passes: pins expire, retention priorities revert
				now := m.now + int64(rapid.IntRange(-1, 4).Draw(t, "advance"))
				a.call(t, fmt.Sprintf("Advance(%d)", now), func() error { m.Advance(now); return nil })
			case 16: // ResetCache (refused while blocks are held)
				if rapid.Bool().Draw(t, "quiesce") {
					// Every sequence and pin gone first, so that it runs.
					for _, id := range a.ids {
						a.call(t, fmt.Sprintf("Free(%v)", id), func() error { return m.Free(id) })
					}
					a.dead, a.ids = append(a.dead, a.ids...), a.ids[:0]
					for _, id := range a.pins {
						if _, err := m.lookupPin(id); err == nil {
							a.call(t, fmt.Sprintf("Unpin(%#x)", id), func() error { return m.Unpin(id) })
						}
					}
					a.gone, a.pins = append(a.gone, a.pins...), nil
				}
				if a.call(t, "ResetCache", m.ResetCache) == nil {
					if st := m.Stats(); st.CachedBlocks != 0 && !m.cfg.UnifiedFreeQueue || st.Tiers.HostCached != 0 {
						t.Fatalf("step %d: ResetCache left %d device and %d host blocks cached", a.step, st.CachedBlocks, st.Tiers.HostCached)
					}
				}
			case 17: // the step's directives
				m.TakeSwaps(nil)
				m.TakeCopies(nil)
				m.TakeCheckpoints(nil)
				a.after(t, "Take")
			case 18: // PinHashes of a live sequence's hashes
				_, id := pick("pinHashes")
				s, _ := m.seq(id)
				hs := slices.Clone(s.hashes)
				until := m.now + int64(rapid.IntRange(-1, 5).Draw(t, "pinUntil"))
				var pid PinID
				var n int
				if a.call(t, "PinHashes", func() (err error) { pid, n, err = m.PinHashes(hs, until); return }) == nil {
					a.pins = append(a.pins, pid)
					a.promise(pid, hs[:n/bs])
				}
			case 19: // SetPinBudget, in range or not
				b := rapid.IntRange(-1, cfg.NumBlocks).Draw(t, "budget")
				a.call(t, fmt.Sprintf("SetPinBudget(%d)", b), func() error { return m.SetPinBudget(b) })
			case 20: // speculative tokens and their verdict
				_, id := pick("spec")
				toks := make([]int32, rapid.IntRange(1, 2*bs).Draw(t, "drafts"))
				for k := range toks {
					toks[k], a.next = a.next, a.next+1
				}
				if a.call(t, "AppendSpeculative", func() error { return m.AppendSpeculative(id, toks...) }) == nil {
					a.writes(t, id, len(toks))
				}
				n := rapid.IntRange(-1, len(toks)+1).Draw(t, "accept")
				a.call(t, fmt.Sprintf("AcceptSpeculative(%d)", n), func() error { return m.AcceptSpeculative(id, n) })
			case 23: // Create, which CanAdmitTokens foretells for a prompt without hits
				pr := a.prompt(t, bs)
				for k := range pr {
					pr[k] += 1 << 24 // no prompt of a.prompt shares its blocks
				}
				can := m.CanAdmitTokens(len(pr))
				var id SeqID
				err := a.call(t, fmt.Sprintf("Create(%d tokens)", len(pr)), func() (err error) { id, _, err = m.Create(pr, nil); return })
				if err == nil {
					a.ids = append(a.ids, id)
				} else if can == AdmitOK {
					t.Fatalf("step %d Create(%d tokens): %v, CanAdmitTokens %v", a.step, len(pr), err, can)
				}
			case 24: // sequences from hashes: a live sequence's, or a prefix of them
				_, src := pick("fromHashes")
				sq, _ := m.seq(src)
				hs := slices.Clone(sq.hashes[:rapid.IntRange(0, len(sq.hashes)).Draw(t, "nHashes")])
				n := len(hs)*bs + rapid.IntRange(0, 2*bs).Draw(t, "extra")
				var id SeqID
				what := fmt.Sprintf("AddFromHashes(%d hashes, %d tokens)", len(hs), n)
				create := rapid.Bool().Draw(t, "createFromHashes")
				if create {
					what = "Create" + what[3:]
				}
				if a.call(t, what, func() (err error) {
					if create {
						id, _, err = m.CreateFromHashes(hs, n, nil)
					} else {
						id, err = m.AddFromHashes(hs, n, nil)
					}
					return
				}) == nil {
					a.ids = append(a.ids, id)
				}
			case 25: // a decode step: AppendStep, or DecodeStep into a batch
				ids := subset("step", seqRunning)
				sched := make([]Scheduled, len(ids))
				toks := make([]int32, len(ids))
				for i, id := range ids {
					sched[i] = Scheduled{ID: id, NewTokens: 1}
					toks[i], a.next = a.next, a.next+1
				}
				decode := rapid.Bool().Draw(t, "decodeStep")
				var b Batch
				err := a.call(t, fmt.Sprintf("step(%v, decode %v)", ids, decode), func() (err error) {
					if decode {
						a.partial, err = m.DecodeStep(&b, sched, toks)
						if err == nil { // the directives the batch took
							a.copies += len(b.Copies)
							for _, w := range b.Swaps {
								a.swapTaken(w)
							}
						}
					} else {
						a.partial, err = m.AppendStep(sched, toks)
					}
					return
				})
				if err == nil && a.partial != len(sched) {
					t.Fatalf("step %d: a step of %d entries returned %d", a.step, len(sched), a.partial)
				}
				a.partial = 0
				if decode && err == nil {
					a.slotsOwned(t, &b)
					if err := checkBatchReads(m, &b, sched); err != nil {
						t.Fatalf("step %d: DecodeStep: %v", a.step, err)
					}
				}
			case 21, 22: // a bad call to any method
				a.badCall(t, cfg, pick)
			}
			var running, swapped int
			for _, id := range a.ids {
				running += b2i(m.seqAt(id).state == seqRunning)
				swapped += b2i(m.seqAt(id).state == seqSwapped)
			}
			if st := m.Stats(); st.Sequences != len(a.ids) || st.Running != running || st.Tiers.Swapped != swapped {
				t.Fatalf("step %d: %d sequences (%d run, %d swapped out), the stats say %d (%d, %d)", a.step, len(a.ids), running, swapped, st.Sequences, st.Running, st.Tiers.Swapped)
			}
		}
	})
}

// admit admits id (Admit) and requires CanAdmit's answer.
func (a *auditRig) admit(t *rapid.T, id SeqID) {
	can, cerr := a.m.CanAdmit(id)
	swapped := a.m.seqAt(id).state == seqSwapped // CanAdmit answers for SwapIn
	// CanAdmitCached: CanAdmit's answer (ErrSequenceState for a swapped
	// sequence), changing nothing, and Admit's cached tokens.
	before := observe(a.m, a.all())
	can2, want, cerr2 := a.m.CanAdmitCached(id)
	if after := observe(a.m, a.all()); !reflect.DeepEqual(before, after) {
		t.Fatalf("step %d CanAdmitCached(%v) changed the manager:%s", a.step, id, diffObserved(before, after))
	}
	switch {
	case swapped && !errors.Is(cerr2, ErrSequenceState):
		t.Fatalf("step %d CanAdmitCached(%v) of a swapped-out sequence: %v", a.step, id, cerr2)
	case !swapped && (fmt.Sprint(cerr2) != strings.Replace(fmt.Sprint(cerr), "CanAdmit", "CanAdmitCached", 1) || can2 != can):
		t.Fatalf("step %d CanAdmitCached(%v): %v, %v; CanAdmit %v, %v", a.step, id, can2, cerr2, can, cerr)
	}
	var cached int
	err := a.call(t, fmt.Sprintf("Admit(%v)", id), func() (err error) { cached, err = a.m.Admit(id); return })
	if err == nil {
		a.hitReads(t, id, cached)
		if cached != want {
			t.Fatalf("step %d Admit(%v) cached %d tokens, CanAdmitCached said %d", a.step, id, cached, want)
		}
	}
	if swapped {
		if !errors.Is(err, ErrSequenceState) {
			t.Fatalf("step %d Admit(%v) of a swapped-out sequence: %v", a.step, id, err)
		}
		return
	}
	if cerr != nil {
		if err == nil || err.Error() != strings.Replace(cerr.Error(), "CanAdmit", "Admit", 1) {
			t.Fatalf("step %d Admit(%v): %v, CanAdmit %v", a.step, id, err, cerr)
		}
		return
	}
	a.agree(t, fmt.Sprintf("Admit(%v)", id), can, err)
}

// admitChunk admits id (AdmitChunk) and requires CanAdmitChunk's answer.
func (a *auditRig) admitChunk(t *rapid.T, id SeqID, maxNew int) {
	can, cerr := a.m.CanAdmitChunk(id, maxNew)
	var cached int
	err := a.call(t, fmt.Sprintf("AdmitChunk(%v, %d)", id, maxNew), func() (err error) { cached, _, err = a.m.AdmitChunk(id, maxNew, nil); return })
	if err == nil {
		a.hitReads(t, id, cached)
	}
	if cerr != nil {
		if err == nil || err.Error() != strings.Replace(cerr.Error(), "CanAdmitChunk", "AdmitChunk", 1) {
			t.Fatalf("step %d AdmitChunk(%v, %d): %v, CanAdmitChunk %v", a.step, id, maxNew, err, cerr)
		}
		return
	}
	a.agree(t, fmt.Sprintf("AdmitChunk(%v, %d)", id, maxNew), can, err)
}

// hitReads requires an admission that reused cached tokens of id to have
// reused, in every sliding-window and chunked group, the blocks the query
// of the first token it computes reads: none of them is null.
func (a *auditRig) hitReads(t *rapid.T, id SeqID, cached int) {
	m := a.m
	s, _ := m.seq(id)
	if cached == 0 || !m.hybrid() {
		if cached > 0 && s.opts.Window > 0 {
			for k := max(0, cached-s.opts.Window+1) / m.bs; k < len(s.blocks); k++ {
				if s.blocks[k] == nullBlock {
					t.Fatalf("step %d: %v hit %d tokens, its window of %d reads block %d, null (table %v)", a.step, id, cached, s.opts.Window, k, s.blocks)
				}
			}
		}
		return
	}
	for g := 1; g < len(m.cfg.Groups); g++ {
		if !m.kinds[g].local() {
			continue
		}
		table := s.ext[g-1].blocks
		for k := m.kinds[g].live(cached); k < len(table); k++ {
			if table[k] == nullBlock {
				t.Fatalf("step %d: %v hit %d tokens, the query at %d reads block %d of group %d, null (table %v)", a.step, id, cached, cached, k, g, table)
			}
		}
	}
}

// agree requires a call's outcome to be the one a Can* method foretold.
func (a *auditRig) agree(t *rapid.T, what string, can Admission, err error) {
	if ok := (can == AdmitOK && err == nil) || (can == AdmitLater && errors.Is(err, ErrNoSpace)) ||
		(can == AdmitNever && errors.Is(err, ErrNever)); !ok {
		t.Fatalf("step %d %s: %v, its Can* answer %v", a.step, what, err, can)
	}
}

// badCall makes a call every manager must refuse, with a clear error.
func (a *auditRig) badCall(t *rapid.T, cfg Config, pick func(string) (int, SeqID)) {
	m := a.m
	bad := a.badSeq(t)
	_, live := pick("live")
	type call struct {
		what string
		fn   func() error
	}
	calls := []call{
		{"Admit(bad)", func() error { _, err := m.Admit(bad); return err }},
		{"CanAdmit(bad)", func() error { _, err := m.CanAdmit(bad); return err }},
		{"AdmitChunk(bad)", func() error { _, _, err := m.AdmitChunk(bad, 1, nil); return err }},
		{"AdmitChunk(live, 0)", func() error { _, _, err := m.AdmitChunk(live, 0, nil); return err }},
		{"CanAdmitChunk(live, -1)", func() error { _, err := m.CanAdmitChunk(live, -1); return err }},
		{"Append(bad)", func() error { return m.Append(bad, 1) }},
		{"AppendSpeculative(bad)", func() error { return m.AppendSpeculative(bad, 1) }},
		{"AcceptSpeculative(live, -1)", func() error { return m.AcceptSpeculative(live, -1) }},
		{"Truncate(live, -1)", func() error { return m.Truncate(live, -1) }},
		{"Truncate(bad)", func() error { return m.Truncate(bad, 0) }},
		{"Uncompute(live, -1)", func() error { return m.Uncompute(live, -1) }},
		{"Fork(bad)", func() error { _, err := m.Fork(bad); return err }},
		{"Preempt(bad)", func() error { return m.Preempt(bad) }},
		{"Free(bad)", func() error { return m.Free(bad) }},
		{"Slot(live, -1)", func() error { _, err := m.Slot(live, -1); return err }},
		{"TableGroup(live, groups)", func() error { _, err := m.TableGroup(live, m.ntables()); return err }},
		{"SwapOut(live, live)", func() error { return m.SwapOut(live, live) }},
		{"SwapOut()", func() error { return m.SwapOut() }},
		{"SwapOut(live, bad)", func() error { return m.SwapOut(live, bad) }},
		{"SwapIn(live, live)", func() error { return m.SwapIn(live, live) }},
		{"SwapIn(live, bad)", func() error { return m.SwapIn(live, bad) }},
		{"CanSwapIn(bad)", func() error { _, _, err := m.CanSwapIn(bad); return err }},
		{"Onboard(bad)", func() error { _, err := m.Onboard(bad); return err }},
		{"TierStatsGroup(-1)", func() error { _, err := m.TierStatsGroup(-1); return err }},
		{"PinHashes(past)", func() error {
			past := m.now // until 0 means no expiry
			if past == 0 {
				past = -1
			}
			_, _, err := m.PinHashes(nil, past)
			return err
		}},
		{"Pin(bad MM)", func() error {
			_, _, err := m.Pin([]int32{1, 2, 3}, &SeqOptions{MM: []MMRange{{Start: 2, End: 1, Hash: "x"}}}, 0)
			return err
		}},
		{"SetPinBudget(too many)", func() error { return m.SetPinBudget(cfg.NumBlocks) }},
		{"Add(empty)", func() error { _, err := m.Add(nil, nil); return err }},
		{"Add(window too long)", func() error { _, err := m.Add([]int32{1}, &SeqOptions{Window: -1}); return err }},
		{"Add(retention 101)", func() error {
			_, err := m.Add([]int32{1}, &SeqOptions{Retention: &Retention{Priority: 101}})
			return err
		}},
		{"Add(too long)", func() error { _, err := m.Add(make([]int32, m.cfg.MaxModelLen+1), nil); return err }},
		{"AddFromHashes(too many hashes)", func() error {
			_, err := m.AddFromHashes([]Hash{{}, {}}, m.bs, nil)
			return err
		}},
		{"Create(empty)", func() error { _, _, err := m.Create(nil, nil); return err }},
		{"BlockHashes(bad MM)", func() error {
			_, err := m.BlockHashes(nil, []int32{1}, &SeqOptions{MM: []MMRange{{Start: -1, End: 1}}})
			return err
		}},
		{"BuildBatch(bad)", func() error { var b Batch; return m.BuildBatch(&b, []Scheduled{{ID: bad, NewTokens: 1}}) }},
		{"BuildBatch(live twice)", func() error {
			var b Batch
			return m.BuildBatch(&b, []Scheduled{{ID: live, NewTokens: 1}, {ID: live, NewTokens: 1}})
		}},
		{"BuildBatch(live, 0 new)", func() error { var b Batch; return m.BuildBatch(&b, []Scheduled{{ID: live, NewTokens: 0}}) }},
		{"BuildBatch(nil)", func() error { return m.BuildBatch(nil, nil) }},
		{"AppendStep(live twice)", func() error {
			_, err := m.AppendStep([]Scheduled{{ID: live, NewTokens: 1}, {ID: live, NewTokens: 1}}, []int32{1, 2})
			return err
		}},
		{"AppendStep(2 entries, 1 token)", func() error {
			_, err := m.AppendStep([]Scheduled{{ID: live, NewTokens: 1}, {ID: bad, NewTokens: 1}}, []int32{1})
			return err
		}},
		{"AppendStep(bad)", func() error { _, err := m.AppendStep([]Scheduled{{ID: bad, NewTokens: 1}}, []int32{1}); return err }},
		{"DecodeStep(live, 2 new)", func() error {
			var b Batch
			_, err := m.DecodeStep(&b, []Scheduled{{ID: live, NewTokens: 2}}, []int32{1})
			return err
		}},
		{"DecodeStep(nil)", func() error { _, err := m.DecodeStep(nil, nil, nil); return err }},
		{"AddHashed(short)", func() error {
			_, err := m.AddHashed(make([]int32, 2*m.bs), []Hash{{}}, nil)
			return err
		}},
		{"Slot(live, len)", func() error { n, _ := m.Len(live); _, err := m.Slot(live, n); return err }},
		{"AcceptSpeculative(live, spec+1)", func() error { return m.AcceptSpeculative(live, m.seqAt(live).spec+1) }},
		{"TableGroup(live, -1)", func() error { _, err := m.TableGroup(live, -1); return err }},
		{"Append(live, -1)", func() error { return m.Append(live, -1) }},
		{"Append(live)", func() error { return m.Append(live) }},
		{"Add(negative token)", func() error { _, err := m.Add([]int32{1, -5}, nil); return err }},
		{"ExtendPin(live pin, past)", func() error {
			for _, id := range a.pins {
				if _, err := m.lookupPin(id); err == nil {
					past := m.now
					if past == 0 {
						past = -1
					}
					return m.ExtendPin(id, past)
				}
			}
			return m.ExtendPin(0, 1)
		}},
		{"SetPinBudget(below pinned)", func() error {
			if m.pins.distinct == 0 {
				return m.SetPinBudget(-1)
			}
			return m.SetPinBudget(m.pins.distinct - 1)
		}},
	}
	c := rapid.SampledFrom(calls).Draw(t, "badCall")
	if err := a.call(t, c.what, c.fn); err == nil {
		t.Fatalf("%s (live %v, bad %v) succeeded", c.what, live, bad)
	}
}

// TestCanAdmitTokensCountsEveryGroup: CanAdmitTokens counts the blocks a
// new sequence takes in each group as admission does, a State group's
// pages (not a block per block of tokens) and a Shared group's none (it
// reads its target's table), so its answer is Create's for a prompt
// without hits.
func TestCanAdmitTokensCountsEveryGroup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []Group
		blocks int // usable
		tokens int
	}{
		// 1 block of tokens + 2 state pages: 3 blocks, not 2.
		{"state pages", []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}, 2, 1},
		{"state pages fit", []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}, 3, 1},
		// 2 blocks of tokens in the full and the window group, none of
		// its own in the shared one: 4 blocks, not 6.
		{"shared group", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}, {Kind: Shared, Target: 1}}, 4, 8},
		{"shared group short", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}, {Kind: Shared, Target: 1}}, 3, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: tc.blocks + 1, Groups: tc.groups})
			if err != nil {
				t.Fatal(err)
			}
			can := m.CanAdmitTokens(tc.tokens)
			_, _, err = m.Create(make([]int32, tc.tokens), nil)
			if ok := (can == AdmitOK && err == nil) || (can == AdmitLater && errors.Is(err, ErrNoSpace)) ||
				(can == AdmitNever && errors.Is(err, ErrNever)); !ok {
				t.Fatalf("CanAdmitTokens(%d) = %v, Create: %v", tc.tokens, can, err)
			}
		})
	}
}

// TestPlacementHybridDevice: a placement whose device config names KV
// cache groups either refuses it at NewPlacement or places sequences
// without panicking (its dry run counted one block per logical block,
// and a device with a window group takes two).
func TestPlacementHybridDevice(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Devices: 1, Device: Config{BlockSize: 1, NumBlocks: 3,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 1}}}})
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("NewPlacement: %v, want ErrInvalid", err)
		}
		return
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Create of 2 tokens on a device of 2 blocks with a window group: panic %v", r)
			}
		}()
		_, err = p.Create([]int32{1, 2}, 1)
	}()
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPlacementNeverPastTheLayout: under Contiguous a shard longer than a
// device's pool caps a sequence at the pool (the first shard fills it
// before the next takes a block), so a longer prompt on an empty
// placement can never fit: ErrNever, not ErrNoSpace ("later").
func TestPlacementNeverPastTheLayout(t *testing.T) {
	p, err := NewPlacement(PlacementConfig{Devices: 2, Device: Config{BlockSize: 1, NumBlocks: 5}, ShardBlocks: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(make([]int32, 5), 2); !errors.Is(err, ErrNever) {
		t.Fatalf("Create of 5 tokens, the first shard of 10 blocks on a device of 4: %v, want ErrNever", err)
	}
	if _, err := p.Create(make([]int32, 4), 2); err != nil {
		t.Fatalf("Create of 4 tokens: %v", err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPinKeepsHybridHit: a pin keeps its prefix a hit on a hybrid manager
// too: the window or chunk blocks and the state checkpoint a hit needs are
// pinned with the full-attention blocks (a pin of the full-attention
// blocks alone kept them resident, while evictions took the window before
// the prefix's end, or the checkpoint, and with it the hit).
func TestPinKeepsHybridHit(t *testing.T) {
	for _, groups := range [][]Group{
		nil,
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 6}, {Kind: Shared, Target: 1}},
		{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: 8}},
		{{Kind: FullAttention}, {Kind: State, Pages: 2}},
	} {
		m, err := New(Config{BlockSize: 4, NumBlocks: 61, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPinBudget(20); err != nil {
			t.Fatal(err)
		}
		// The prefix of 8 blocks, then tails: the second sequence
		// branches there, where a State group takes a checkpoint.
		prompt := func(tail int32) []int32 {
			pr := make([]int32, 44)
			for i := range pr {
				pr[i] = int32(i)
				if i >= 32 {
					pr[i] += 100 * tail
				}
			}
			return pr
		}
		for tail := range int32(2) {
			id, _, err := m.Create(prompt(tail+1), nil)
			if err != nil {
				t.Fatal(err)
			}
			m.TakeCheckpoints(nil)
			m.EndStep() // the step computing the prompt and checkpoint ran
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		_, pinned, err := m.Pin(prompt(0)[:32], &SeqOptions{AllowFullHit: true}, 0)
		if err != nil || pinned != 32 {
			t.Fatalf("%v: Pin: %d tokens, %v", groups, pinned, err)
		}
		// Evict everything the pin does not hold: hold every other block
		// (shelved ones too), then let them go.
		var held []SeqID
		for k := int32(0); ; k++ {
			id, _, err := m.Create([]int32{1000 + k, 1, 2, 3}, nil)
			if errors.Is(err, ErrNoSpace) {
				break
			} else if err != nil {
				t.Fatalf("%v: Create: %v", groups, err)
			}
			held = append(held, id)
		}
		for _, id := range held {
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		if _, hit, err := m.Create(prompt(3), nil); err != nil || hit != pinned {
			t.Fatalf("%v: the pinned prompt hits %d tokens (%v), the pin holds %d", groups, hit, err, pinned)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoredEventsNameNewBlocksOnly: a commit that passes blocks still
// cached (shared with a fork that kept them) reports only the blocks it
// stored. Here a fork's chunk moved on and left the parent alone on its
// block 1 of the chunked group, Uncompute dropped that block's content and
// kept the shared block 2's, and the next commit stored block 1 again:
// its event named block 2 too, stored a second time for a consumer that
// counts copies, which the snapshot lists once.
func TestStoredEventsNameNewBlocksOnly(t *testing.T) {
	m, err := New(Config{BlockSize: 1, NumBlocks: 8, Events: 100, Groups: []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	r := replay{blocks: map[replayKey]int{}, parents: map[replayKey]*Hash{}}
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		r.apply(t, m.DrainEvents(nil))
		r.check(t, m, what)
		if err := m.Check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	id, _, err := m.Create([]int32{0}, nil)
	step("Create", err)
	step("Append", m.Append(id, 1))
	step("Append", m.Append(id, 2))
	c, err := m.Fork(id)
	step("Fork", err)
	step("AppendSpeculative to the fork", m.AppendSpeculative(c, 3)) // its chunk leaves block 1
	step("AcceptSpeculative", m.AcceptSpeculative(c, 0))
	step("Uncompute", m.Uncompute(id, 0))
	step("AppendSpeculative", m.AppendSpeculative(id, 4)) // commits block 1 again
}

// TestNeverSaysWhatItNeeds: ErrNever from a hybrid admission names the
// blocks of every group it needs (it named group 0's: "needs 1 blocks,
// the pool has 2 usable", which fits), for Create, Admit and AdmitChunk
// (which names the peak of its chunked prefill, and the whole prompt's).
func TestNeverSaysWhatItNeeds(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 3, Groups: []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	const want = "needs 3 blocks, the pool has 2 usable"
	_, _, err = m.Create([]int32{1}, nil)
	if !errors.Is(err, ErrNever) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Create: %v, want ErrNever saying %q", err, want)
	}
	id, err := m.Add([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admit(id); !errors.Is(err, ErrNever) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Admit: %v, want ErrNever saying %q", err, want)
	}
	// AdmitChunk's never is the chunk-by-chunk peak (here the same).
	const chunked = "needs 3 blocks computed 1 tokens a step (3 admitted whole), the pool has 2 usable"
	if _, _, err := m.AdmitChunk(id, 1, nil); !errors.Is(err, ErrNever) || !strings.Contains(err.Error(), chunked) {
		t.Fatalf("AdmitChunk: %v, want ErrNever saying %q", err, chunked)
	}
}

// TestChunkedHitReadsItsChunk: a prefix hit on a ChunkedLocal group whose
// chunk is not a multiple of the block size covers the chunk of the first
// token computed after it: the blocks its query reads before it are
// cached and reused, never null. The lookup took vLLM's rule, which
// assumes aligned chunks: cut at the block where the chunk of the lookup's
// limit starts (block 2, position 8), it claimed a hit there whose chunk
// [5, 10) starts in block 1, which it left null.
func TestChunkedHitReadsItsChunk(t *testing.T) {
	const bs, chunk = 4, 5
	m, err := New(Config{BlockSize: bs, NumBlocks: 13, Groups: []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: chunk}}})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = m.Create([]int32{0}, nil)
	must(err)
	_, _, err = m.Create([]int32{1}, nil)
	must(err)
	pr := make([]int32, 17)
	for i := range pr {
		pr[i] = 1000 + int32(i)
	}
	// 17 tokens: the chunk moved on past blocks 0 to 2 of the chunked
	// group, whose blocks 1 and 2 the allocations took back.
	id, _, err := m.Create(pr[:16], nil)
	must(err)
	must(m.Append(id, pr[16]))
	must(m.Preempt(id))
	for _, g := range []int{0, 1} {
		for k, want := range []bool{true, g == 0, g == 0} {
			if _, ok := m.bp.findIn(&m.seqs[2].hashes[k], g); ok != want {
				t.Fatalf("setup: block %d of group %d cached %v", k, g, ok)
			}
		}
	}
	probe := slices.Clone(pr[:13])
	probe[12] = 1 << 20 // the lookup's limit is 3 blocks
	got, hit, err := m.Create(probe, nil)
	must(err)
	table, err := m.TableGroup(got, 1)
	must(err)
	for k := hit / chunk * chunk / bs; k < hit/bs; k++ {
		if table[k] == nullBlock {
			t.Fatalf("a hit of %d tokens: the query at %d reads chunk [%d, %d], but block %d of the chunked group is null (table %v)", hit, hit, hit/chunk*chunk, hit, k, table)
		}
	}
	must(m.Check())
}

// TestResetCacheNamesPins: ResetCache refused because pins hold blocks
// says so (it said "held by 0 running sequences"), and changes nothing.
func TestResetCacheNamesPins(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 8, Events: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(2); err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.EndStep() // the step computing it ran: a pin may hold it
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if _, n, err := m.Pin([]int32{1, 2, 3, 4}, nil, 0); err != nil || n != 4 {
		t.Fatalf("Pin: %d tokens, %v", n, err)
	}
	before := observe(m, nil)
	err = m.ResetCache()
	if !errors.Is(err, ErrCacheInUse) || !strings.Contains(err.Error(), "1 pin") {
		t.Fatalf("ResetCache with a pin: %v, want ErrCacheInUse naming the pin", err)
	}
	if after := observe(m, nil); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused ResetCache changed the manager:%s", diffObserved(before, after))
	}
}

// TestRetentionLapses: a retention priority with a duration (Ticks) holds
// until Manager.Advance reaches it, then the content is evicted as
// DefaultPriority content, and offloaded only while its priority clears
// Config.OffloadPriority.
func TestRetentionLapses(t *testing.T) {
	cached := func(m *Manager, prompt []int32) int {
		hs, err := m.BlockHashes(nil, prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range hs {
			if _, ok := m.bp.index.get(&hs[i]); ok {
				n++
			}
		}
		return n
	}
	a, b := []int32{1, 2}, []int32{3, 4}
	for _, lapse := range []bool{false, true} {
		// Low priority for 5 ticks: evicted before default content, until
		// it lapses; then default content released earlier goes first.
		m, err := New(Config{BlockSize: 1, NumBlocks: 5, Policy: eviction.NewPriority})
		if err != nil {
			t.Fatal(err)
		}
		m.Advance(10)
		for _, p := range []struct {
			prompt []int32
			opts   *SeqOptions
		}{{a, &SeqOptions{Retention: &Retention{Priority: 10, Ticks: 5}}}, {b, nil}} {
			id, _, err := m.Create(p.prompt, p.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		if lapse {
			m.Advance(15)
		}
		if _, _, err := m.Create([]int32{9}, nil); err != nil { // evicts one block
			t.Fatal(err)
		}
		if ca, cb := cached(m, a), cached(m, b); lapse && (ca != 2 || cb != 1) || !lapse && (ca != 1 || cb != 2) {
			t.Fatalf("lapsed %v: %d blocks of the low-priority prompt cached, %d of the other", lapse, ca, cb)
		}
	}
	for _, lapse := range []bool{false, true} {
		// High priority for 5 ticks, above the offload floor: offloaded
		// when evicted before it lapses, given up after.
		m, err := New(Config{BlockSize: 1, NumBlocks: 3, HostBlocks: 4, OffloadPriority: 50})
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := m.Create(a, &SeqOptions{Retention: &Retention{Priority: 90, Ticks: 5}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		if lapse {
			m.Advance(5)
		}
		if _, _, err := m.Create(b, nil); err != nil { // evicts both
			t.Fatal(err)
		}
		if off := m.Stats().Tiers.Offloads; lapse && off != 0 || !lapse && off != 2 {
			t.Fatalf("lapsed %v: %d blocks offloaded", lapse, off)
		}
	}
}

// TestSnapshotEventsKeepGroups: Snapshot.Events, replayed as BlockStored
// events, give back exactly the snapshot's blocks with their groups and
// parents. A hybrid snapshot lists a block of each group per content,
// parent before child across groups, and Events merged a group-1 block
// and the group-0 child after it into one event of group 1.
func TestSnapshotEventsKeepGroups(t *testing.T) {
	for _, groups := range [][]Group{nil, {{Kind: FullAttention}, {Kind: SlidingWindow, Window: 8}}, {{Kind: FullAttention}, {Kind: FullAttention}}} {
		m, err := New(Config{BlockSize: 1, NumBlocks: 20, Events: 100, HostBlocks: 4, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range [][]int32{{1, 2, 3, 4}, {1, 2, 5}, {7, 8, 9, 10, 11, 12, 13}} {
			id, _, err := m.Create(pr, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		var snap Snapshot
		m.Snapshot(&snap)
		type key struct {
			h, parent Hash
			hasParent bool
			medium    Medium
			group     int
		}
		want := map[key]int{}
		for _, b := range snap.Blocks {
			want[key{b.Hash, b.Parent, b.HasParent, b.Medium, b.Group}]++
		}
		for _, e := range snap.Events(nil) {
			for i, h := range e.Hashes {
				k := key{h, e.Parent, e.HasParent, e.Medium, e.Group}
				if i > 0 {
					k.parent, k.hasParent = e.Hashes[i-1], true
				}
				if want[k] == 0 {
					t.Fatalf("%v: Snapshot.Events stores %x (%v, group %d, parent %x), which the snapshot does not list", groups, h[:4], e.Medium, e.Group, k.parent[:4])
				}
				want[k]--
			}
		}
		for k, n := range want {
			if n != 0 {
				t.Fatalf("%v: Snapshot.Events leaves out %x (group %d)", groups, k.h[:4], k.group)
			}
		}
	}
}
