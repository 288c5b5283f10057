package paged_test

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// hostShadow extends the shadow KV store to the host tier: tier directives
// move records between device and host slots, as the server's transfers
// would move KV.
type hostShadow struct {
	slot    map[int64]uint64
	swaps   []paged.Swap
	swapped map[paged.SeqID]bool
}

// flushSwaps runs the pending tier directives in order, before the copies
// (flushCopies calls it first).
func (s *machine) flushSwaps() {
	if s.host == nil {
		return
	}
	s.host.swaps = s.m.TakeSwaps(s.host.swaps[:0])
	for _, d := range s.host.swaps {
		s.applyOne(d)
	}
}

// applyOne runs one tier directive on the shadow stores.
func (s *machine) applyOne(d paged.Swap) {
	{
		src, dst := s.shadow.slot, s.shadow.slot
		if d.Kind.SrcMedium() == paged.Host {
			src = s.host.slot
		}
		if d.Kind.DstMedium() == paged.Host {
			dst = s.host.slot
		}
		for off := range s.bs {
			from := int64(d.Src)*int64(s.bs) + int64(off)
			to := int64(d.Dst)*int64(s.bs) + int64(off)
			if v, ok := src[from]; ok {
				dst[to] = v
			} else {
				delete(dst, to)
			}
		}
	}
}

// tierPick draws up to max distinct sequences that are running (or
// swapped out).
func (s *machine) tierPick(t *rapid.T, swapped bool, max int) []paged.SeqID {
	var cands []paged.SeqID
	for _, id := range s.ids {
		ms := s.seqs[id]
		if swapped && s.host.swapped[id] || !swapped && ms.running {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	n := rapid.IntRange(1, min(max, len(cands))).Draw(t, "group")
	var out []paged.SeqID
	for range n {
		i := rapid.IntRange(0, len(cands)-1).Draw(t, "member")
		out = append(out, cands[i])
		cands = append(cands[:i], cands[i+1:]...)
	}
	return out
}

func sameOccupancy(a, b paged.Stats) bool {
	return a.FreeBlocks == b.FreeBlocks && a.CachedBlocks == b.CachedBlocks && a.UsedBlocks == b.UsedBlocks &&
		a.Running == b.Running && a.Tiers.HostFree == b.Tiers.HostFree && a.Tiers.HostUsed == b.Tiers.HostUsed &&
		a.Tiers.HostCached == b.Tiers.HostCached
}

func (s *machine) swapOut(t *rapid.T) {
	group := s.tierPick(t, false, 3)
	if group == nil {
		return
	}
	before := s.m.Stats()
	if err := s.m.SwapOut(group...); err != nil {
		if !errors.Is(err, paged.ErrNoSpace) || !sameOccupancy(before, s.m.Stats()) {
			t.Fatalf("SwapOut failed with %v, occupancy %+v -> %+v", err, before, s.m.Stats())
		}
		return
	}
	s.flushCopies(t)
	for _, id := range group {
		ms := s.seqs[id]
		ms.running, ms.tier = false, true
		s.host.swapped[id] = true
	}
	if again := s.m.SwapOut(group[0]); !errors.Is(again, paged.ErrSequenceState) {
		t.Fatalf("second SwapOut of %v: %v", group[0], again)
	}
}

func (s *machine) swapIn(t *rapid.T) {
	group := s.tierPick(t, true, 3)
	if group == nil {
		return
	}
	dry, need, err := s.m.CanSwapIn(group...)
	if err != nil {
		t.Fatalf("CanSwapIn: %v", err)
	}
	before := s.m.Stats()
	err = s.m.SwapIn(group...)
	if (err == nil) != (dry == paged.AdmitOK) {
		t.Fatalf("CanSwapIn said %v (%d blocks), SwapIn returned %v", dry, need, err)
	}
	if err != nil {
		if !sameOccupancy(before, s.m.Stats()) {
			t.Fatalf("failed SwapIn changed occupancy: %+v -> %+v", before, s.m.Stats())
		}
		return
	}
	if got := before.FreeBlocks + before.CachedBlocks - s.m.Stats().FreeBlocks - s.m.Stats().CachedBlocks; got > need {
		t.Fatalf("SwapIn took %d device blocks, CanSwapIn said %d", got, need)
	}
	s.flushCopies(t)
	for _, id := range group {
		ms := s.seqs[id]
		ms.running, ms.tier = true, false
		delete(s.host.swapped, id)
		s.readSeq(t, id, ms, len(ms.tokens)-ms.spec, len(ms.tokens))
	}
}

// mixedStep makes several decisions in one engine step before the server
// runs any directive: an append (maybe copy-on-write), a swap-out of other
// sequences, a swap-in. Blocks freed by one decision may be reused by the
// next, so the directives only work if the server runs them in the order
// given (Batch.Swaps, then Batch.Copies).
func (s *machine) mixedStep(t *rapid.T) {
	id, ms, ok := s.pick(t, true)
	if !ok {
		return
	}
	toks := rapid.SliceOfN(rapid.Int32Range(1, 6), 1, s.bs+1).Draw(t, "mtokens")
	table, _ := s.m.Table(id)
	last := table[len(table)-1]
	before := s.m.Stats()
	if err := s.m.Append(id, toks...); err != nil {
		if ms.spec > 0 && errors.Is(err, paged.ErrSequenceState) && s.m.Stats() == before {
			return // drafts pending: refused, nothing changed
		}
		expectNoSpaceUnchanged(t, s.m, before, err)
		return
	}
	if ms.spec > 0 {
		t.Fatalf("Append took tokens after %d pending drafts", ms.spec)
	}
	from := len(ms.tokens)
	ms.tokens = append(ms.tokens, toks...)
	// Swap out the sequences that shared the block the append may have
	// copied (its source is then freed and may be reused at once), or
	// others at random.
	var out []paged.SeqID
	if rapid.Bool().Draw(t, "sharers") {
		for _, o := range s.ids {
			if o == id || !s.seqs[o].running {
				continue
			}
			if ot, _ := s.m.Table(o); slices.Contains(ot, last) {
				out = append(out, o)
			}
		}
	} else {
		for _, o := range s.tierPick(t, false, 2) {
			if o != id {
				out = append(out, o)
			}
		}
	}
	if len(out) > 0 && s.m.SwapOut(out...) == nil {
		for _, o := range out {
			s.seqs[o].running, s.seqs[o].tier = false, true
			s.host.swapped[o] = true
		}
	}
	in := s.tierPick(t, true, 2)
	if len(in) > 0 && s.m.SwapIn(in...) == nil {
		for _, o := range in {
			s.seqs[o].running, s.seqs[o].tier = true, false
			delete(s.host.swapped, o)
		}
	} else {
		in = nil
	}
	s.flushCopies(t)
	s.compute(t, id, ms, from)
	for _, o := range in {
		om := s.seqs[o]
		s.readSeq(t, o, om, len(om.tokens)-om.spec, len(om.tokens))
	}
}

func (s *machine) onboard(t *rapid.T) {
	id, _, ok := s.pick(t, false)
	if !ok {
		return
	}
	before := s.m.Stats()
	n, err := s.m.Onboard(id)
	if err != nil {
		if !errors.Is(err, paged.ErrNoSpace) || !sameOccupancy(before, s.m.Stats()) {
			t.Fatalf("Onboard failed with %v, occupancy %+v -> %+v", err, before, s.m.Stats())
		}
		return
	}
	if got := s.m.Stats().Tiers.Onboards - before.Tiers.Onboards; got != uint64(n) {
		t.Fatalf("Onboard reported %d blocks, counted %d", n, got)
	}
	s.flushCopies(t)
}

func (s *machine) freeTier(t *rapid.T) {
	var cands []paged.SeqID
	for _, id := range s.ids {
		if s.seqs[id].tier {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		return
	}
	id := rapid.SampledFrom(cands).Draw(t, "fseq")
	if err := s.m.Free(id); err != nil {
		t.Fatalf("Free: %v", err)
	}
	delete(s.host.swapped, id)
	s.remove(id)
}

func (s *machine) resetTier(t *rapid.T) {
	st := s.m.Stats()
	err := s.m.ResetCache()
	if st.UsedBlocks > 0 || st.Tiers.HostUsed > 0 {
		if !errors.Is(err, paged.ErrCacheInUse) {
			t.Fatalf("ResetCache with blocks held: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("ResetCache: %v", err)
	}
	if st := s.m.Stats(); st.Tiers.HostCached != 0 {
		t.Fatalf("host cache not empty after reset: %+v", st.Tiers)
	}
}

// TestStateMachineTiers runs the model test with a host tier (swaps,
// offload, onboard) on top of the base actions, which draw windowed
// sequences too; Check and read-back of every running sequence after each
// step.
func TestStateMachineTiers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newTierMachine(t, rapid.SampledFrom([]int{0, 64}).Draw(t, "events"))
		t.Repeat(s.tierActions())
	})
}

// newTierMachine draws a manager with a host tier (and events buffered
// up to events) and returns the model over it.
func newTierMachine(t *rapid.T, events int) *machine {
	bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "blockSize")
	cfg := paged.Config{
		BlockSize:        bs,
		NumBlocks:        rapid.IntRange(2, 24).Draw(t, "blocks"),
		Policy:           policy(t, "policy"),
		UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
		Watermark:        rapid.SampledFrom([]float64{0, 0, 0.1}).Draw(t, "watermark"),
		Events:           events,
		HostBlocks:       rapid.IntRange(1, 24).Draw(t, "hostBlocks"),
		HostPolicy:       policy(t, "hostPolicy"),
		OffloadPriority:  rapid.SampledFrom([]int{0, 35, 50}).Draw(t, "floor"),
		Reserve:          drawReserve(t),
	}
	m, err := paged.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := newMachine(t, m, bs)
	s.host = &hostShadow{slot: map[int64]uint64{}, swapped: map[paged.SeqID]bool{}}
	return s
}

// tierActions are the base actions and the tier's.
func (s *machine) tierActions() map[string]func(*rapid.T) {
	acts := s.actions()
	for name, act := range map[string]func(*rapid.T){
		"reset":    s.resetTier,
		"swapOut":  s.swapOut,
		"swapIn":   s.swapIn,
		"freeTier": s.freeTier,
		"onboard":  s.onboard,
		"mixed":    s.mixedStep,
		"admitOut": s.admitThenSwap,
	} {
		acts[name] = act
	}
	return acts
}

// admitThenSwap admits a sequence (Create, or Admit of a waiting one)
// and, in the same step, before its directives are taken, swaps out a
// group naming it, perhaps beside others running since earlier steps,
// one of which may have appended in the step: the step has not computed
// the admitted sequence's KV (nor, maybe, its hits), so SwapOut must
// refuse the group with ErrUncomputed and change nothing. The step is
// then dropped for it (Unadmit: the statistics read as if it had not
// been admitted) or runs, after which Unadmit is refused and the group
// may swap out.
func (s *machine) admitThenSwap(t *rapid.T) {
	before := s.m.Stats()
	var id paged.SeqID
	var ms *modelSeq
	var cached int
	if wid, wms, ok := s.pick(t, false); ok && rapid.Bool().Draw(t, "readmit") {
		c, err := s.m.Admit(wid)
		if err != nil {
			expectNoSpaceUnchanged(t, s.m, before, err)
			return
		}
		id, ms, cached = wid, wms, c
	} else {
		prompt := s.tokens(t, "prompt")
		nid, c, err := s.m.Create(prompt, nil)
		if err != nil {
			expectNoSpaceUnchanged(t, s.m, before, err)
			return
		}
		id, ms, cached = nid, &modelSeq{tokens: prompt}, c
		s.add(id, ms)
	}
	ms.running = true
	var group []paged.SeqID
	for _, o := range s.tierPick(t, false, 3) {
		if o != id {
			group = append(group, o)
		}
	}
	grown := paged.SeqID(0) // a sequence of the group that appended in the step
	if len(group) > 0 && s.seqs[group[0]].spec == 0 && rapid.Bool().Draw(t, "grow") {
		tok := rapid.Int32Range(1, 6).Draw(t, "gtok")
		if err := s.m.Append(group[0], tok); err == nil {
			s.seqs[group[0]].tokens = append(s.seqs[group[0]].tokens, tok)
			grown = group[0]
		}
	}
	at := rapid.IntRange(0, len(group)).Draw(t, "at")
	group = slices.Insert(group, at, id)
	admitted := s.m.Stats()
	tables := make([][]allocator.BlockID, len(group))
	for i, g := range group {
		tb, _ := s.m.Table(g)
		tables[i] = slices.Clone(tb)
	}
	if err := s.m.SwapOut(group...); !errors.Is(err, paged.ErrUncomputed) {
		t.Fatalf("SwapOut of %v, %v admitted in the step being built: %v", group, id, err)
	}
	if got := s.m.Stats(); got != admitted {
		t.Fatalf("refused SwapOut changed the stats: %+v -> %+v", admitted, got)
	}
	for i, g := range group {
		if tb, _ := s.m.Table(g); !slices.Equal(tb, tables[i]) {
			t.Fatalf("refused SwapOut changed the table of %v: %v -> %v", g, tables[i], tb)
		}
	}
	if err := s.m.Check(); err != nil {
		t.Fatalf("after a refused SwapOut: %v", err)
	}
	if rapid.Bool().Draw(t, "unadmit") {
		if err := s.m.Unadmit(id); err != nil {
			t.Fatalf("Unadmit of %v admitted in the step: %v", id, err)
		}
		after := s.m.Stats()
		if lookupCounters(after) != lookupCounters(before) || after.Preemptions != before.Preemptions || after.Unadmits != before.Unadmits+1 {
			t.Fatalf("Unadmit left the admission counted: %+v -> %+v", before, after)
		}
		ms.running = false
		s.flushCopies(t) // the step runs without it
		if grown != 0 {
			gm := s.seqs[grown]
			s.compute(t, grown, gm, len(gm.tokens)-1)
		}
		return
	}
	// The step runs: its directives, then its kernels.
	s.flushCopies(t)
	s.compute(t, id, ms, cached)
	if grown != 0 {
		gm := s.seqs[grown]
		s.compute(t, grown, gm, len(gm.tokens)-1)
	}
	if err := s.m.Unadmit(id); !errors.Is(err, paged.ErrSequenceState) {
		t.Fatalf("Unadmit after the step ran: %v", err)
	}
	err := s.m.SwapOut(group...)
	if err != nil {
		if !errors.Is(err, paged.ErrNoSpace) {
			t.Fatalf("SwapOut once the step ran: %v", err)
		}
		return
	}
	s.flushCopies(t)
	for _, g := range group {
		s.seqs[g].running, s.seqs[g].tier = false, true
		s.host.swapped[g] = true
	}
}
