package paged_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// ckptShadow is the KV a server keeps for a hybrid manager, written
// through the tables a step at a time: each attention group's KV of a
// position (kvOf of the group and the tokens up to it), each state page's
// state (kvOf of the group's page number and the tokens it absorbed),
// moved by the Copy directives, and the state checkpoints TakeCheckpoints
// hands out written with the state at their position.
type ckptShadow struct {
	m      *paged.Manager
	groups []paged.Group
	bs     int
	kv     map[int64]uint64
	host   map[int64]uint64 // the host tier's blocks
	// toks are the tokens of the sequences the checkpoints name.
	toks map[paged.SeqID][]int32
}

// helperT is what ckptShadow needs of a test: *testing.T or *rapid.T.
type helperT interface {
	Helper()
	Errorf(format string, args ...any)
	FailNow()
}

// step runs one step of sequence id, which holds tokens and computes
// [from, len(tokens)): the Copy directives, the checkpoints, the kernels;
// then it reads back what the next query reads, in every group.
func (c *ckptShadow) step(t helperT, id paged.SeqID, tokens []int32, from int) {
	t.Helper()
	c.toks[id] = tokens
	// The tier stream first (the offloads of evicted content, the
	// onboards of host hits), in order, then the copies.
	for _, d := range c.m.TakeSwaps(nil) {
		src, dst := c.kv, c.kv
		if d.Kind.SrcMedium() == paged.Host {
			src = c.host
		}
		if d.Kind.DstMedium() == paged.Host {
			dst = c.host
		}
		for off := range int64(c.bs) {
			dst[int64(d.Dst)*int64(c.bs)+off] = src[int64(d.Src)*int64(c.bs)+off]
		}
	}
	for _, ck := range c.m.TakeCheckpoints(nil) {
		for j, p := range ck.Pages {
			c.kv[int64(p)*int64(c.bs)] = stateOf(ck.Group, j, c.toks[ck.Seq][:ck.Tokens])
		}
	}
	for _, cp := range c.m.TakeCopies(nil) {
		c.kv[int64(cp.Dst)*int64(c.bs)] = c.kv[int64(cp.Src)*int64(c.bs)]
	}
	for g, gr := range c.groups {
		tab, err := c.m.TableGroup(id, g)
		require.NoError(t, err)
		if gr.Kind == paged.State {
			for j, p := range tab {
				if from > 0 {
					require.Equal(t, stateOf(g, j, tokens[:from]), c.kv[int64(p)*int64(c.bs)], "state group %d page %d of %v: not the state after %d tokens", g, j, id, from)
				}
				c.kv[int64(p)*int64(c.bs)] = stateOf(g, j, tokens)
			}
			continue
		}
		for p := from; p < len(tokens); p++ {
			b := tab[p/c.bs]
			require.NotZero(t, b, "group %d of %v: position %d computed into the null block", g, id, p)
			c.kv[int64(b)*int64(c.bs)+int64(p%c.bs)] = kvOf(int32(g), tokens[:p+1])
		}
	}
	c.m.EndStep()
	c.readBack(t, id, tokens)
}

// readBack checks the KV the query after tokens reads through id's tables.
func (c *ckptShadow) readBack(t helperT, id paged.SeqID, tokens []int32) {
	t.Helper()
	for g, gr := range c.groups {
		tab, err := c.m.TableGroup(id, g)
		require.NoError(t, err)
		if gr.Kind == paged.State {
			for j, p := range tab {
				require.Equal(t, stateOf(g, j, tokens), c.kv[int64(p)*int64(c.bs)], "read-back of %v state group %d page %d", id, g, j)
			}
			continue
		}
		from := 0 // the first position the next query reads
		switch gr.Kind {
		case paged.SlidingWindow:
			from = max(0, len(tokens)-gr.Window+1)
		case paged.ChunkedLocal:
			from = len(tokens) / gr.Chunk * gr.Chunk
		}
		for p := from; p < len(tokens); p++ {
			b := tab[p/c.bs]
			require.Equal(t, kvOf(int32(g), tokens[:p+1]), c.kv[int64(b)*int64(c.bs)+int64(p%c.bs)], "read-back of %v group %d position %d (block %d)", id, g, p, b)
		}
	}
}

// TestAudit40ChunkHitKept: docs/hybrid.md's Limits said that AdmitChunk
// judged whether a state checkpoint hit ever fits from the prompt
// admitted whole, so it dropped, for every cut, a hit whose prefill in
// chunks fits the pool. audit39's layouts (blocks of 4, a checkpoint at 8
// tokens, a 24-token prompt that takes every usable block computed whole
// from scratch, 8 usable on full attention + State, 14 with a window of
// 4 beside), admitted in chunks of k: the hit's 2 pages are held at the
// admission's step only, and the window slides between chunks, so the
// hit fits in chunks of 4 and 8 on full attention + State (12 take 9
// blocks at the admission's step: 5 blocks, 2 pages and the hit's 2) and
// of 4, 8 and 12 with the window (12 take 13 blocks of 14 then). The hit
// is now kept there: cached 8, its pages copied, nothing dropped, and the
// prefill completes alone with the content a server writes read back
// through every table after every step (the checkpoint's state
// restored, the prefix's KV hit), Check passing. In chunks whose first
// step does not fit with it, and admitted whole (k 24), the hit is
// dropped as before.
func TestAudit40ChunkHitKept(t *testing.T) {
	const bs = 4
	for _, l := range audit39Layouts {
		for _, k := range []int{4, 8, 12, 24} {
			t.Run(fmt.Sprintf("%s/chunks=%d", l.name, k), func(t *testing.T) {
				m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: l.blocks, Groups: l.groups})
				require.NoError(t, err)
				sh := &ckptShadow{m: m, groups: l.groups, bs: bs, kv: map[int64]uint64{}, host: map[int64]uint64{}, toks: map[paged.SeqID][]int32{}}
				with := func(tail int32, n int) []int32 { return append(seqOf(1, 8), seqOf(int(tail), n)...) }
				// Two sequences branching after 8 tokens: the second's
				// step writes the checkpoint there.
				for _, tail := range []int32{100, 200} {
					p := with(tail, 5)
					id, cached, err := m.Create(p, nil)
					require.NoError(t, err)
					sh.step(t, id, p, cached)
					require.NoError(t, m.Free(id))
				}
				p := with(300, 16)
				id, err := m.Add(p, nil)
				require.NoError(t, err)
				before := m.Stats()
				a, err := m.CanAdmitChunk(id, k)
				require.NoError(t, err)
				assert.Equal(t, paged.AdmitOK, a)
				cached, rest, err := m.AdmitChunk(id, k, nil)
				require.NoError(t, err)
				after := m.Stats()
				keep := k < 12 || k == 12 && l.name == "window+state"
				if keep {
					assert.Equal(t, 8, cached, "the checkpoint hit kept")
					assert.Zero(t, after.CheckpointHitsDropped)
					assert.Equal(t, before.PrefixHitTokens+8, after.PrefixHitTokens)
					assert.Equal(t, before.Copies+2, after.Copies, "the checkpoint's pages copied")
				} else {
					assert.Zero(t, cached, "the hit dropped")
					assert.Equal(t, uint64(1), after.CheckpointHitsDropped)
					assert.Equal(t, before.PrefixHitTokens, after.PrefixHitTokens)
				}
				require.NoError(t, m.Check())
				have := len(p) - len(rest)
				sh.step(t, id, p[:have], cached)
				peak := m.Stats().UsedBlocks
				for have < len(p) {
					n := min(k, len(p)-have)
					require.NoError(t, m.Append(id, p[have:have+n]...), "alone, %d left", len(p)-have)
					sh.step(t, id, p[:have+n], have)
					have += n
					require.NoError(t, m.Check())
					peak = max(peak, m.Stats().UsedBlocks)
				}
				t.Logf("cached %d, peak %d used blocks", cached, peak)
				if keep {
					assert.LessOrEqual(t, peak, l.blocks-1, "the pool's usable blocks")
				}
				require.NoError(t, m.Free(id))
				require.NoError(t, m.Check())
			})
		}
	}
}

// TestAudit40ChunkHitRapid: a state checkpoint hit AdmitChunk keeps for
// its chunks never costs a request the pool would serve, and its prefill
// progresses alone. Random layouts of full attention, a State group and,
// in some runs, a sliding-window or chunked-local group; up to 31 usable
// blocks (in half the runs about the prompt's size), watermarks, a host
// tier in some runs, a prefix pin in some; prefixes computed and
// freed, a checkpoint at their branch point; in some runs a sequence
// running beside. A prompt on the prefix admitted with AdmitChunk in
// chunks of k:
//   - CanAdmitChunk answers what AdmitChunk does;
//   - where a twin pool with nothing cached but the same prefix pin (in
//     some runs, of unrelated content) admits it and computes it alone
//     in chunks of k, it is admitted, now if nothing runs, else once the sequence
//     beside is freed (a scheduler's wait);
//   - it is then computed alone, in chunks of k (never refused), or in
//     chunks of 1 to 2k halved on a refusal as sched halves them (a
//     one-token chunk never refused), the content a server writes read
//     back through every table after every step, Check passing;
//   - a hit a twin pool with the same content drops admitted whole (Admit)
//     is counted kept where AdmitChunk keeps it.
func TestAudit40ChunkHitRapid(t *testing.T) {
	var admitted, hits, kept, beside, halved, keptHalved int
	defer func() {
		t.Logf("%d admitted, %d with a checkpoint hit, %d of them kept in chunks where admitted whole it is dropped; %d after a sequence beside was freed; %d chunks halved alone, %d of a kept hit", admitted, hits, kept, beside, halved, keptHalved)
	}()
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		switch rapid.IntRange(0, 2).Draw(t, "local") {
		case 1:
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")})
		case 2:
			groups = append(groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 3*bs).Draw(t, "chunk")})
		}
		groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")})
		pre := rapid.IntRange(1, 4).Draw(t, "preblocks") * bs
		var cachedRuns [][]int32
		for i := range rapid.IntRange(2, 3).Draw(t, "cachedRuns") {
			cachedRuns = append(cachedRuns, append(seqOf(1, pre), seqOf(100*(i+1), rapid.IntRange(1, 2*bs).Draw(t, "cacheTail"))...))
		}
		p := append(seqOf(1, rapid.IntRange(1, pre/bs).Draw(t, "shared")*bs), seqOf(5000, rapid.IntRange(1, 8*bs).Draw(t, "tail"))...)
		k := rapid.IntRange(1, len(p)).Draw(t, "k")
		// Half the runs in a pool about the prompt's size computed whole
		// from scratch, where a hit's pages tip the whole admission over.
		blocks := rapid.IntRange(4, 32).Draw(t, "blocks")
		if rapid.Bool().Draw(t, "tight") {
			nb := (len(p) + bs - 1) / bs
			blocks = (len(groups)-1)*nb + groups[len(groups)-1].Pages + 1 + rapid.IntRange(-2, 2).Draw(t, "slack")
		}
		cfg := paged.Config{BlockSize: bs, NumBlocks: max(blocks, 2), Groups: groups,
			Watermark:  float64(rapid.IntRange(0, 2).Draw(t, "wm")) * 0.05,
			HostBlocks: rapid.SampledFrom([]int{0, 0, 4, 16}).Draw(t, "host")}
		newM := func() *paged.Manager {
			m, err := paged.New(cfg)
			if err != nil {
				t.Skip(err)
			}
			return m
		}
		m, w, e := newM(), newM(), newM() // the pool, its whole-admission twin, an empty twin
		sh := &ckptShadow{m: m, groups: groups, bs: bs, kv: map[int64]uint64{}, host: map[int64]uint64{}, toks: map[paged.SeqID][]int32{}}
		// create computes q in mm: Create and its step (the shadow's in m).
		create := func(mm *paged.Manager, q []int32) (paged.SeqID, error) {
			id, cached, err := mm.Create(q, nil)
			if err != nil {
				return id, err
			}
			if mm == m {
				sh.step(t, id, q, cached)
			} else {
				mm.TakeCheckpoints(nil)
				mm.TakeCopies(nil)
				mm.EndStep()
			}
			return id, nil
		}
		var other []int32
		if rapid.Bool().Draw(t, "beside") {
			other = seqOf(9000, rapid.IntRange(1, cfg.NumBlocks*bs/2).Draw(t, "besideLen"))
		}
		mode := rapid.IntRange(0, 1).Draw(t, "mode") // chunks of k; of 1 to 2k, halved on a refusal
		// In some runs a prefix pin holds unrelated content in every pool,
		// the empty twin's too: an idle pool where the pinned blocks never
		// come back.
		if pinLen := rapid.IntRange(0, cfg.NumBlocks*bs/2).Draw(t, "pinLen") * rapid.IntRange(0, 1).Draw(t, "pin"); pinLen > 0 {
			q := seqOf(7000, pinLen)
			for _, mm := range []*paged.Manager{m, w, e} {
				id, err := create(mm, q)
				if err != nil {
					t.Skip(err)
				}
				if err := mm.Free(id); err != nil {
					t.Fatal(err)
				}
				if _, _, err := mm.Pin(q, nil, 0); err != nil {
					t.Fatal(err)
				}
			}
		}

		// The empty twin admits the prompt and computes it alone in chunks
		// of k, or the case is skipped.
		eid, err := e.Add(p, nil)
		if err != nil {
			t.Skip(err) // longer than a sequence may be
		}
		_, rest, err := e.AdmitChunk(eid, k, nil)
		if err != nil {
			t.Skip(err)
		}
		for len(rest) > 0 {
			e.TakeCheckpoints(nil)
			e.TakeCopies(nil)
			e.EndStep()
			n := min(k, len(rest))
			if err := e.Append(eid, rest[:n]...); err != nil {
				t.Skip(err)
			}
			rest = rest[n:]
		}

		var oid, wid paged.SeqID
		hasO, hasW := false, false
		for i, mm := range []*paged.Manager{m, w} {
			for _, c := range cachedRuns {
				id, err := create(mm, c)
				if err != nil {
					continue
				}
				if err := mm.Free(id); err != nil {
					t.Fatal(err)
				}
			}
			if other != nil {
				id, err := create(mm, other)
				if err != nil {
					continue
				}
				if i == 0 {
					oid, hasO = id, true
				} else {
					wid, hasW = id, true
				}
			}
		}
		// The twin admits the prompt whole: does it drop a checkpoint hit?
		wDropped := false
		if id, err := w.Add(p, nil); err == nil {
			if _, err := w.Admit(id); err == nil {
				wDropped = w.Stats().CheckpointHitsDropped > 0
			} else if hasW {
				if err := w.Free(wid); err != nil {
					t.Fatal(err)
				}
				if _, err := w.Admit(id); err == nil {
					wDropped = w.Stats().CheckpointHitsDropped > 0
				}
			}
		}

		id, err := m.Add(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		admit := func() (int, []int32, error) {
			a, err := m.CanAdmitChunk(id, k)
			if err != nil {
				t.Fatal(err)
			}
			cached, rest, err := m.AdmitChunk(id, k, nil)
			want := map[paged.Admission]error{paged.AdmitOK: nil, paged.AdmitLater: paged.ErrNoSpace, paged.AdmitNever: paged.ErrNever}[a]
			if (err == nil) != (want == nil) || err != nil && !errors.Is(err, want) {
				t.Fatalf("CanAdmitChunk(%d) said %v, AdmitChunk returned %v", k, a, err)
			}
			return cached, rest, err
		}
		cached, rest, err := admit()
		if err != nil && hasO {
			// Beside a running sequence the admission may wait: a
			// scheduler waits for it to finish.
			if !errors.Is(err, paged.ErrNoSpace) {
				t.Fatalf("beside a running sequence: %v", err)
			}
			if err := m.Free(oid); err != nil {
				t.Fatal(err)
			}
			hasO = false
			beside++
			cached, rest, err = admit()
		}
		if err != nil {
			t.Fatalf("the empty pool admits the %d-token prompt in chunks of %d, this one refuses it: %v", len(p), k, err)
		}
		admitted++
		have := len(p) - len(rest)
		sh.step(t, id, p[:have], cached)
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		if cached >= pre && cached > 0 {
			hits++
		}
		if wDropped && cached > 0 {
			kept++
		}
		if hasO {
			// Alone from here: the sequence beside finishes.
			if err := m.Free(oid); err != nil {
				t.Fatal(err)
			}
		}
		for have < len(p) {
			n := min(k, len(p)-have)
			if mode == 1 {
				n = min(rapid.IntRange(1, 2*k).Draw(t, "n"), len(p)-have)
			}
			for {
				err := m.Append(id, p[have:have+n]...)
				if err == nil {
					break
				}
				if mode == 0 || n == 1 || !errors.Is(err, paged.ErrNoSpace) {
					t.Fatalf("alone (cached %d), a chunk of %d of chunks of %d with %d left: %v", cached, n, k, len(p)-have, err)
				}
				n /= 2
				halved++
				if wDropped && cached > 0 {
					keptHalved++
				}
			}
			sh.step(t, id, p[:have+n], have)
			have += n
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestAudit40HostPagesCounted: a state checkpoint hit whose pages were
// offloaded to the host tier takes a device block for each page it
// onboards, but planGroups' never test (the blocks held with the hit and
// the checkpoint's pages against the usable ones) and chunkNever's peak
// counted only the pages claimed on the device. Found by
// TestAudit40ChunkHitRapid: blocks of 2, a window of 1 and a State group
// of 3 pages, 18 usable blocks and a 16-block host tier; two requests
// branching after 8 tokens leave a checkpoint there, a 13-token request
// running beside evicts its pages to the host and is then freed. A
// 16-token prompt on the prefix, in chunks of 7, in the idle pool: the
// hit was judged to fit (16 blocks held, its 3 host pages not counted),
// the cut (15 tokens) with it needs 19 blocks of 18, and the cut from
// scratch 19 too, so the hit was neither dropped nor admitted:
// ErrNoSpace with nothing running, for good, where an empty pool admits
// the prompt in chunks of 7 (7 tokens first, 11 blocks). Counted, the
// hit never fits: it is dropped, and the prompt computed from scratch in
// chunks of 7, its content read back after every step.
func TestAudit40HostPagesCounted(t *testing.T) {
	const bs = 2
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}, {Kind: paged.State, Pages: 3}}
	cfg := paged.Config{BlockSize: bs, NumBlocks: 19, HostBlocks: 16, Groups: groups}
	p := append(seqOf(1, 8), seqOf(5000, 8)...)
	const k = 7
	e, err := paged.New(cfg)
	require.NoError(t, err)
	eid, err := e.Add(p, nil)
	require.NoError(t, err)
	_, _, err = e.AdmitChunk(eid, k, nil)
	require.NoError(t, err, "the empty pool admits it in chunks of 7")

	m, err := paged.New(cfg)
	require.NoError(t, err)
	sh := &ckptShadow{m: m, groups: groups, bs: bs, kv: map[int64]uint64{}, host: map[int64]uint64{}, toks: map[paged.SeqID][]int32{}}
	for _, q := range [][]int32{append(seqOf(1, 8), seqOf(100, 1)...), append(seqOf(1, 8), seqOf(200, 3)...)} {
		id, cached, err := m.Create(q, nil)
		require.NoError(t, err)
		sh.step(t, id, q, cached)
		require.NoError(t, m.Free(id))
	}
	other := seqOf(9000, 13)
	oid, cached, err := m.Create(other, nil)
	require.NoError(t, err)
	sh.step(t, oid, other, cached)
	ts, err := m.TierStatsGroup(2)
	require.NoError(t, err)
	require.Positive(t, ts.HostCached, "checkpoint pages offloaded")
	id, err := m.Add(p, nil)
	require.NoError(t, err)
	_, _, err = m.AdmitChunk(id, k, nil)
	require.ErrorIs(t, err, paged.ErrNoSpace, "beside the running sequence")
	require.NoError(t, m.Free(oid))
	require.Zero(t, m.Stats().Running)

	a, err := m.CanAdmitChunk(id, k)
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitOK, a)
	cached, rest, err := m.AdmitChunk(id, k, nil)
	require.NoError(t, err, "idle, the empty pool admits it")
	assert.Zero(t, cached, "the hit, which never fits, dropped")
	assert.Equal(t, uint64(1), m.Stats().CheckpointHitsDropped)
	have := len(p) - len(rest)
	sh.step(t, id, p[:have], cached)
	for have < len(p) {
		n := min(k, len(p)-have)
		require.NoError(t, m.Append(id, p[have:have+n]...))
		sh.step(t, id, p[:have+n], have)
		have += n
		require.NoError(t, m.Check())
	}
	require.NoError(t, m.Free(id))
	require.NoError(t, m.Check())
}
