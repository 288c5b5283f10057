package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// audit39Layouts are the directed checkpoint-fit cases: blocks of 4, a
// 2-block prefix with a state checkpoint at its end, and a 24-token prompt
// that, computed from scratch, takes every usable block of the pool
// (blocks: its blocks plus the null block). With the hit it takes the
// checkpoint's 2 pages more (and, with the window, one block fewer: the
// hit's first window entry is null), so it never fits with it.
var audit39Layouts = []struct {
	name   string
	groups []paged.Group
	blocks int
}{
	// 6 blocks and 2 pages: 8 usable.
	{"state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}, 9},
	// 6 blocks, 6 window blocks (the whole prompt's, at admission) and 2
	// pages: 14 usable.
	{"window+state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 2}}, 15},
}

// TestAudit39CheckpointHitFitsExactly: docs/hybrid.md's Limits said that a
// prompt that fits an empty pool exactly computed from scratch does not
// fit with a state checkpoint hit on its prefix, and that the manager
// refused it (ErrNoSpace in an empty pool) rather than falling back to the
// miss. Here the prompt fits exactly (one block fewer and the empty pool
// refuses it as never), the checkpoint is cached, nothing runs: Admit,
// AdmitChunk whole and Create admit it from scratch (cached 0, no Copy
// directive, CheckpointHitsDropped 1, no PrefixHitTokens); AdmitChunk in
// chunks of 4 keeps the hit, which its chunks fit (audit40), and the rest
// of the prompt is then appended chunk by chunk, alone, Check passing
// after every step.
func TestAudit39CheckpointHitFitsExactly(t *testing.T) {
	const bs = 4
	prompt := func(with func(int32, int) []int32) []int32 { return with(300, 16) } // 24 tokens
	for _, l := range audit39Layouts {
		// Exactly: the empty pool admits the prompt, one block fewer never.
		for _, extra := range []int{0, -1} {
			e, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: l.blocks + extra, Groups: l.groups})
			require.NoError(t, err)
			id, err := e.Add(seqOf(1, 24), nil)
			require.NoError(t, err)
			a, err := e.CanAdmit(id)
			require.NoError(t, err)
			want := paged.AdmitOK
			if extra < 0 {
				want = paged.AdmitNever
			}
			require.Equal(t, want, a, "%s: an empty pool of %d blocks", l.name, l.blocks+extra)
		}
		for _, op := range []string{"Admit", "AdmitChunk", "AdmitChunk4", "Create"} {
			t.Run(fmt.Sprintf("%s/%s", l.name, op), func(t *testing.T) {
				m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: l.blocks, Groups: l.groups})
				require.NoError(t, err)
				with := branchedAt(t, m, seqOf(1, 8))
				p := prompt(with)
				require.Len(t, p, 24)
				st := m.Stats()
				require.Zero(t, st.Running)
				require.Zero(t, st.UsedBlocks, "an idle pool, its content cached")
				require.Positive(t, st.CachedBlocks)
				// The lookup finds the checkpoint: a shorter prompt on the
				// prefix, which fits with it, hits it.
				probe := with(400, 1)
				pid, cached, err := m.Create(probe, nil)
				require.NoError(t, err)
				require.Equal(t, 8, cached, "the checkpoint hit, where it fits")
				m.TakeCopies(nil)
				require.NoError(t, m.Free(pid))
				before := m.Stats()
				require.Zero(t, before.CheckpointHitsDropped)

				var id paged.SeqID
				var rest []int32
				k := 0
				switch op {
				case "Create":
					id, cached, err = m.Create(p, nil)
					require.NoError(t, err, "a prompt that fits the idle pool computed from scratch")
				default:
					id, err = m.Add(p, nil)
					require.NoError(t, err)
					a, err := m.CanAdmit(id)
					require.NoError(t, err)
					assert.Equal(t, paged.AdmitOK, a, "CanAdmit answers for the miss")
					switch op {
					case "Admit":
						cached, err = m.Admit(id)
					case "AdmitChunk":
						k = len(p)
					case "AdmitChunk4":
						k = 4
					}
					if k > 0 {
						a, err = m.CanAdmitChunk(id, k)
						require.NoError(t, err)
						assert.Equal(t, paged.AdmitOK, a)
						cached, rest, err = m.AdmitChunk(id, k, nil)
					}
					require.NoError(t, err, "a prompt that fits the idle pool computed from scratch")
				}
				after := m.Stats()
				if op == "AdmitChunk4" {
					// In chunks of 4 the hit fits (the checkpoint's pages
					// are held at the admission's step only, the window
					// slides between chunks): kept since audit40
					// (TestAudit40ChunkHitKept), where the whole prompt's
					// plan dropped it for every cut.
					assert.Equal(t, 8, cached, "the checkpoint hit, kept in chunks")
					assert.Len(t, m.TakeCopies(nil), 2, "the checkpoint's state copied")
					assert.Zero(t, after.CheckpointHitsDropped)
					assert.Equal(t, before.PrefixHitTokens+8, after.PrefixHitTokens)
				} else {
					assert.Zero(t, cached, "computed from scratch")
					assert.Empty(t, m.TakeCopies(nil), "no state copied from the checkpoint")
					assert.Equal(t, uint64(1), after.CheckpointHitsDropped, "the dropped hit counted")
					assert.Equal(t, before.PrefixHitTokens, after.PrefixHitTokens, "no hit counted")
				}
				require.NoError(t, m.Check())
				for len(rest) > 0 {
					m.TakeCheckpoints(nil)
					m.TakeCopies(nil)
					m.EndStep()
					n := min(k, len(rest))
					require.NoError(t, m.Append(id, rest[:n]...), "alone, %d left", len(rest))
					rest = rest[n:]
					require.NoError(t, m.Check())
				}
				if k != 4 {
					assert.Equal(t, l.blocks-1, m.Stats().UsedBlocks, "the whole pool, exactly")
				}
				require.NoError(t, m.Free(id))
				require.NoError(t, m.Check())
			})
		}
	}
}

// TestAudit39IdleCacheNeverBlocksRapid: in an idle pool (no sequence
// running, no prefix pin), what is cached (prefixes computed and freed,
// state checkpoints at their branch points) never makes an admission
// wait or be refused where an empty pool of the same configuration admits
// it now: Admit, AdmitChunk and Create succeed wherever the empty pool's
// do, on layouts of full attention with a State group and, in some runs, a
// window group, with or without a host tier, and a prompt admitted in
// chunks is then computed alone.
// Where the admission drops a checkpoint hit (CheckpointHitsDropped), it
// returns 0 cached tokens.
func TestAudit39IdleCacheNeverBlocksRapid(t *testing.T) {
	var admitted, dropped, host int
	defer func() {
		t.Logf("%d admitted where the empty pool admits, %d of them dropping a checkpoint hit, %d onboarding a host hit", admitted, dropped, host)
	}()
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		if rapid.Bool().Draw(t, "win") {
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")})
		}
		groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")})
		cfg := paged.Config{BlockSize: bs, NumBlocks: rapid.IntRange(4, 24).Draw(t, "blocks"), Groups: groups,
			Watermark: float64(rapid.IntRange(0, 2).Draw(t, "wm")) * 0.05,
			// A host tier in some runs: evicted checkpoint pages offloaded
			// there, a hit onboarding them.
			HostBlocks: rapid.SampledFrom([]int{0, 0, 4, 16}).Draw(t, "host")}
		m, err := paged.New(cfg)
		if err != nil {
			t.Skip(err)
		}
		e, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Cache prefixes: each computed whole (Create) and freed, some
		// twice with different tails, for a checkpoint at the branch.
		pre := rapid.IntRange(1, 4).Draw(t, "preblocks") * bs
		for i := range rapid.IntRange(1, 4).Draw(t, "cachedRuns") {
			p := append(seqOf(1, pre), seqOf(100*(i+1), rapid.IntRange(1, 2*bs).Draw(t, "cacheTail"))...)
			id, _, err := m.Create(p, nil)
			if err != nil {
				continue // does not fit: nothing cached from it
			}
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			m.EndStep()
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		if rapid.Bool().Draw(t, "flush") {
			// A sequence of fresh tokens evicts some of it (to the host
			// tier, if any), then is freed: cached too.
			if id, _, err := m.Create(seqOf(9000, rapid.IntRange(1, cfg.NumBlocks*bs).Draw(t, "flushLen")), nil); err == nil {
				m.TakeCheckpoints(nil)
				m.TakeCopies(nil)
				m.EndStep()
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
			}
		}
		p := append(seqOf(1, rapid.IntRange(0, pre/bs).Draw(t, "shared")*bs), seqOf(5000, rapid.IntRange(1, 8*bs).Draw(t, "tail"))...)
		op := rapid.IntRange(0, 2).Draw(t, "op") // Admit, AdmitChunk, Create
		k := 0
		if op == 1 {
			k = rapid.IntRange(1, len(p)).Draw(t, "k")
		}
		admit := func(m *paged.Manager) (paged.SeqID, int, []int32, error) {
			if op == 2 {
				id, cached, err := m.Create(p, nil)
				return id, cached, nil, err
			}
			id, err := m.Add(p, nil)
			if err != nil {
				return 0, 0, nil, err
			}
			if op == 0 {
				cached, err := m.Admit(id)
				return id, cached, nil, err
			}
			cached, rest, err := m.AdmitChunk(id, k, nil)
			return id, cached, rest, err
		}
		// compute appends the rest of a prompt admitted in chunks, a
		// chunk a step, alone.
		compute := func(m *paged.Manager, id paged.SeqID, rest []int32) error {
			for len(rest) > 0 {
				m.TakeCheckpoints(nil)
				m.TakeCopies(nil)
				m.EndStep()
				n := min(k, len(rest))
				if err := m.Append(id, rest[:n]...); err != nil {
					return fmt.Errorf("chunk of %d with %d left: %w", n, len(rest), err)
				}
				rest = rest[n:]
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			return nil
		}
		if eid, _, rest, err := admit(e); err != nil {
			t.Skip(err) // the empty pool does not admit it now
		} else if err := compute(e, eid, rest); err != nil {
			t.Skip(err) // nor compute it alone in chunks of k
		}
		before := m.Stats()
		if before.Running != 0 || before.UsedBlocks != 0 {
			t.Fatalf("not idle: %+v", before)
		}
		id, cached, rest, err := admit(m)
		if err != nil {
			t.Fatalf("op %d (chunks of %d): the empty pool admits a %d-token prompt, the idle cached one refuses it: %v", op, k, len(p), err)
		}
		after := m.Stats()
		admitted++
		if after.Tiers.HostHitBlocks > before.Tiers.HostHitBlocks {
			host++
		}
		if after.CheckpointHitsDropped > before.CheckpointHitsDropped {
			dropped++
			if cached != 0 {
				t.Fatalf("dropped a checkpoint hit, cached %d", cached)
			}
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		if err := compute(m, id, rest); err != nil {
			t.Fatalf("alone (cached %d, empty pool computed it): %v", cached, err)
		}
	})
}
