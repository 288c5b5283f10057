package paged_test

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// hyKV is the KV a group's layers compute at position p of a sequence: it
// depends on every token up to p and on the group.
func hyKV(g int, tokens []int32) uint64 {
	// FNV-1a over the group and the tokens, four bytes each, inline: the
	// read-back calls it for every position of every running sequence
	// after every step.
	h := uint64(14695981039346656037)
	word := func(v uint32) {
		for range 4 {
			h ^= uint64(byte(v))
			h *= 1099511628211
			v >>= 8
		}
	}
	word(uint32(g))
	for _, t := range tokens {
		word(uint32(t))
	}
	return h
}

// hyStateKV is page j of the state of group g after tokens: each page of a
// state holds its own part.
func hyStateKV(g, j int, tokens []int32) uint64 { return hyKV(g, tokens) + uint64(j) }

type hyState uint8

const (
	hyWaiting hyState = iota
	hyRunning
	hySwapped
)

type hySeq struct {
	id     paged.SeqID
	tokens []int32
	state  hyState
	// fresh: trailing tokens whose KV this step computes (since the last
	// batch), as a scheduler would schedule them.
	fresh int
	// dropped: the fresh tokens are those of a step dropped before its
	// kernels ran (Uncompute, endDropped), computed again by the next
	// batch, also after a swap; other fresh tokens were computed (write),
	// and a swap-out ends their step (SwapOut keeps only the window
	// from the accepted length, or from what Uncompute named).
	dropped bool
	// spec: trailing tokens that are unaccepted drafts.
	spec int
	// redo, when not 0, is one more than the first position Uncompute
	// named since the last Append (audit32_giveback_sm_test.go).
	redo int
	// dropNow: redo was set (from none) in the step being built, which
	// has not run: a State group has not absorbed the tokens from redo-1
	// on, and Truncate may cut them (truncatable). Cleared when the step
	// ends (endStep).
	dropNow bool
}

// hyModel drives a manager with KV cache groups and a shadow of every
// group's KV (and of the host tier), written through the tables as a
// server writes and moved by the Copy and Swap directives as a server
// moves it, and reads every running sequence back through every group's
// table after each step.
type hyModel struct {
	// pinRetries counts refused calls retried with the retention pins
	// released (pinsNotBlocking).
	pinRetries int
	m          *paged.Manager
	groups     []paged.Group
	bs         int
	seqs       []*hySeq
	shadow     map[int64]uint64
	host       map[int64]uint64
	// prefixes are shared prompt beginnings, so prefix hits happen.
	prefixes [][]int32
	swaps    []paged.Swap
	// checkpoints counts the state checkpoints written.
	checkpoints int
	// batch is the batch write builds, kept from call to call.
	batch  paged.Batch
	copies []paged.Copy
	// offload: evicted cached blocks may move to the host tier; onboards
	// counts the host blocks moved back for hits.
	offload  bool
	onboards [2]int // group 0's, the other groups'
	// multiHits counts admissions with a prefix hit on a layout of more
	// than one kind or size besides full attention.
	multiHits int
	// sd counts what the run did with drafts on a layout with a State
	// group.
	sd stateDrafts
	// drafted: the action running picks among running sequences only
	// those with drafts pending.
	drafted bool
	// givenBack counts dropped steps given back (giveBack).
	givenBack int
	// forkedDropped counts forks made in the step of an Uncompute
	// (giveBack).
	forkedDropped int
}

// stateDrafts counts operations on sequences with drafts pending on layouts
// with a State group, so that a test can require each was exercised.
type stateDrafts struct {
	// drafted: AppendSpeculative calls that succeeded; accepted:
	// AcceptSpeculative calls keeping at least one draft (a draft's state
	// became the state); inside: steps whose first new token follows a
	// draft (StateRead > 0); forked, swapped, preempted, truncated:
	// those calls on a sequence with drafts (Truncate cutting some).
	drafted, accepted, inside, forked, swapped, preempted, truncated int
	// Spare draft states (Stats.StateSparePages): taken, operations
	// drafting while spares fell (taken, or given back as not needed);
	// released, Preempt, SwapOut or Free giving spares back; forkSpares,
	// forks while spares were kept; reclaimed, other operations whose
	// allocations reclaimed spares (pool pressure).
	taken, released, forkSpares, reclaimed int
}

func (a *stateDrafts) add(b stateDrafts) {
	a.drafted += b.drafted
	a.accepted += b.accepted
	a.inside += b.inside
	a.forked += b.forked
	a.swapped += b.swapped
	a.preempted += b.preempted
	a.truncated += b.truncated
	a.taken += b.taken
	a.released += b.released
	a.forkSpares += b.forkSpares
	a.reclaimed += b.reclaimed
}

// spares classifies operation name by how it changed the spare draft
// states' pages, from before to after: drafts take them, Preempt, SwapOut
// and Free give them back, a verdict (AcceptSpeculative, Truncate) or a
// batch never gives them back, and any other operation only by reclaiming
// them for an allocation.
func (a *stateDrafts) spares(t *rapid.T, name string, before, after int) {
	op := strings.TrimRight(strings.TrimSuffix(strings.TrimRight(name, " 0123456789"), " (drafts)"), " 0123456789")
	switch op {
	case "draft":
		if after < before {
			a.taken++
		}
	case "preempt", "swap out", "free":
		if after < before {
			a.released++
		}
	case "fork":
		if before > 0 {
			a.forkSpares++
		}
		if after > before {
			t.Fatalf("Fork made spares: %d to %d pages", before, after)
		}
	case "accept", "truncate", "reject some", "reject some again", "batch", "events":
		if after < before {
			t.Fatalf("%s gave spares back: %d to %d pages", name, before, after)
		}
	default:
		if after > before {
			t.Fatalf("%s made spares: %d to %d pages", name, before, after)
		}
		if after < before {
			a.reclaimed++
		}
	}
}

// multiKind reports whether the layout has groups of more than one kind
// or size besides full attention (and shared groups).
func (h *hyModel) multiKind() bool {
	var other *paged.Group
	for i, g := range h.groups {
		if g.Kind == paged.FullAttention || g.Kind == paged.Shared {
			continue
		}
		if other != nil && *other != g {
			return true
		}
		other = &h.groups[i]
	}
	return false
}

// hasState reports whether the layout has a State group.
func (h *hyModel) hasState() bool {
	return slices.ContainsFunc(h.groups, func(g paged.Group) bool { return g.Kind == paged.State })
}

// live is the first position group g must still hold for a sequence of n
// tokens: the window of the next query, or 0.
func (h *hyModel) live(g, n int) int {
	switch k := h.groups[g]; k.Kind {
	case paged.SlidingWindow:
		return max(0, n-k.Window+1)
	case paged.ChunkedLocal:
		return n / k.Chunk * k.Chunk
	}
	return 0
}

// kvGroup is the group whose KV group g's table reads: a shared group
// reads its target's. A state group has no positions (-1).
func (h *hyModel) kvGroup(g int) int {
	switch k := h.groups[g]; k.Kind {
	case paged.Shared:
		return k.Target
	case paged.State:
		return -1
	}
	return g
}

// move copies one block's slots between the device and host shadows.
func (h *hyModel) move(src, dst map[int64]uint64, from, to int64) {
	for off := range int64(h.bs) {
		if v, ok := src[from*int64(h.bs)+off]; ok {
			dst[to*int64(h.bs)+off] = v
		} else {
			delete(dst, to*int64(h.bs)+off)
		}
	}
}

// transfer runs the pending directives as a server does before the step's
// kernels: the tier stream in order, then the copies.
func (h *hyModel) transfer(t *rapid.T) {
	h.endStep()
	h.swaps = h.m.TakeSwaps(h.swaps[:0])
	h.run(t, h.swaps)
	h.copies = h.m.TakeCopies(h.copies[:0])
	checkStepDirectives(t, h.swaps, h.copies)
	for _, c := range h.copies {
		h.move(h.shadow, h.shadow, int64(c.Src), int64(c.Dst))
	}
}

// endStep ends the step being built in the model, as taking its
// directives ends it in the manager: Uncompute's marks go.
func (h *hyModel) endStep() {
	for _, s := range h.seqs {
		s.dropNow = false
	}
}

// run moves the shadow KV as the tier directives say, in order, and checks
// each names a group that holds such blocks.
func (h *hyModel) run(t *rapid.T, swaps []paged.Swap) {
	for _, d := range swaps {
		if d.Group < 0 || d.Group >= len(h.groups) || h.groups[d.Group].Kind == paged.Shared {
			t.Fatalf("directive %+v names group %d", d, d.Group)
		}
		switch d.Kind {
		case paged.Offload, paged.Onboard:
			if !h.offload {
				t.Fatalf("directive %+v with offloading off", d)
			}
			if d.Kind == paged.Onboard {
				h.onboards[min(d.Group, 1)]++
			}
		}
		src, dst := h.shadow, h.shadow
		if d.Kind.SrcMedium() == paged.Host {
			src = h.host
		}
		if d.Kind.DstMedium() == paged.Host {
			dst = h.host
		}
		h.move(src, dst, int64(d.Src), int64(d.Dst))
		if d.Kind == paged.Offload || d.Kind == paged.Onboard {
			// The source block is given up: the manager hands it out
			// again, so whatever it held must not be read back.
			h.poison(src, int64(d.Src))
		}
	}
}

// poison overwrites the slots of block b in one shadow with a value no KV
// has.
func (h *hyModel) poison(kv map[int64]uint64, b int64) {
	for off := range int64(h.bs) {
		kv[b*int64(h.bs)+off] = 0
	}
}

// write runs the kernels of positions [from, len) of s as a server does:
// it builds the step's batch for s (a Batch kept from call to call, so its
// persistent rows are exercised) and writes every attention group's KV
// into the batch's slots of the new tokens, and every state group's
// state, which depends on all the tokens, into each page its row names.
// The read-back through the tables then proves the batch's slots and
// rows name the blocks the sequence reads.
func (h *hyModel) write(t *rapid.T, s *hySeq, from int) {
	h.transfer(t)
	if from == len(s.tokens) {
		return // nothing to compute (BuildBatch takes at least one token)
	}
	b := &h.batch
	sched := []paged.Scheduled{{ID: s.id, NewTokens: len(s.tokens) - from}}
	if err := h.m.BuildBatch(b, sched); err != nil {
		t.Fatalf("BuildBatch(%v, %d new tokens of %d): %v", s.id, len(s.tokens)-from, len(s.tokens), err)
	}
	if len(b.Swaps)+len(b.Copies) > 0 {
		t.Fatalf("BuildBatch took %d swaps and %d copies after a transfer", len(b.Swaps), len(b.Copies))
	}
	// The step's state checkpoints: the state after their first Tokens
	// tokens, which this step computes.
	// Never a draft's state: a checkpoint lies within the accepted tokens.
	for _, c := range h.m.TakeCheckpoints(nil) {
		if c.Seq != s.id || c.Tokens < from || c.Tokens > len(s.tokens)-s.spec || h.groups[c.Group].Kind != paged.State || len(c.Pages) != h.groups[c.Group].Pages {
			t.Fatalf("computing [%d, %d) of %v: checkpoint %+v", from, len(s.tokens), s.id, c)
		}
		h.checkpoints++
		for j, p := range c.Pages {
			h.shadow[int64(p)*int64(h.bs)] = hyStateKV(c.Group, j, s.tokens[:c.Tokens])
		}
	}
	for g := range h.groups {
		if h.kvGroup(g) != g && h.groups[g].Kind != paged.State {
			continue // no KV of its own
		}
		if h.groups[g].Kind == paged.State {
			h.writeState(t, s, g, from)
			continue
		}
		slots := b.Slots
		if g > 0 {
			slots = b.GroupSlots[g-1]
		}
		if len(slots) != len(s.tokens)-from {
			t.Fatalf("group %d of %v: %d slots for %d new tokens", g, s.id, len(slots), len(s.tokens)-from)
		}
		for i, sl := range slots {
			p := from + i
			if sl/int64(h.bs) == 0 || sl%int64(h.bs) != int64(p%h.bs) {
				t.Fatalf("group %d of %v: position %d goes to slot %d", g, s.id, p, sl)
			}
			h.shadow[sl] = hyKV(g, s.tokens[:p+1])
		}
	}
}

// writeState runs state group g's kernel for positions [from, len) of s
// as a server does with the batch write built: it reads the state after
// the first from tokens (restored from a checkpoint at a hit, copied at a
// fork, moved by a swap) from the state StateRead names, updates the
// group's row in place with the tokens before the drafts, and writes the
// state after each draft it computes into that draft's pages
// (StateDrafts).
func (h *hyModel) writeState(t *rapid.T, s *hySeq, g, from int) {
	b := &h.batch
	pages, a := h.groups[g].Pages, len(s.tokens)-s.spec
	drafts := b.StateDrafts[g-1]
	if len(b.DraftStart) != 2 || b.DraftStart[0] != 0 || int(b.DraftStart[1]) != s.spec || len(drafts) != s.spec*pages || len(b.StateRead) != 1 {
		t.Fatalf("state group %d of %v with %d drafts: DraftStart %v, StateRead %v, %d draft pages", g, s.id, s.spec, b.DraftStart, b.StateRead, len(drafts))
	}
	state := func(j int) []int32 {
		if j == 0 {
			return b.GroupTables[g-1][:pages]
		}
		return drafts[(j-1)*pages : j*pages]
	}
	r := int(b.StateRead[0])
	if r > 0 {
		h.sd.inside++
	}
	if want := max(0, from-a); r != want {
		t.Fatalf("state group %d of %v: computing [%d, %d) with %d drafts reads state %d, want %d", g, s.id, from, len(s.tokens), s.spec, r, want)
	}
	for j, p := range state(r) {
		if from > 0 && h.shadow[int64(p)*int64(h.bs)] != hyStateKV(g, j, s.tokens[:from]) {
			t.Fatalf("state group %d of %v page %d (%d): not the state after its first %d tokens", g, s.id, j, p, from)
		}
	}
	if from < a {
		for j, p := range state(0) {
			h.shadow[int64(p)*int64(h.bs)] = hyStateKV(g, j, s.tokens[:a])
		}
	}
	for d := max(1, from-a+1); d <= s.spec; d++ {
		for j, p := range state(d) {
			h.shadow[int64(p)*int64(h.bs)] = hyStateKV(g, j, s.tokens[:a+d])
		}
	}
}

// readBack reads every running sequence's KV through every group's table:
// the positions the query at the accepted length reads (rejecting every
// draft must leave them readable) and every position after, and each state
// page's state.
func (h *hyModel) readBack(t *rapid.T) {
	for _, s := range h.seqs {
		if s.state != hyRunning {
			continue
		}
		for g := range h.groups {
			table, err := h.m.TableGroup(s.id, g)
			if err != nil {
				t.Fatalf("TableGroup(%v, %d): %v", s.id, g, err)
			}
			kv := h.kvGroup(g)
			if kv < 0 {
				// The state after the accepted tokens, then the state
				// after each draft.
				pages := h.groups[g].Pages
				if len(table) != pages*(1+s.spec) || slices.Contains(table, 0) {
					t.Fatalf("state group %d of %v with %d drafts: pages %v", g, s.id, s.spec, table)
				}
				a := len(s.tokens) - s.spec
				for k, b := range table {
					if h.shadow[int64(b)*int64(h.bs)] != hyStateKV(g, k%pages, s.tokens[:a+k/pages]) {
						t.Fatalf("read-back of %v state group %d page %d (entry %d of %v): not its own state after %d tokens", s.id, g, b, k, table, a+k/pages)
					}
				}
				continue
			}
			for p := h.live(kv, len(s.tokens)-s.spec); p < len(s.tokens); p++ {
				b := table[p/h.bs]
				sl := int64(b)*int64(h.bs) + int64(p%h.bs)
				if b == 0 || h.shadow[sl] != hyKV(kv, s.tokens[:p+1]) {
					t.Fatalf("read-back of %v group %d position %d (block %d): not its own KV", s.id, g, p, b)
				}
			}
		}
	}
}

func (h *hyModel) check(t *rapid.T) {
	if err := h.m.Check(); err != nil {
		t.Fatal(err)
	}
	h.readBack(t)
}

// checkDrafts checks state group g's draft states in the batch just built
// for sched: DraftStart counts each sequence's drafts, StateDrafts names
// the pages of its table after the state's, and StateRead the state its
// first new token reads.
func (h *hyModel) checkDrafts(t *rapid.T, g int, sched []paged.Scheduled) {
	b, pages := &h.batch, h.groups[g].Pages
	if len(b.DraftStart) != len(sched)+1 || len(b.StateRead) != len(sched) || b.DraftStart[0] != 0 {
		t.Fatalf("%d scheduled: DraftStart %v, StateRead %v", len(sched), b.DraftStart, b.StateRead)
	}
	drafts := b.StateDrafts[g-1]
	if len(drafts) != int(b.DraftStart[len(sched)])*pages {
		t.Fatalf("state group %d: %d draft pages, DraftStart %v", g, len(drafts), b.DraftStart)
	}
	for i, sc := range sched {
		table, _ := h.m.TableGroup(sc.ID, g)
		var s *hySeq
		for _, x := range h.seqs {
			if x.id == sc.ID {
				s = x
			}
		}
		lo, hi := int(b.DraftStart[i])*pages, int(b.DraftStart[i+1])*pages
		got := drafts[lo:hi]
		if hi-lo != s.spec*pages || len(table) != pages+len(got) {
			t.Fatalf("state group %d of %v with %d drafts: states %v, table %v", g, sc.ID, s.spec, got, table)
		}
		for k, p := range got {
			if p != int32(table[pages+k]) {
				t.Fatalf("state group %d of %v: draft pages %v, table %v", g, sc.ID, got, table)
			}
		}
		if want := max(0, s.spec-sc.NewTokens); int(b.StateRead[i]) != want {
			t.Fatalf("state group %d of %v: %d new tokens, %d drafts, StateRead %d", g, sc.ID, sc.NewTokens, s.spec, b.StateRead[i])
		}
	}
}

// candidates returns the sequences in state st.
func (h *hyModel) candidates(st hyState) []*hySeq {
	var c []*hySeq
	for _, s := range h.seqs {
		if s.state == st && (st != hyRunning || !h.drafted || s.spec > 0) {
			c = append(c, s)
		}
	}
	return c
}

func (h *hyModel) pick(t *rapid.T, st hyState) *hySeq {
	c := h.candidates(st)
	if len(c) == 0 {
		t.Skip("no such sequence")
	}
	return rapid.SampledFrom(c).Draw(t, "seq")
}

// pickSome draws one to three distinct sequences in state st.
func (h *hyModel) pickSome(t *rapid.T, st hyState) ([]*hySeq, []paged.SeqID) {
	c := h.candidates(st)
	if len(c) == 0 {
		t.Skip("no such sequence")
	}
	n := rapid.IntRange(1, min(3, len(c))).Draw(t, "members")
	var seqs []*hySeq
	var ids []paged.SeqID
	for range n {
		i := rapid.IntRange(0, len(c)-1).Draw(t, "member")
		seqs, ids = append(seqs, c[i]), append(ids, c[i].id)
		c = slices.Delete(c, i, i+1)
	}
	return seqs, ids
}

func (h *hyModel) admit(t *rapid.T, s *hySeq) {
	cached, ok := h.admitOnly(t, s)
	if !ok {
		return
	}
	s.fresh, s.dropped = len(s.tokens)-cached, false
	if cached > 0 && h.multiKind() {
		h.multiHits++
	}
	// The hit's KV is already there: read it back before computing the rest.
	h.write(t, s, cached)
}

// admitOnly admits s, whole or a chunk, and reports the tokens it found
// cached, or false when the pool refused it.
func (h *hyModel) admitOnly(t *rapid.T, s *hySeq) (int, bool) {
	var cached int
	var err error
	if rapid.Bool().Draw(t, "chunked") {
		// Chunked prefill: the tokens past the chunk leave the sequence
		// (a scheduler would append them later).
		var rest []int32
		maxNew := rapid.IntRange(1, 3*h.bs).Draw(t, "maxNew")
		dry, derr := h.m.CanAdmitChunk(s.id, maxNew)
		if derr != nil {
			t.Fatalf("CanAdmitChunk: %v", derr)
		}
		cached, rest, err = h.m.AdmitChunk(s.id, maxNew, nil)
		if (err == nil) != (dry == paged.AdmitOK) || errors.Is(err, paged.ErrNever) != (dry == paged.AdmitNever) {
			t.Fatalf("CanAdmitChunk(%v, %d) said %v, AdmitChunk returned %v", s.id, maxNew, dry, err)
		}
		if err == nil {
			n := len(s.tokens) - len(rest)
			if n-cached > maxNew || !slices.Equal(rest, s.tokens[n:]) {
				t.Fatalf("AdmitChunk(%d) of %d tokens: cached %d, rest %v", maxNew, len(s.tokens), cached, rest)
			}
			s.tokens = s.tokens[:n]
		}
	} else {
		cached, err = h.m.Admit(s.id)
	}
	if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if cached%h.bs != 0 || cached >= len(s.tokens) {
		t.Fatalf("Admit: %d cached tokens of %d", cached, len(s.tokens))
	}
	s.state, s.redo = hyRunning, 0
	return cached, true
}

// tables snapshots every group's table of s.
func (h *hyModel) tables(s *hySeq) [][]allocator.BlockID {
	var out [][]allocator.BlockID
	for g := range h.groups {
		table, _ := h.m.TableGroup(s.id, g)
		out = append(out, slices.Clone(table))
	}
	return out
}

// released counts the leading null entries of group g's table of s.
func (h *hyModel) released(s *hySeq, g int) int {
	table, _ := h.m.TableGroup(s.id, g)
	r := 0
	for r < len(table) && table[r] == 0 {
		r++
	}
	return r
}

// truncatable reports whether the manager must accept truncating s to n
// tokens: no local group's next query at n reads a block it released,
// and no state of a running sequence is rolled back past its accepted
// tokens (its drafts' states may go).
func (h *hyModel) truncatable(s *hySeq, n int) bool {
	absorbed := len(s.tokens) - s.spec
	if s.dropNow && s.redo > 0 {
		// Uncompute's record, set in the step being built (until the
		// next Append): that step has not run, so no state absorbed
		// its tokens.
		absorbed = min(absorbed, s.redo-1)
	}
	if s.state == hyRunning && n < absorbed && h.hasState() {
		return false
	}
	for g, k := range h.groups {
		if k.Kind != paged.SlidingWindow && k.Kind != paged.ChunkedLocal {
			continue
		}
		if r := h.released(s, g); r > 0 && h.live(g, n)/h.bs < r {
			return false
		}
	}
	return true
}

// pinsNotBlocking fails unless a call of the one running sequence
// (Append, AppendSpeculative, Fork) refused for space (ErrNoSpace,
// ErrNever) while it holds retention pins is refused again once they are
// released (paged.ReleaseRetentionPins): the pins hold no data it reads,
// so they never make a request fail that a pool without them would serve
// (docs/hybrid.md). (With other sequences running, a refusal is a wait:
// their pins hold the hits of the requests behind them.)
func (h *hyModel) pinsNotBlocking(t *rapid.T, op string, retry func() error) {
	if st := h.m.Stats(); st.RetentionPins == 0 || st.Running != 1 {
		return
	}
	paged.ReleaseRetentionPins(h.m)
	h.pinRetries++
	if err := retry(); !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
		t.Fatalf("%s refused with retention pins held, then, with them released: %v", op, err)
	}
	if err := h.m.Check(); err != nil {
		t.Fatalf("after releasing the retention pins: %v", err)
	}
}

// unchanged fails unless a refused call left the manager's statistics and
// the tables of seqs as they were.
func (h *hyModel) unchanged(t *rapid.T, op string, stats paged.Stats, seqs []*hySeq, tables [][][]allocator.BlockID) {
	if after := h.m.Stats(); after != stats {
		t.Fatalf("refused %s changed the statistics: %+v, then %+v", op, stats, after)
	}
	for i, s := range seqs {
		if after := h.tables(s); !slices.EqualFunc(tables[i], after, slices.Equal) {
			t.Fatalf("refused %s changed the tables of %v: %v, then %v", op, s.id, tables[i], after)
		}
	}
}

// snapshot returns the statistics and the tables of seqs.
func (h *hyModel) snapshot(seqs ...*hySeq) (paged.Stats, [][][]allocator.BlockID) {
	var tables [][][]allocator.BlockID
	for _, s := range seqs {
		tables = append(tables, h.tables(s))
	}
	return h.m.Stats(), tables
}

// cut drops the last c tokens of s in the model.
func (s *hySeq) cut(c int) {
	s.tokens = s.tokens[:len(s.tokens)-c]
	if s.redo > len(s.tokens) {
		s.redo = 0 // every token kept was computed
	}
	s.spec = max(0, s.spec-c)
	s.fresh = max(0, s.fresh-c)
	s.dropped = s.dropped && s.fresh > 0
}

// add adds a waiting sequence of prompt, or returns nil when it is longer
// than a sequence may grow (ErrNever).
func (h *hyModel) add(t *rapid.T, prompt []int32) *hySeq {
	id, err := h.m.Add(prompt, nil)
	if errors.Is(err, paged.ErrNever) {
		return nil
	}
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	s := &hySeq{id: id, tokens: prompt}
	h.seqs = append(h.seqs, s)
	return s
}

func (h *hyModel) newTokens(t *rapid.T, next *int32, max int) []int32 {
	toks := make([]int32, rapid.IntRange(1, max).Draw(t, "n"))
	for k := range toks {
		*next++
		toks[k] = *next
	}
	return toks
}

// drawHybridLayout draws a hybrid model's groups for blocks of bs tokens:
// full attention first, then full, shared and other groups in any order.
// With multi, groups of every kind and several sizes (two windows, a
// window and a chunk, state groups of two sizes beside them: Hymba,
// SambaY, Jet-Nemotron-like layouts), which the default mode takes;
// without, one kind besides full attention, of one size, as the
// vLLM-compatible mode takes.
func drawHybridLayout(t *rapid.T, bs int, multi bool) []paged.Group {
	w, pages := rapid.IntRange(1, 6*bs).Draw(t, "window"), rapid.IntRange(1, 3).Draw(t, "pages")
	kinds := []paged.Group{
		{Kind: paged.SlidingWindow, Window: w},
		{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")},
		{Kind: paged.State, Pages: pages},
	}
	if multi {
		// A second window and a second state size, each different.
		kinds = append(kinds,
			paged.Group{Kind: paged.SlidingWindow, Window: w + rapid.IntRange(1, 4*bs).Draw(t, "window2")},
			paged.Group{Kind: paged.State, Pages: pages%3 + 1})
	}
	others := []paged.Group{rapid.SampledFrom(kinds).Draw(t, "other")}
	// pending are groups to place, each once, among the extra ones.
	var pending []paged.Group
	if multi {
		// Two or three kinds or sizes, each in a group of its own at
		// least.
		others = nil
		for _, i := range rapid.Permutation([]int{0, 1, 2, 3, 4}).Draw(t, "kinds")[:rapid.IntRange(2, 3).Draw(t, "n kinds")] {
			others = append(others, kinds[i])
		}
		pending = others
	}
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for extra := rapid.IntRange(1, 3).Draw(t, "extra"); extra > 0 || len(pending) > 0; {
		if len(pending) > 0 && (extra == 0 || rapid.Bool().Draw(t, "place")) {
			groups, pending = append(groups, pending[0]), pending[1:]
			continue
		}
		extra--
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0:
			groups = append(groups, paged.Group{Kind: paged.FullAttention})
		case 1:
			groups = append(groups, rapid.SampledFrom(others).Draw(t, "of"))
		case 2:
			target := rapid.IntRange(0, len(groups)-1).Draw(t, "target")
			if k := groups[target].Kind; k == paged.State || k == paged.Shared {
				target = 0
			}
			groups = append(groups, paged.Group{Kind: paged.Shared, Target: target})
		}
	}
	return groups
}

// TestGroupsStateMachine: random hybrid layouts (drawHybridLayout: in
// the default mode any kinds, windows and states of several sizes, a chunk,
// full and shared groups; in the vLLM-compatible mode one kind besides
// full attention), both free-queue modes, shared prompt prefixes, under pool
// pressure, with a host tier or not, offloading evicted cached blocks to
// it or not; forks, truncation, drafts, swapping, onboarding, preemption.
// After every step Check passes and every running sequence reads its own
// KV back through every group, the shadow KV having moved only as the
// manager's Copy and Swap directives say: a hit on offloaded content reads
// the KV that went to the host and came back (some run must onboard).
//
// Mutations it catches (each tried, then reverted): copy-on-write skipped
// in groups 1 and up, or done without its Copy directive; a fork sharing
// the state pages, or copying them without directives; SwapOut directives
// left out for groups 1 and up; SwapIn reclaiming under group 0's key;
// Truncate past a window's released blocks accepted; drafts sliding the
// window; the one-token fast path taken after a fork.
func TestGroupsStateMachine(t *testing.T) {
	var tally hyTally
	rapid.Check(t, func(t *rapid.T) { runGroupsMachine(t, false, false, &tally) })
	tally.check(t)
}

// TestGroupsStateDraftsMachine is TestGroupsStateMachine on layouts with a
// State group (of every kind beside it, in both modes), drafting more
// often: drafts after drafts, a speculative step's sampled token and
// drafts computed together, accepted, rejected, truncated, forked,
// swapped and preempted with drafts pending. The shadow read-back proves
// every state page: the state after the accepted tokens, and each draft's
// state after that draft, written where the batch named them.
//
// Mutations it catches (each tried, then reverted): AcceptSpeculative
// keeping the old state instead of the last accepted draft's; StateRead
// naming the state (0) when the step starts after a draft; a fork copying
// the state but not its drafts' states.
func TestGroupsStateDraftsMachine(t *testing.T) {
	var tally hyTally
	rapid.Check(t, func(t *rapid.T) { runGroupsMachine(t, false, true, &tally) })
	tally.checkDrafts(t)
}

// hyTally adds up what the runs of a hybrid state machine saw.
type hyTally struct {
	// replay, when set, is called after every step and with every drain
	// instead of the loose event checks, events on with room for every
	// step's events (audit23).
	replay func(*rapid.T, *paged.Manager, []paged.Group)

	// onboards counts blocks onboarded, group 0's and the other groups'.
	onboards [2]int
	// multiHits counts hits on layouts of several kinds (hyModel), over
	// multiRuns runs on such layouts.
	multiHits, multiRuns int
	// sd adds up the runs' operations on state drafts (hyModel.sd) over
	// runs runs.
	sd   stateDrafts
	runs int
	// pinRetries counts refused calls retried with the retention pins
	// released (hyModel.pinsNotBlocking).
	pinRetries int
	// givenBack counts dropped steps given back (hyModel.giveBack), and
	// forkedDropped the forks made in such a step.
	givenBack, forkedDropped int
}

// check requires of a tally of enough runs that some hit a prefix on a
// layout of several kinds: about one such run in ten does (a hit there
// needs every class's blocks, a state's checkpoint included), so a
// hundred runs (go test's default) may see none, CI's thousands do.
func (y *hyTally) check(t *testing.T) {
	t.Logf("%d runs on layouts of several kinds, %d admissions with a hit there", y.multiRuns, y.multiHits)
	t.Logf("state drafts: %+v", y.sd)
	t.Logf("%d refused calls retried with the retention pins released", y.pinRetries)
	t.Logf("%d dropped steps given back, %d forked in their step", y.givenBack, y.forkedDropped)
	if y.multiRuns >= 200 {
		assert.Positive(t, y.multiHits, "no run hit a prefix on a layout of several kinds")
	}
}

// checkDrafts requires of a tally of 100 runs or more (go test's
// default) that the runs drafted on state layouts, accepted drafts and
// took spare pages (100 runs do so dozens of times, at least 45, 16 and
// 5 in each of 150 go test runs), and, of 300 runs or more, that they started a step
// inside a sequence's drafts (about 12 times per 100 runs but from 0 to
// 27: a CI race run of 100 saw none) and forked, swapped out, preempted
// and truncated sequences with drafts pending (each about 3 times per
// 100 runs). CI's state-machine job runs 3,000. Fewer runs (CI's 32-bit
// pass runs 10) are not asked for any.
func (y *hyTally) checkDrafts(t *testing.T) {
	t.Logf("%d runs, state drafts: %+v", y.runs, y.sd)
	if y.runs < 100 {
		return
	}
	sd := y.sd
	ops := map[string]int{"drafted": sd.drafted, "accepted": sd.accepted, "took spares for": sd.taken}
	if y.runs >= 300 {
		ops["inside"] = sd.inside
		ops["forked"], ops["swapped"], ops["preempted"], ops["truncated"] = sd.forked, sd.swapped, sd.preempted, sd.truncated
		ops["released spares of"], ops["forked with spares of"], ops["reclaimed spares of"] = sd.released, sd.forkSpares, sd.reclaimed
	}
	for name, n := range ops {
		assert.Positive(t, n, "no run %s state drafts", name)
	}
}

// TestGroupsOffloadStateMachine is TestGroupsStateMachine with a host tier
// that offloads, always, and pools small enough that cached blocks of
// every group are evicted to it and hit there: every operation, and some
// runs must onboard blocks of groups 1 and up.
func TestGroupsOffloadStateMachine(t *testing.T) {
	var tally hyTally
	rapid.Check(t, func(t *rapid.T) { runGroupsMachine(t, true, false, &tally) })
	if tally.runs >= 100 { // go test's default; CI's 32-bit pass runs 10
		assert.Positive(t, tally.onboards[0], "no run onboarded group 0's content")
		assert.Positive(t, tally.onboards[1], "no run onboarded content of another group")
	}
	if tally.runs >= 1000 { // its small pools: about 2 runs in 100 retry one
		assert.Positive(t, tally.pinRetries, "no refused call retried with the retention pins released")
	}
	tally.check(t)
}

// runGroupsMachine is one run of the hybrid state machine, adding what it
// saw to tally; offloading forces a host tier that offloads, drafts a
// State group and more drafting.
func runGroupsMachine(t *rapid.T, offloading, drafts bool, tally *hyTally) {
	{
		bs := rapid.SampledFrom([]int{1, 2, 4, 16}).Draw(t, "bs")
		unified := rapid.Bool().Draw(t, "unified")
		groups := drawHybridLayout(t, bs, !unified && rapid.IntRange(0, 3).Draw(t, "multi") > 0)
		if drafts && !slices.ContainsFunc(groups, func(g paged.Group) bool { return g.Kind == paged.State }) {
			// With UnifiedFreeQueue the compat mode's one kind besides
			// full attention: the state replaces the others (and the
			// shared groups, whose targets move).
			st := paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "state pages")}
			if unified {
				groups = slices.DeleteFunc(groups, func(g paged.Group) bool { return g.Kind != paged.FullAttention })
			}
			at := rapid.IntRange(1, len(groups)).Draw(t, "state at")
			groups = slices.Insert(groups, at, st)
			for i := range groups {
				if groups[i].Kind == paged.Shared && groups[i].Target >= at {
					groups[i].Target++
				}
			}
		}
		pages := 0
		for _, g := range groups {
			pages = max(pages, g.Pages)
		}
		hostBlocks := rapid.SampledFrom([]int{0, 4, 16, 64}).Draw(t, "host blocks")
		if drafts {
			hostBlocks = max(hostBlocks, 16) // sequences with drafts swap out
		}
		offload := hostBlocks > 0 && rapid.Bool().Draw(t, "offload")
		blocks := rapid.IntRange(2, 64).Draw(t, "blocks")
		// A state of more pages than the pool's usable blocks is a
		// configuration New refuses.
		blocks = max(blocks, pages+1)
		if drafts || rapid.Bool().Draw(t, "roomy") {
			// Room for a few sequences in every group, so that requests
			// sharing a prefix run together and hit.
			blocks += 8 * len(groups)
		}
		if offloading {
			hostBlocks = rapid.SampledFrom([]int{8, 16, 64}).Draw(t, "host blocks")
			offload, blocks = true, rapid.IntRange(8, 32).Draw(t, "blocks")
		}
		events := cmp.Or(replayEvents(tally.replay), 64)
		if tally.replay == nil && rapid.IntRange(0, 2).Draw(t, "no events") == 0 {
			// The compat configuration's fast paths (allocRun's and
			// commitPair's loops) run only without events (audit28).
			events = 0
		}
		m, err := paged.New(paged.Config{
			BlockSize:        bs,
			NumBlocks:        blocks,
			Groups:           groups,
			UnifiedFreeQueue: unified,
			MaxModelLen:      12 * bs,
			Events:           events,
			HostBlocks:       hostBlocks,
			DisableOffload:   !offload,
			Reserve:          drawReserve(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		h := &hyModel{m: m, groups: groups, bs: bs, shadow: map[int64]uint64{}, host: map[int64]uint64{}, offload: offload}
		defer func() {
			tally.onboards[0] += h.onboards[0]
			tally.onboards[1] += h.onboards[1]
			tally.multiHits += h.multiHits
			tally.pinRetries += h.pinRetries
			tally.givenBack += h.givenBack
			tally.forkedDropped += h.forkedDropped
			tally.sd.add(h.sd)
			tally.runs++
			if h.multiKind() {
				tally.multiRuns++
			}
		}()
		for i := range 3 {
			// The first may be shorter than a block; the others span
			// a few, so that their hits need several blocks of every
			// window.
			p := make([]int32, rapid.IntRange(1+min(i, 1)*2*bs, 5*bs).Draw(t, "prefix"))
			for k := range p {
				p[k] = int32(100*i + k)
			}
			h.prefixes = append(h.prefixes, p)
		}
		next := int32(1 << 20)
		actions := map[string]func(*rapid.T){
			"add": func(t *rapid.T) {
				prompt := append([]int32(nil), rapid.SampledFrom(h.prefixes).Draw(t, "prefix")...)
				for range rapid.IntRange(0, 3*bs).Draw(t, "tail") {
					next++
					prompt = append(prompt, next)
				}
				if s := h.add(t, prompt); s != nil && rapid.Bool().Draw(t, "admit now") {
					h.admit(t, s)
				}
			},
			"fan out": func(t *rapid.T) {
				// Requests sharing a system prompt, one after another: the
				// second branches from the first's prefix (a state
				// checkpoint is taken there) and the third hits it.
				p := rapid.SampledFrom(h.prefixes).Draw(t, "prefix")
				for range rapid.IntRange(2, 3).Draw(t, "fan") {
					prompt := append(slices.Clone(p), h.newTokens(t, &next, 2*bs)...)
					s := h.add(t, prompt)
					if s == nil {
						return
					}
					h.admit(t, s)
				}
			},
			"again": func(t *rapid.T) {
				// A retry, or a later turn: another sequence's tokens
				// again, and maybe more, so whatever of them is cached (on
				// the device or the host) is hit.
				if len(h.seqs) == 0 {
					t.Skip("no sequence")
				}
				o := rapid.SampledFrom(h.seqs).Draw(t, "of")
				prompt := slices.Clone(o.tokens[:len(o.tokens)-o.spec])
				if rapid.Bool().Draw(t, "next turn") {
					prompt = append(prompt, h.newTokens(t, &next, 2*bs)...)
				}
				s := h.add(t, prompt)
				if s == nil {
					return // longer than a sequence may grow
				}
				h.admit(t, s)
			},
			"flush": func(t *rapid.T) {
				// Pool pressure: a request of fresh tokens runs and ends,
				// evicting cached blocks (to the host tier, when on).
				prompt := h.newTokens(t, &next, 12*bs)
				id, cached, err := h.m.Create(prompt, nil)
				if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					return
				}
				if err != nil || cached != 0 {
					t.Fatalf("Create of fresh tokens: %d cached, %v", cached, err)
				}
				s := &hySeq{id: id, tokens: prompt, state: hyRunning}
				h.seqs = append(h.seqs, s)
				h.write(t, s, 0)
				if err := h.m.Free(id); err != nil {
					t.Fatalf("Free: %v", err)
				}
				h.seqs = h.seqs[:len(h.seqs)-1]
			},
			"admit": func(t *rapid.T) { h.admit(t, h.pick(t, hyWaiting)) },
			// Steps dropped before their kernels run (audit18).
			"drop step":  func(t *rapid.T) { h.dropStep(t, &next) },
			"drop admit": h.dropAdmit,
			// Dropped steps given back (audit32).
			"give back":       func(t *rapid.T) { h.giveBack(t, &next) },
			"give back again": func(t *rapid.T) { h.giveBack(t, &next) },
			"append": func(t *rapid.T) {
				s := h.pick(t, hyRunning)
				if s.fresh > 0 || s.spec > 0 {
					// Appending slides windows past the positions before
					// it, so those must have been computed (batched) and
					// accepted.
					t.Skip("fresh tokens not batched yet, or drafts pending")
				}
				toks := h.newTokens(t, &next, 2*bs)
				before := len(s.tokens)
				err := h.m.Append(s.id, toks...)
				if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					if !unified {
						h.pinsNotBlocking(t, "Append", func() error { return h.m.Append(s.id, toks...) })
					}
					// A scheduler preempts or waits; what was fresh belonged
					// to an earlier step.
					s.fresh, s.dropped = 0, false
					return
				}
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				s.grown()
				s.tokens = append(s.tokens, toks...)
				s.fresh += len(toks)
				h.write(t, s, before)
			},
			"draft": func(t *rapid.T) {
				s := h.pick(t, hyRunning)
				// Its fresh tokens were computed (write): their step ran.
				// (Drafts slide no window, so the step's first query reads
				// what it read.)
				s.fresh, s.dropped = 0, false
				before := len(s.tokens)
				if s.spec == 0 && rapid.Bool().Draw(t, "sampled first") {
					// A speculative step: the token sampled last, then the
					// drafts, computed together (a state's tokens before
					// the drafts update it in place, the drafts write
					// states of their own).
					if !h.appendTo(t, s, h.newTokens(t, &next, 1)) {
						return
					}
					s.fresh++
				}
				toks := h.newTokens(t, &next, 2*bs)
				stats, tables := h.snapshot(s)
				err := h.m.AppendSpeculative(s.id, toks...)
				if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
					if !unified {
						// All or nothing, the states' pages included.
						h.unchanged(t, "AppendSpeculative", stats, []*hySeq{s}, tables)
						h.pinsNotBlocking(t, "AppendSpeculative", func() error { return h.m.AppendSpeculative(s.id, toks...) })
					}
					h.write(t, s, before) // the token sampled, alone
					return
				}
				if err != nil {
					t.Fatalf("AppendSpeculative: %v", err)
				}
				s.grown()
				s.tokens = append(s.tokens, toks...)
				s.fresh += len(toks)
				s.spec += len(toks)
				if h.hasState() {
					h.sd.drafted++
				}
				h.write(t, s, before)
			},
			"accept": func(t *rapid.T) {
				s := h.pick(t, hyRunning)
				n := rapid.IntRange(0, s.spec).Draw(t, "accepted")
				if err := h.m.AcceptSpeculative(s.id, n); err != nil {
					t.Fatalf("AcceptSpeculative(%d of %d): %v", n, s.spec, err)
				}
				if n > 0 && h.hasState() {
					h.sd.accepted++
				}
				s.cut(s.spec - n)
				s.spec = 0
			},
			"truncate": func(t *rapid.T) {
				s := h.pick(t, rapid.SampledFrom([]hyState{hyRunning, hyWaiting, hySwapped}).Draw(t, "state"))
				n := rapid.IntRange(1, len(s.tokens)).Draw(t, "keep")
				stats, before := h.m.Stats(), h.tables(s)
				err := h.m.Truncate(s.id, n)
				switch {
				case s.state == hySwapped:
					if !errors.Is(err, paged.ErrSequenceState) {
						t.Fatalf("Truncate of a swapped-out sequence: %v", err)
					}
				case !h.truncatable(s, n):
					if !errors.Is(err, paged.ErrInvalid) {
						t.Fatalf("Truncate(%v, %d) of %d tokens: %v, want ErrInvalid", s.id, n, len(s.tokens), err)
					}
					h.unchanged(t, "Truncate", stats, []*hySeq{s}, [][][]allocator.BlockID{before})
				case err != nil:
					t.Fatalf("Truncate(%v, %d) of %d tokens: %v", s.id, n, len(s.tokens), err)
				default:
					if s.state == hyRunning && n < len(s.tokens) && s.spec > 0 && h.hasState() {
						h.sd.truncated++
					}
					s.cut(len(s.tokens) - n)
				}
			},
			"fork": func(t *rapid.T) {
				p := h.pick(t, hyRunning)
				stats, tables := h.snapshot(p)
				id, err := h.m.Fork(p.id)
				if errors.Is(err, paged.ErrNoSpace) && h.hasState() {
					h.unchanged(t, "Fork", stats, []*hySeq{p}, tables)
					h.pinsNotBlocking(t, "Fork", func() error {
						_, err := h.m.Fork(p.id)
						return err
					})
					return // no room for the child's state pages
				}
				if err != nil {
					t.Fatalf("Fork: %v", err)
				}
				if p.spec > 0 && h.hasState() {
					h.sd.forked++
				}
				c := &hySeq{id: id, tokens: slices.Clone(p.tokens), state: hyRunning, fresh: p.fresh, dropped: p.dropped, spec: p.spec, redo: p.redo}
				h.seqs = append(h.seqs, c)
				h.transfer(t) // the child's state pages are copies
			},
			"swap out": func(t *rapid.T) {
				seqs, ids := h.pickSome(t, hyRunning)
				stats, tables := h.snapshot(seqs...)
				err := h.m.SwapOut(ids...)
				switch {
				case hostBlocks == 0:
					if !errors.Is(err, paged.ErrNoHostTier) {
						t.Fatalf("SwapOut without a host tier: %v", err)
					}
					h.unchanged(t, "SwapOut", stats, seqs, tables)
					return
				case errors.Is(err, paged.ErrNoSpace):
					h.unchanged(t, "SwapOut", stats, seqs, tables)
					return
				case err != nil:
					t.Fatalf("SwapOut: %v", err)
				}
				h.transfer(t)
				for _, s := range seqs {
					s.state = hySwapped
					if !s.dropped {
						// Their step ran (write): computed, they are not
						// computed again after the swap-in, whose window
						// starts at the accepted length.
						s.fresh = 0
					}
					if s.spec > 0 && h.hasState() {
						h.sd.swapped++
					}
				}
			},
			"swap in": func(t *rapid.T) {
				seqs, ids := h.pickSome(t, hySwapped)
				answer, _, err := h.m.CanSwapIn(ids...)
				if err != nil {
					t.Fatalf("CanSwapIn: %v", err)
				}
				stats, tables := h.snapshot(seqs...)
				err = h.m.SwapIn(ids...)
				switch {
				case answer == paged.AdmitLater && errors.Is(err, paged.ErrNoSpace),
					answer == paged.AdmitNever && errors.Is(err, paged.ErrNever):
					h.unchanged(t, "SwapIn", stats, seqs, tables)
					return
				case answer != paged.AdmitOK || err != nil:
					t.Fatalf("SwapIn after CanSwapIn answered %v: %v", answer, err)
				}
				h.transfer(t)
				for _, s := range seqs {
					s.state = hyRunning
					h.checkSwappedIn(t, s)
				}
			},
			"onboard": func(t *rapid.T) {
				s := h.pick(t, hyWaiting)
				stats := h.m.Stats()
				n, err := h.m.Onboard(s.id)
				switch {
				case hostBlocks == 0:
					if !errors.Is(err, paged.ErrNoHostTier) {
						t.Fatalf("Onboard without a host tier: %v", err)
					}
					return
				case errors.Is(err, paged.ErrNoSpace):
					h.unchanged(t, "Onboard", stats, nil, nil)
					return
				case err != nil:
					t.Fatalf("Onboard: %v", err)
				case n > 0 && !offload:
					t.Fatalf("Onboard moved %d blocks with offloading off", n)
				}
				if got := h.m.Stats().Tiers.Onboards - stats.Tiers.Onboards; got != uint64(n) {
					t.Fatalf("Onboard returned %d, the statistics count %d", n, got)
				}
				h.transfer(t)
				if n > 0 {
					// Onboarded content is on the device now: a second call
					// finds nothing left on the host for it.
					if again, err := h.m.Onboard(s.id); err != nil || again != 0 {
						t.Fatalf("second Onboard: %d, %v", again, err)
					}
				}
			},
			"preempt": func(t *rapid.T) {
				s := h.pick(t, hyRunning)
				if err := h.m.Preempt(s.id); err != nil {
					t.Fatalf("Preempt: %v", err)
				}
				if s.spec > 0 && h.hasState() {
					h.sd.preempted++
				}
				s.cut(s.spec) // drafts are dropped
				s.state, s.fresh, s.dropped, s.redo, s.dropNow = hyWaiting, 0, false, 0, false
			},
			"free": func(t *rapid.T) {
				s := h.pick(t, rapid.SampledFrom([]hyState{hyRunning, hyWaiting, hySwapped}).Draw(t, "state"))
				if err := h.m.Free(s.id); err != nil {
					t.Fatalf("Free: %v", err)
				}
				h.seqs = slices.DeleteFunc(h.seqs, func(x *hySeq) bool { return x == s })
			},
			"reset": func(t *rapid.T) {
				// ResetCache, maybe after every request ended: refused
				// while blocks are held (audit23), else every cached
				// block of every group is given up, on both tiers.
				if rapid.Bool().Draw(t, "end all") {
					for _, s := range h.seqs {
						if err := h.m.Free(s.id); err != nil {
							t.Fatalf("Free: %v", err)
						}
					}
					h.seqs = nil
				}
				before := h.m.Stats()
				err := h.m.ResetCache()
				if before.UsedBlocks > 0 || before.Tiers.HostUsed > 0 {
					if !errors.Is(err, paged.ErrCacheInUse) {
						t.Fatalf("ResetCache with blocks held: %v", err)
					}
					h.unchanged(t, "ResetCache", before, nil, nil)
					return
				}
				if err != nil {
					t.Fatalf("ResetCache: %v", err)
				}
				if st := h.m.Stats(); st.CachedBlocks != 0 && !unified || st.Tiers.HostCached != 0 {
					t.Fatalf("ResetCache left %d device and %d host blocks cached", st.CachedBlocks, st.Tiers.HostCached)
				}
			},
			"batch": func(t *rapid.T) {
				h.transfer(t)
				var sched []paged.Scheduled
				for _, s := range h.seqs {
					if s.state == hyRunning && s.fresh > 0 {
						sched = append(sched, paged.Scheduled{ID: s.id, NewTokens: s.fresh})
						s.fresh, s.dropped = 0, false
					}
				}
				// The persistent batch write builds: its rows must follow
				// every change to the tables since.
				b := &h.batch
				// A Flash-Decoding split of the step (audit23).
				b.SplitUnits = rapid.IntRange(0, 6).Draw(t, "split units")
				b.SplitMinChunk = rapid.IntRange(0, 3).Draw(t, "split min chunk")
				h.endStep()
				if err := h.m.BuildBatch(b, sched); err != nil {
					t.Fatalf("BuildBatch: %v", err)
				}
				if len(b.Swaps)+len(b.Copies) > 0 {
					t.Fatalf("BuildBatch drained %d swaps and %d copies after a transfer", len(b.Swaps), len(b.Copies))
				}
				h.checkSplit(t, b, sched)
				for g := range groups {
					width, tab, slots := b.Stride, b.Tables, b.Slots
					if g > 0 {
						tab, slots = b.GroupTables[g-1], b.GroupSlots[g-1]
					}
					if groups[g].Kind == paged.State {
						width = groups[g].Pages
						h.checkDrafts(t, g, sched)
					}
					q := 0
					for i, sc := range sched {
						table, _ := h.m.TableGroup(sc.ID, g)
						if groups[g].Kind == paged.State {
							table = table[:width] // its drafts' states: StateDrafts
						}
						row := tab[i*width : (i+1)*width]
						for k := range row {
							want := int32(0) // padding
							if k < len(table) {
								want = int32(table[k])
							}
							if row[k] != want {
								t.Fatalf("group %d row of %v entry %d: batch %d, table %v", g, sc.ID, k, row[k], table)
							}
						}
						if groups[g].Kind == paged.State {
							continue
						}
						n := int(b.SeqLens[i])
						for p := n - sc.NewTokens; p < n; p, q = p+1, q+1 {
							if want := int64(table[p/h.bs])*int64(h.bs) + int64(p%h.bs); slots[q] != want {
								t.Fatalf("group %d slot of %v position %d: batch %d, table %v", g, sc.ID, p, slots[q], table)
							}
						}
					}
				}
			},
			"events": func(t *rapid.T) {
				if tally.replay != nil {
					tally.replay(t, h.m, groups)
					return
				}
				for _, e := range h.m.DrainEvents(nil) {
					if e.Group < 0 || e.Group >= len(groups) {
						t.Fatalf("event of group %d", e.Group)
					}
					if e.Kind == paged.BlockStored && len(e.Hashes) == 0 {
						t.Fatalf("empty BlockStored event of group %d", e.Group)
					}
				}
			},
			"": func(t *rapid.T) {
				h.check(t)
				if tally.replay != nil {
					tally.replay(t, h.m, groups)
				}
			},
		}
		if drafts {
			// Drafting more often, and the operations on a sequence with
			// drafts pending.
			for i := range 3 {
				actions[fmt.Sprint("draft ", i)] = actions["draft"]
				actions[fmt.Sprint("admit ", i)] = actions["admit"]
			}
			for _, a := range []string{"draft", "accept", "fork", "swap out", "preempt", "truncate", "free"} {
				f := actions[a]
				for i := range 2 {
					actions[fmt.Sprint(a, " (drafts) ", i)] = func(t *rapid.T) {
						h.drafted = true
						defer func() { h.drafted = false }()
						f(t)
					}
				}
			}
			actions["reject some"] = func(t *rapid.T) {
				// Truncate within the drafts: the states of those cut go,
				// the others stay pending.
				s := h.pick(t, hyRunning)
				if s.spec == 0 {
					t.Skip("no drafts")
				}
				n := rapid.IntRange(len(s.tokens)-s.spec, len(s.tokens)-1).Draw(t, "keep")
				if !h.truncatable(s, n) {
					t.Skip("a window released what the query at n reads")
				}
				if err := h.m.Truncate(s.id, n); err != nil {
					t.Fatalf("Truncate(%v, %d) of %d tokens, %d drafts: %v", s.id, n, len(s.tokens), s.spec, err)
				}
				h.sd.truncated++
				s.cut(len(s.tokens) - n)
			}
			actions["reject some again"] = actions["reject some"]
			for name, f := range actions {
				if name == "" {
					continue
				}
				actions[name] = func(t *rapid.T) {
					before := h.m.Stats().StateSparePages
					defer func() { h.sd.spares(t, name, before, h.m.Stats().StateSparePages) }()
					f(t)
				}
			}
		}
		// Content goes to the host and comes back for a hit only after
		// many steps: the offloading machine runs longer.
		rounds := 1
		if offloading {
			rounds = 4
		}
		for range rounds {
			t.Repeat(actions)
		}
	}
}
