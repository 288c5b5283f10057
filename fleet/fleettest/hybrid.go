package fleettest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// DrawHybridConfig draws a paged.Config of a random hybrid layout (group
// 0 full attention, then one to three groups of any kind: full, sliding
// window, chunked local, state, shared), with events on and sometimes a
// host tier.
func DrawHybridConfig(t *rapid.T) paged.Config {
	bs := rapid.SampledFrom([]int{1, 2, 3, 4}).Draw(t, "bs")
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for range rapid.IntRange(1, 3).Draw(t, "groups") {
		switch rapid.IntRange(0, 5).Draw(t, "kind") {
		case 0, 1:
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 4*bs+1).Draw(t, "window")})
		case 2:
			groups = append(groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 4*bs+1).Draw(t, "chunk")})
		case 3:
			groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")})
		case 4:
			groups = append(groups, paged.Group{Kind: paged.FullAttention})
		case 5:
			target := rapid.IntRange(0, len(groups)-1).Draw(t, "target")
			if k := groups[target].Kind; k == paged.State || k == paged.Shared {
				target = 0
			}
			groups = append(groups, paged.Group{Kind: paged.Shared, Target: target})
		}
	}
	cfg := paged.Config{BlockSize: bs, NumBlocks: rapid.IntRange(12, 64).Draw(t, "blocks"), Groups: groups, Events: 1 << 14}
	if rapid.IntRange(0, 2).Draw(t, "host") == 0 {
		cfg.HostBlocks = rapid.IntRange(4, 32).Draw(t, "hostBlocks")
	}
	return cfg
}

// hybridServer is one paged server of CheckHybridScores.
type hybridServer struct {
	name string
	id   fleet.ServerID // in the index
	m    *paged.Manager
	bs   int
	seqs []paged.SeqID
	evs  []paged.Event
	// lost: a batch was lost and none applied since, so the index
	// cannot know yet (it sees the gap with the next batch).
	lost bool
	// claimsLost: a batch was lost since the last resync, with the
	// events that would have ended claims.
	claimsLost bool
}

// CheckHybridScores checks that an Index on the backends mk returns
// scores hybrid servers exactly: it drives paged Managers of random
// hybrid layouts (DrawHybridConfig, each registered with its
// fleet.LayoutOf) through random workloads (prompts sharing prefixes,
// admissions with state checkpoints, onboarding ahead of admission,
// appends, forks, preemptions, frees, cache resets, resyncs from
// snapshots), feeds
// every event to the index, and before each admission compares the
// admitting server's Score for the prompt with the hit the manager then
// gives it: equal, on a server that is not partial, never more on one
// that is (some event batches are lost, which makes a server partial
// until a resync). mk returns a fresh
// backend for each run. Each server's events also go to a twin without a
// layout, scored by group 0's run: never less than the
// hit, and more in the cases the layout corrects; the server's
// Score.Affinity is that run, and never under its hit. A Pending record
// claims what each admission leaves (Pending.Claim with the server's
// layout; Observe fed the same events, ForgetServer at a resync after
// lost events): the score it extends may not promise a complete server
// more than the hit either. It returns the
// admissions compared exactly, those with a hit, those where the twin
// over-reported, and those compared on a partial server.
func CheckHybridScores(t *testing.T, model string, mk func(t *rapid.T) fleet.Backend) (compared, hits, corrected, partial int) {
	rapid.Check(t, func(t *rapid.T) {
		x, err := fleet.New(fleet.Config{Backend: mk(t), Model: model})
		if err != nil {
			t.Fatal(err)
		}
		// Every admission claims what it leaves (Pending.Claim, from the
		// server's layout); the events end the claims. A later lookup
		// extended by them may not promise a complete server more
		// than its hit.
		pending, err := fleet.NewPending(fleet.PendingConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var servers []*hybridServer
		for i := range rapid.IntRange(1, 3).Draw(t, "servers") {
			cfg := DrawHybridConfig(t)
			m, err := paged.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := &hybridServer{name: fmt.Sprintf("s%d", i), m: m, bs: m.BlockSize()}
			if err := x.SetLayout(s.name, fleet.LayoutOf(cfg)); err != nil {
				t.Fatal(err)
			}
			if s.id, err = x.Register(s.name); err != nil {
				t.Fatal(err)
			}
			if _, err := x.Register(s.name + "-plain"); err != nil {
				t.Fatal(err)
			}
			servers = append(servers, s)
		}
		feed := func() {
			for _, s := range servers {
				s.evs = s.m.DrainEvents(s.evs[:0])
				if len(s.evs) == 0 {
					continue
				}
				if rapid.IntRange(0, 15).Draw(t, "lose") == 0 {
					s.lost = true // the next batch shows the gap
					s.claimsLost = true
					continue
				}
				s.lost = false
				if err := x.Apply(s.name, s.evs); err != nil {
					t.Fatal(err)
				}
				if err := x.Apply(s.name+"-plain", s.evs); err != nil {
					t.Fatal(err)
				}
				if err := pending.Observe(s.id, s.evs); err != nil {
					t.Fatal(err)
				}
			}
		}
		var scores []fleet.Score
		for step := range rapid.IntRange(1, 80).Draw(t, "steps") {
			s := servers[rapid.IntRange(0, len(servers)-1).Draw(t, "server")]
			switch op := rapid.IntRange(0, 6).Draw(t, "op"); {
			case op <= 2 || len(s.seqs) == 0:
				prompt := HybridPrompt(t, s.bs)
				hashes, err := s.m.BlockHashes(nil, prompt, nil)
				if err != nil {
					t.Fatal(err)
				}
				hashes = hashes[:(len(prompt)-1)/s.bs] // a hit leaves the last token to compute
				id, err := s.m.Add(prompt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if s.m.Config().HostBlocks > 0 && rapid.Bool().Draw(t, "onboard") {
					// Ahead of admission, as a server overlapping the
					// transfers with a step does.
					if _, err := s.m.Onboard(id); err != nil && !errors.Is(err, paged.ErrNoSpace) {
						t.Fatal(err)
					}
					s.m.TakeSwaps(nil)
				}
				feed()
				if scores, err = x.Lookup(hashes, scores[:0]); err != nil {
					t.Fatal(err)
				}
				ext := append([]fleet.Score(nil), scores...)
				pending.Extend(hashes, ext)
				dropped, fell := s.m.Stats().CheckpointHitsDropped, s.m.Stats().HitFallbacks
				cached, err := s.m.Admit(id)
				if err != nil {
					if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatal(err)
					}
					if err := s.m.Free(id); err != nil {
						t.Fatal(err)
					}
					break
				}
				s.seqs = append(s.seqs, id)
				s.m.TakeCheckpoints(nil)
				s.m.TakeCopies(nil)
				s.m.TakeSwaps(nil)
				sc := scoreOf(t, scores, s.name)
				esc := scoreOf(t, ext, s.name)
				if err := pending.Claim(sc.Server, hashes, esc, fleet.LayoutOf(s.m.Config())); err != nil {
					t.Fatal(err)
				}
				if g := s.m.Config().Groups; (len(g) == 0 || g[0].Kind == paged.FullAttention) && (sc.Affinity < sc.Blocks || esc.Affinity < esc.Blocks) {
					t.Fatalf("step %d: %s has affinity %d under its hit %d (%d and %d with its claims), with full attention in group 0", step, s.name, sc.Affinity, sc.Blocks, esc.Affinity, esc.Blocks)
				}
				if s.m.Stats().CheckpointHitsDropped != dropped {
					// A state checkpoint hit that did not fit beside the
					// sequence's own pages, computed from scratch instead
					// (paged.Manager.Admit): the index scored what is
					// cached, the manager chose not to use it.
					if cached != 0 {
						t.Fatalf("step %d: %s dropped a checkpoint hit but hit %d tokens", step, s.name, cached)
					}
					break
				}
				if s.m.Stats().HitFallbacks != fell {
					// The longest hit would have made the admission
					// refused for good: the manager took a shorter one
					// (paged.Manager.Admit), under what the index scored.
					if !s.lost && !sc.Partial && cached >= sc.Blocks*s.bs {
						t.Fatalf("step %d: %s fell back from a hit of %d blocks to %d tokens", step, s.name, sc.Blocks, cached)
					}
					break
				}
				if !s.lost && !esc.Partial && esc.Blocks*s.bs > cached {
					t.Fatalf("step %d: %s (%v) scored %d blocks with its claims (%d pending, affinity %d; lookup %d, affinity %d) for a prompt it hit %d tokens of",
						step, s.name, fleet.LayoutOf(s.m.Config()), esc.Blocks, esc.Pending, esc.Affinity, sc.Blocks, sc.Affinity, cached)
				}
				if s.lost {
					break // lost removals may be over-reported until the gap shows
				}
				if sc.Partial {
					// Lost events: the index may only under-report.
					if sc.Blocks*s.bs > cached {
						t.Fatalf("step %d: partial %s scored %d blocks for a prompt it hit %d tokens of", step, s.name, sc.Blocks, cached)
					}
					partial++
					break
				}
				if sc.Blocks*s.bs != cached || sc.Device > sc.Blocks {
					t.Fatalf("step %d: %s (%v) scored %d blocks (%d on the device, partial %v) for a prompt of %d tokens it hit %d tokens of",
						step, s.name, fleet.LayoutOf(s.m.Config()), sc.Blocks, sc.Device, sc.Partial, len(prompt), cached)
				}
				plain := scoreOf(t, scores, s.name+"-plain")
				if plain.Blocks < sc.Blocks {
					t.Fatalf("step %d: %s without a layout scored %d blocks (partial %v), under the hit %d", step, s.name, plain.Blocks, plain.Partial, sc.Blocks)
				}
				if !plain.Partial && (sc.Affinity != plain.Blocks || plain.Affinity != plain.Blocks) {
					t.Fatalf("step %d: %s has affinity %d, its twin without a layout %d and a run of %d blocks of group 0", step, s.name, sc.Affinity, plain.Affinity, plain.Blocks)
				}
				compared++
				if cached > 0 {
					hits++
				}
				if plain.Blocks > sc.Blocks {
					corrected++
				}
			case op == 3:
				i := rapid.IntRange(0, len(s.seqs)-1).Draw(t, "free")
				if err := s.m.Free(s.seqs[i]); err != nil {
					t.Fatal(err)
				}
				s.seqs = append(s.seqs[:i], s.seqs[i+1:]...)
			case op == 4 && rapid.IntRange(0, 3).Draw(t, "rare") == 0:
				// Rebuild the server from a snapshot (checkpoints
				// included), or empty its cache.
				if rapid.Bool().Draw(t, "reset") {
					if err := s.m.ResetCache(); err != nil && !errors.Is(err, paged.ErrCacheInUse) {
						t.Fatal(err)
					}
					break
				}
				var snap paged.Snapshot
				s.m.Snapshot(&snap)
				if err := x.Resync(s.name, &snap); err != nil {
					t.Fatal(err)
				}
				if err := x.Resync(s.name+"-plain", &snap); err != nil {
					t.Fatal(err)
				}
				if s.claimsLost {
					// Lost events may have held the stores and removals
					// that end claims: the snapshot answers for them.
					if err := pending.ForgetServer(s.id); err != nil {
						t.Fatal(err)
					}
					s.claimsLost = false
				}
				s.lost = false
			case op == 4:
				i := rapid.IntRange(0, len(s.seqs)-1).Draw(t, "preempt")
				if running, _ := s.m.Running(s.seqs[i]); running {
					if err := s.m.Preempt(s.seqs[i]); err != nil {
						t.Fatal(err)
					}
				}
			case op == 5 && rapid.IntRange(0, 3).Draw(t, "rare") == 0:
				i := rapid.IntRange(0, len(s.seqs)-1).Draw(t, "fork")
				if running, _ := s.m.Running(s.seqs[i]); running {
					if c, err := s.m.Fork(s.seqs[i]); err == nil {
						s.seqs = append(s.seqs, c)
					} else if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatal(err)
					}
				}
			default:
				i := rapid.IntRange(0, len(s.seqs)-1).Draw(t, "append")
				if running, _ := s.m.Running(s.seqs[i]); running {
					tail := make([]int32, rapid.IntRange(1, 2*s.bs).Draw(t, "tail"))
					for k := range tail {
						tail[k] = int32(rapid.IntRange(0, 3).Draw(t, "tok"))
					}
					if err := s.m.Append(s.seqs[i], tail...); err != nil && !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatal(err)
					}
				}
			}
			if err := s.m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
	return compared, hits, corrected, partial
}

// HybridPrompt draws a prompt of blocks of bs tokens: a shared prefix of
// one of three families, then a random tail.
func HybridPrompt(t *rapid.T, bs int) []int32 {
	family := int32(rapid.IntRange(0, 2).Draw(t, "family"))
	n := rapid.IntRange(1, 6*bs).Draw(t, "shared")
	p := make([]int32, 0, n+2*bs)
	for i := range int32(n) {
		p = append(p, 1000*(family+1)+i)
	}
	for range rapid.IntRange(0, 2*bs).Draw(t, "own") {
		p = append(p, int32(rapid.IntRange(0, 3).Draw(t, "tok")))
	}
	return p
}

// scoreOf returns the score of the server called name.
func scoreOf(t *rapid.T, scores []fleet.Score, name string) fleet.Score {
	for _, s := range scores {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no score for %s", name)
	return fleet.Score{}
}

// CheckLayouts checks a backend's layout records and LookupAll: SetLayout
// compares the state and sets the layout with it, Servers lists it,
// Rename drops it with the old name, and LookupAll gives the holder sets
// of every hash, empty for a hash no server holds, where Lookup may stop.
func CheckLayouts(t *testing.T, b fleet.Backend, model string) {
	require.NoError(t, b.Attach(model, 8))
	id, st, err := b.Register("a", fleet.StreamState{})
	require.NoError(t, err)
	stale := st
	stale.Gen = 99
	_, err = b.SetLayout(id, stale, "b2 full", fleet.StreamState{Gen: 100, HasLayout: true})
	require.ErrorIs(t, err, fleet.ErrConflict, "the state changed: nothing set")
	recs, err := b.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, "", recs[id].Layout)
	next := st
	next.Gen, next.HasLayout = st.Gen+1, true
	got, err := b.SetLayout(id, st, "b2 full window:3", next)
	require.NoError(t, err)
	require.Equal(t, next, got)
	recs, err = b.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, fleet.ServerRecord{Name: "a", State: next, Layout: "b2 full window:3"}, recs[id])

	ev := Stored(1, paged.Device, 1, 3)
	after := next
	after.Gen++
	_, err = b.Update(id, next, after, false, []paged.Event{ev})
	require.NoError(t, err)
	words := fleet.WordsFor(8)
	all, states, err := b.LookupAll(Hs(1, 2, 3), words, nil, nil)
	require.NoError(t, err)
	require.Len(t, all, 3*2*words)
	require.Len(t, states, 1)
	bit := uint64(1) << uint(id)
	require.Equal(t, bit, all[0], "block 1 on the device")
	require.Zero(t, all[2*words]|all[2*words+1], "no server holds block 2")
	require.Equal(t, bit, all[4*words], "block 3, after the hole")

	renamed := after
	renamed.Gen, renamed.Life = after.Gen+1, after.Life+1
	renamed.HasLayout = false
	_, err = b.Rename(id, after, "b", renamed)
	require.NoError(t, err)
	recs, err = b.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, fleet.ServerRecord{Name: "b", State: renamed}, recs[id], "the layout went with the old name")
}
