package paged

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The scribble rig drives two managers of one configuration with the same
// random operations. The caller of the first reuses every buffer it
// passes as soon as the call returns, and overwrites everything a call
// gives back that its documentation lets it keep and does not forbid it
// to write (events' slices, directives, checkpoints, snapshots, a batch's
// per-step rows, its own input buffers); the caller of the second never
// does. Any slice the manager keeps from its caller, or hands out while
// still reading it, then shows as a failed Check or a decision (error,
// hit, table, token, event, directive, batch row) that differs between
// the twins.

const junk32 = -77777 // a token or block ID no manager holds

// cl copies s, nil when empty, so that comparisons ignore nil against
// empty.
func cl[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func scribble32(s []int32) {
	for i := range s {
		s[i] = junk32
	}
}

func scribbleIDs[T ~int32](s []T) {
	for i := range s {
		s[i] = T(junk32)
	}
}

func scribbleHashes(s []Hash) {
	for i := range s {
		for j := range s[i] {
			s[i][j] = 0xAB
		}
	}
}

func scribbleEvents(evs []Event) {
	for i := range evs {
		scribbleHashes(evs[i].Hashes)
		scribble32(evs[i].Tokens)
		evs[i] = Event{Seq: 1 << 60, Kind: BlockRemoved, Hashes: evs[i].Hashes, Tokens: evs[i].Tokens, BlockSize: -1, Group: 99}
	}
}

// cloneEvents deep-copies events, so the scribbled twin's are kept as
// they came.
func cloneEvents(evs []Event) []Event {
	out := cl(evs)
	for i := range out {
		out[i].Hashes = cl(out[i].Hashes)
		out[i].Tokens = cl(out[i].Tokens)
	}
	return out
}

// scribbleBatch overwrites the rows of b that a step rewrites whole, and
// the directives: everything but Tables and GroupTables, which Batch's
// doc keeps the caller from modifying (they are persistent; writing them
// makes the next batches of the state and chunk configurations differ).
func scribbleBatch(b *Batch) {
	scribble32(b.SeqLens)
	for i := range b.Seqs {
		b.Seqs[i] = 1 << 40
	}
	scribble32(b.QueryLens)
	scribble32(b.QueryStart)
	scribble32(b.BlocksPerSeq)
	for i := range b.Slots {
		b.Slots[i] = -1
	}
	for i := range b.Copies {
		b.Copies[i] = Copy{Src: junk32, Dst: junk32}
	}
	for i := range b.Swaps {
		b.Swaps[i] = Swap{Src: junk32, Dst: junk32, Group: 99}
	}
	for _, s := range b.GroupSlots {
		for i := range s {
			s[i] = -1
		}
	}
}

type scribbleTwin struct {
	m      *Manager
	evs    []Event
	b      Batch
	snap   Snapshot
	cks    []Checkpoint
	prompt []int32 // reused prompt buffer (the scribbled twin only)
	hashes []Hash
	rest   []int32
}

type scribbleRig struct {
	t      *testing.T
	r      *rand.Rand
	a, b   *scribbleTwin // a is scribbled, b is clean
	seqs   []SeqID
	pins   []PinID
	groups int
	step   int
}

func (g *scribbleRig) same(what string, x, y any) {
	g.t.Helper()
	require.Equal(g.t, y, x, "step %d: %s differs between the scribbled and the clean twin", g.step, what)
}

// compare checks both managers and every sequence's table, group tables
// and tokens, and drains and compares their events.
func (g *scribbleRig) compare() {
	g.t.Helper()
	require.NoError(g.t, g.a.m.Check(), "step %d: the scribbled twin fails Check", g.step)
	require.NoError(g.t, g.b.m.Check(), "step %d", g.step)
	g.same("Stats", g.a.m.Stats(), g.b.m.Stats())
	g.same("PinStats", g.a.m.PinStats(), g.b.m.PinStats())
	for _, id := range g.seqs {
		for grp := range g.groups {
			ta, ea := g.a.m.TableGroup(id, grp)
			tb, eb := g.b.m.TableGroup(id, grp)
			g.same(fmt.Sprintf("TableGroup(%v, %d) error", id, grp), ea == nil, eb == nil)
			g.same(fmt.Sprintf("TableGroup(%v, %d)", id, grp), cl(ta), cl(tb))
		}
		ka, _ := g.a.m.Tokens(id)
		kb, _ := g.b.m.Tokens(id)
		g.same(fmt.Sprintf("Tokens(%v)", id), cl(ka), cl(kb))
	}
	g.a.evs = g.a.m.DrainEvents(g.a.evs[:0])
	g.b.evs = g.b.m.DrainEvents(g.b.evs[:0])
	g.same("events", cloneEvents(g.a.evs), cloneEvents(g.b.evs))
	scribbleEvents(g.a.evs)
	g.a.m.Snapshot(&g.a.snap)
	g.b.m.Snapshot(&g.b.snap)
	g.same("snapshot", cl(g.a.snap.Blocks), cl(g.b.snap.Blocks))
	for i := range g.a.snap.Blocks {
		g.a.snap.Blocks[i] = CachedBlock{Group: 99}
	}
}

// both calls f on each twin and compares the results.
func (g *scribbleRig) both(what string, f func(*Manager) (int, error)) {
	g.t.Helper()
	na, ea := f(g.a.m)
	nb, eb := f(g.b.m)
	g.same(what, []any{na, ea}, []any{nb, eb})
}

func (g *scribbleRig) pick() SeqID {
	if len(g.seqs) == 0 {
		return SeqID(1<<20 + 1)
	}
	return g.seqs[g.r.IntN(len(g.seqs))]
}

// prompt draws a prompt from a few shared prefixes, so hits happen.
func (g *scribbleRig) prompt(bs int) []int32 {
	n := 1 + g.r.IntN(6*bs)
	p := make([]int32, n)
	stem := int32(g.r.IntN(3))
	for i := range p {
		if i < 3*bs {
			p[i] = stem*1000 + int32(i)
		} else {
			p[i] = int32(g.r.IntN(50))
		}
	}
	return p
}

func (g *scribbleRig) opts() *SeqOptions {
	if g.r.IntN(3) > 0 {
		return nil
	}
	return &SeqOptions{LoRA: int32(g.r.IntN(2)), MM: []MMRange{{Start: 0, End: 1, Hash: "img"}},
		Retention: &Retention{Priority: g.r.IntN(101), Ticks: int64(g.r.IntN(4))}}
}

// cloneOpts gives the clean twin its own options.
func cloneOpts(o *SeqOptions) *SeqOptions {
	if o == nil {
		return nil
	}
	c := *o
	c.MM = cl(o.MM)
	if o.Retention != nil {
		r := *o.Retention
		c.Retention = &r
	}
	return &c
}

func scribbleOpts(o *SeqOptions) {
	if o == nil {
		return
	}
	for i := range o.MM {
		o.MM[i] = MMRange{Start: 0, End: 1 << 30, Hash: "junk"}
	}
	if o.Retention != nil {
		*o.Retention = Retention{Priority: -5, Ticks: -5}
	}
	o.LoRA, o.Salt = 77, "junk"
}

// running returns the sequences both twins run, in a random order.
func (g *scribbleRig) running() []Scheduled {
	var sc []Scheduled
	for _, id := range g.seqs {
		if ok, err := g.b.m.Running(id); err == nil && ok && g.r.IntN(3) > 0 {
			sc = append(sc, Scheduled{ID: id, NewTokens: 1})
		}
	}
	g.r.Shuffle(len(sc), func(i, j int) { sc[i], sc[j] = sc[j], sc[i] })
	return sc
}

func (g *scribbleRig) op() {
	bs := g.a.m.BlockSize()
	a, b := g.a.m, g.b.m
	switch g.r.IntN(18) {
	case 0, 1: // Add, Create, AddHashed or AddFromHashes with reused buffers
		p, o := g.prompt(bs), g.opts()
		g.a.prompt = append(g.a.prompt[:0], p...)
		var ia, ib SeqID
		var ea, eb error
		switch g.r.IntN(4) {
		case 0:
			ia, ea = a.Add(g.a.prompt, o)
			ib, eb = b.Add(cl(p), cloneOpts(o))
		case 1:
			var ca, cb int
			ia, ca, ea = a.Create(g.a.prompt, o)
			ib, cb, eb = b.Create(cl(p), cloneOpts(o))
			g.same("Create cached", ca, cb)
		case 2:
			hs, err := b.BlockHashes(nil, p, o)
			require.NoError(g.t, err)
			g.a.hashes = append(g.a.hashes[:0], hs...)
			ia, ea = a.AddHashed(g.a.prompt, g.a.hashes, o)
			ib, eb = b.AddHashed(cl(p), cl(hs), cloneOpts(o))
			scribbleHashes(g.a.hashes)
		default:
			hs, err := b.BlockHashes(nil, p, o)
			require.NoError(g.t, err)
			g.a.hashes = append(g.a.hashes[:0], hs...)
			ia, ea = a.AddFromHashes(g.a.hashes, len(p), o)
			ib, eb = b.AddFromHashes(cl(hs), len(p), cloneOpts(o))
			scribbleHashes(g.a.hashes)
		}
		scribble32(g.a.prompt)
		scribbleOpts(o)
		g.same("Add error", ea, eb)
		g.same("Add id", ia, ib)
		if ea == nil {
			g.seqs = append(g.seqs, ia)
		}
	case 2: // Admit or AdmitChunk
		id := g.pick()
		if g.r.IntN(2) == 0 {
			g.both("Admit", func(m *Manager) (int, error) { return m.Admit(id) })
			return
		}
		n := 1 + g.r.IntN(2*bs)
		g.a.rest = append(g.a.rest[:0], 5, 6)
		ca, ra, ea := a.AdmitChunk(id, n, g.a.rest)
		cb, rb, eb := b.AdmitChunk(id, n, []int32{5, 6})
		g.same("AdmitChunk", []any{ca, cl(ra), ea}, []any{cb, cl(rb), eb})
		scribble32(ra)
	case 3, 4, 5: // Append a few tokens, or a decode step through a batch
		if g.r.IntN(2) == 0 {
			id := g.pick()
			toks := []int32{int32(g.r.IntN(50)), int32(g.r.IntN(50))}[:1+g.r.IntN(2)]
			ta := cl(toks)
			ea := a.Append(id, ta...)
			eb := b.Append(id, toks...)
			scribble32(ta)
			g.same("Append", ea, eb)
			return
		}
		sc := g.running()
		toks := make([]int32, len(sc))
		for i := range toks {
			toks[i] = int32(g.r.IntN(50))
		}
		sa, ta := cl(sc), cl(toks)
		var na, nb int
		var ea, eb error
		if g.r.IntN(2) == 0 {
			na, ea = a.DecodeStep(&g.a.b, sa, ta)
			nb, eb = b.DecodeStep(&g.b.b, sc, toks)
		} else {
			na, ea = a.AppendStep(sa, ta)
			nb, eb = b.AppendStep(sc, toks)
		}
		scribble32(ta)
		for i := range sa {
			sa[i] = Scheduled{ID: 1 << 40, NewTokens: -1}
		}
		g.same("step", []any{na, ea}, []any{nb, eb})
	case 6: // BuildBatch
		sc := g.running()
		sa := cl(sc)
		ea := a.BuildBatch(&g.a.b, sa)
		eb := b.BuildBatch(&g.b.b, sc)
		for i := range sa {
			sa[i] = Scheduled{ID: 1 << 40, NewTokens: -1}
		}
		g.same("BuildBatch error", ea, eb)
		if ea == nil {
			g.same("batch", g.a.b.exported(), g.b.b.exported())
		}
		scribbleBatch(&g.a.b)
	case 7: // TakeCheckpoints, then overwrite the pages' view
		g.a.cks = a.TakeCheckpoints(g.a.cks[:0])
		g.b.cks = b.TakeCheckpoints(g.b.cks[:0])
		ca := make([]Checkpoint, len(g.a.cks))
		for i, c := range g.a.cks {
			ca[i] = c
			ca[i].Pages = cl(c.Pages)
		}
		cb := make([]Checkpoint, len(g.b.cks))
		for i, c := range g.b.cks {
			cb[i] = c
			cb[i].Pages = cl(c.Pages)
		}
		g.same("checkpoints", ca, cb)
		for i := range g.a.cks {
			scribbleIDs(g.a.cks[i].Pages)
		}
	case 8:
		id := g.pick()
		g.same("Free", a.Free(id), b.Free(id))
	case 9:
		id := g.pick()
		g.same("Preempt", a.Preempt(id), b.Preempt(id))
	case 10:
		id := g.pick()
		fa, ea := a.Fork(id)
		fb, eb := b.Fork(id)
		g.same("Fork", []any{fa, ea}, []any{fb, eb})
		if ea == nil {
			g.seqs = append(g.seqs, fa)
		}
	case 11:
		id := g.pick()
		n := g.r.IntN(4 * bs)
		g.same("Truncate", a.Truncate(id, n), b.Truncate(id, n))
	case 12: // swaps through reused id lists
		ids := []SeqID{g.pick()}
		ia := cl(ids)
		if g.r.IntN(2) == 0 {
			g.same("SwapOut", a.SwapOut(ia...), b.SwapOut(ids...))
		} else {
			g.same("SwapIn", a.SwapIn(ia...), b.SwapIn(ids...))
		}
		for i := range ia {
			ia[i] = 1 << 40
		}
	case 13: // pins from reused buffers
		p := g.prompt(bs)
		until := int64(g.r.IntN(5))
		var pa, pb PinID
		var na, nb int
		var ea, eb error
		if g.r.IntN(2) == 0 {
			g.a.prompt = append(g.a.prompt[:0], p...)
			pa, na, ea = a.Pin(g.a.prompt, nil, until)
			pb, nb, eb = b.Pin(p, nil, until)
			scribble32(g.a.prompt)
		} else {
			hs, err := b.BlockHashes(nil, p, nil)
			require.NoError(g.t, err)
			g.a.hashes = append(g.a.hashes[:0], hs...)
			pa, na, ea = a.PinHashes(g.a.hashes, until)
			pb, nb, eb = b.PinHashes(cl(hs), until)
			scribbleHashes(g.a.hashes)
		}
		g.same("Pin", []any{pa, na, ea}, []any{pb, nb, eb})
		if ea == nil {
			g.pins = append(g.pins, pa)
		}
	case 14:
		if len(g.pins) > 0 {
			p := g.pins[g.r.IntN(len(g.pins))]
			g.same("Unpin", a.Unpin(p), b.Unpin(p))
		}
		now := int64(g.step / 8)
		a.Advance(now)
		b.Advance(now)
	case 16: // drafts from a reused buffer, then accept some
		id := g.pick()
		if g.r.IntN(2) == 0 {
			toks := []int32{int32(g.r.IntN(50)), int32(g.r.IntN(50)), int32(g.r.IntN(50))}
			ta := cl(toks)
			ea := a.AppendSpeculative(id, ta...)
			scribble32(ta)
			g.same("AppendSpeculative", ea, b.AppendSpeculative(id, toks...))
			return
		}
		n := g.r.IntN(4)
		g.same("AcceptSpeculative", a.AcceptSpeculative(id, n), b.AcceptSpeculative(id, n))
	case 17: // Onboard or Uncompute
		id := g.pick()
		if g.r.IntN(2) == 0 {
			g.both("Onboard", func(m *Manager) (int, error) { return m.Onboard(id) })
			return
		}
		n := g.r.IntN(6 * bs)
		g.same("Uncompute", a.Uncompute(id, n), b.Uncompute(id, n))
	case 15: // BlockHashes with reused input and output
		p := g.prompt(bs)
		g.a.prompt = append(g.a.prompt[:0], p...)
		ha, ea := a.BlockHashes(g.a.hashes[:0], g.a.prompt, nil)
		hb, eb := b.BlockHashes(nil, p, nil)
		g.same("BlockHashes", []any{cl(ha), ea}, []any{cl(hb), eb})
		g.a.hashes = ha
		scribbleHashes(ha)
		scribble32(g.a.prompt)
	}
}

// exported returns a deep copy of b's exported rows.
func (b *Batch) exported() []any {
	gt := make([][]int32, len(b.GroupTables))
	for i := range gt {
		gt[i] = cl(b.GroupTables[i])
	}
	gs := make([][]int64, len(b.GroupSlots))
	for i := range gs {
		gs[i] = cl(b.GroupSlots[i])
	}
	return []any{b.Stride, cl(b.Seqs), cl(b.Tables), cl(b.SeqLens),
		cl(b.QueryLens), cl(b.QueryStart), cl(b.Slots),
		cl(b.BlocksPerSeq), cl(b.Copies), cl(b.Swaps), gt, gs}
}

// scribbleSeeds is how many random runs of 200 operations the rig makes
// per configuration; CI's deeper run raises it.
var scribbleSeeds = flag.Int("scribble.seeds", 3, "runs per configuration of TestAudit9ScribbledCallerMemory")

func TestAudit9ScribbledCallerMemory(t *testing.T) {
	const bs = 4
	configs := map[string]Config{
		"plain":  {BlockSize: bs, NumBlocks: 24, Events: 1 << 12, HostBlocks: 12},
		"memo":   {BlockSize: bs, NumBlocks: 24, Events: 1 << 12, HashMemo: true},
		"window": {BlockSize: bs, NumBlocks: 40, Events: 1 << 12, HostBlocks: 16, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2 * bs}}},
		"state":  {BlockSize: bs, NumBlocks: 40, Events: 1 << 12, HostBlocks: 16, Groups: []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}},
		"chunk":  {BlockSize: bs, NumBlocks: 40, Events: 1 << 12, Groups: []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: 2 * bs}, {Kind: Shared, Target: 1}}},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(*scribbleSeeds) {
				ma, err := New(cfg)
				require.NoError(t, err)
				mb, err := New(cfg)
				require.NoError(t, err)
				g := &scribbleRig{t: t, r: rand.New(rand.NewPCG(seed, 9)), a: &scribbleTwin{m: ma}, b: &scribbleTwin{m: mb},
					groups: max(1, len(cfg.Groups))}
				for g.step = 0; g.step < 200; g.step++ {
					g.op()
					g.compare()
				}
			}
		})
	}
}
