package sched_test

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// audit26Layouts are layouts with windows, where a prompt's chunked
// prefill peaks higher the larger its chunks (the scheduler shrinks them),
// with and without State groups (whose drafts take pages).
var audit26Layouts = [][]paged.Group{
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}},
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.SlidingWindow, Window: 8}},
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 6}, {Kind: paged.State, Pages: 1}},
	{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 8}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 2}},
}

// aloneFitsN reports whether a prompt can be served alone in a fresh
// manager of configuration cfg with n samples: computed one token a step
// (the lowest peak a chunked prefill has), then n-1 forks of it, then
// maxTokens-1 outputs to each (the last gets no slot), a step at a time.
func aloneFitsN(t *rapid.T, cfg paged.Config, prompt []int32, maxTokens, n int) bool {
	m, err := paged.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Add(prompt, nil)
	if err != nil {
		return false
	}
	_, rest, err := m.AdmitChunk(id, 1, nil)
	if err != nil {
		return false
	}
	for _, tok := range rest {
		m.EndStep()
		if m.Append(id, tok) != nil {
			return false
		}
	}
	ids := []paged.SeqID{id}
	for range n - 1 {
		c, err := m.Fork(id)
		if err != nil {
			return false
		}
		ids = append(ids, c)
	}
	for range maxTokens - 1 {
		m.EndStep()
		for _, id := range ids {
			if m.Append(id, 1) != nil {
				return false
			}
		}
	}
	return true
}

// TestAudit26ChunksDraftsUnderPressure runs long prompts (chunked prefill
// whose chunks the scheduler shrinks to fit windows' peaks) beside short
// requests that verify drafts, fork and are cancelled, in small pools with
// preemption by swap or recompute and, in some runs, a prefix pin that
// expires holding part of the pool: every sample outputs exactly the
// tokens decoding one at a time gives it, the manager checks after every
// step, the scheduler ends within a bounded number of steps, and it
// aborts no request that a fresh pool could serve alone (computed one
// token a step, its samples forked then). Before session 12's pinreclaim
// only long prompts of fresh tokens were checked: a request sharing a
// prefix held retention pins a fresh pool's does not, and was aborted in
// pools it fits.
func TestAudit26ChunksDraftsUnderPressure(t *testing.T) {
	// What the runs did: long prompts finished (with a prefix hit),
	// swap-outs, accepted drafts, runs with a pin, checkpoint hits
	// dropped for a miss, runs.
	var long, longHit, swapped, accepted, pinned, dropped, runs int
	defer func() {
		t.Logf("%d runs: %d long prompts finished (%d with a prefix hit), %d swap-outs, %d drafts accepted, %d runs with a pin, %d checkpoint hits dropped", runs, long, longHit, swapped, accepted, pinned, dropped)
		if runs >= 100 { // go test's default; CI's 32-bit pass runs 10
			for name, n := range map[string]int{"finished a long prompt": long, "swapped out": swapped, "accepted drafts": accepted, "pinned": pinned} {
				if n == 0 {
					t.Errorf("no run %s", name)
				}
			}
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		layout := audit26Layouts[rapid.IntRange(0, len(audit26Layouts)-1).Draw(t, "layout")]
		mcfg := paged.Config{
			BlockSize:      rapid.IntRange(1, 4).Draw(t, "bs"),
			NumBlocks:      rapid.IntRange(16, 60).Draw(t, "blocks"),
			Groups:         layout,
			DisableOffload: true,
		}
		cfg := sched.Config{
			ChunkedPrefill:   true,
			MaxBatchTokens:   rapid.IntRange(4, 40).Draw(t, "maxBatchTokens"),
			MaxDrafts:        rapid.IntRange(1, 4).Draw(t, "maxDrafts"),
			AdmitFirst:       rapid.Bool().Draw(t, "admitFirst"),
			CheckBeforeAdmit: rapid.Bool().Draw(t, "check"),
			Policy:           sched.Policy(rapid.IntRange(0, 1).Draw(t, "policy")),
		}
		if rapid.Bool().Draw(t, "swap") {
			cfg.Preemption = sched.Swap
			mcfg.HostBlocks = rapid.IntRange(4, 60).Draw(t, "hostBlocks")
		}
		m, err := paged.New(mcfg)
		if err != nil {
			t.Fatal(err)
		}
		pinUntil := int64(0)
		if rapid.Bool().Draw(t, "pin") {
			// Cached content pinned for a few steps.
			p := rapid.SliceOfN(rapid.Int32Range(900, 999), mcfg.BlockSize, 4*mcfg.BlockSize).Draw(t, "pinned")
			if id, _, err := m.Create(p, nil); err == nil {
				m.EndStep() // the step computing it ran: a pin may hold it
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
				pinUntil = int64(rapid.IntRange(2, 30).Draw(t, "pinUntil"))
				if err := m.SetPinBudget(m.Stats().UsableBlocks / 2); err != nil {
					t.Fatal(err)
				}
				if _, _, err := m.Pin(p, nil, pinUntil); err != nil && !errors.Is(err, paged.ErrPinBudget) {
					t.Fatal(err)
				} else if err == nil {
					pinned++
				}
			}
		}
		aborted := map[*sched.Request]bool{}
		cfg.Hooks.Aborted = func(r *sched.Request, err error) { aborted[r] = true }
		s := newCancelRestScheduler(t, m, cfg)
		var reqs []*truthReq
		byReq := map[*sched.Request]*truthReq{}
		next := int32(100)
		submit := func() {
			q := &truthReq{}
			n := 1
			if q.long = rapid.Bool().Draw(t, "long"); q.long {
				// A long prompt of fresh tokens, in some runs after the
				// shared prefix (session 22: a state checkpoint hit it
				// takes in chunks, which its chunks fit, paged keeps).
				if rapid.Bool().Draw(t, "longShared") {
					q.prompt = slices.Clone(sharedPrefix[:rapid.IntRange(1, len(sharedPrefix)).Draw(t, "longPrefix")])
				}
				for range rapid.IntRange(8, 64).Draw(t, "longLen") {
					next++
					q.prompt = append(q.prompt, next)
				}
				q.max = rapid.IntRange(1, 6).Draw(t, "maxTokens")
			} else {
				q.prompt = slices.Clone(sharedPrefix[:rapid.IntRange(0, len(sharedPrefix)).Draw(t, "shared")])
				q.prompt = append(q.prompt, rapid.SliceOfN(rapid.Int32Range(20, 40), 1, 6).Draw(t, "tail")...)
				q.max = rapid.IntRange(1, 16).Draw(t, "maxTokens")
				n = rapid.IntRange(1, 3).Draw(t, "n")
			}
			if q.submit(t, s, n) {
				reqs = append(reqs, q)
				byReq[q.r] = q
			}
		}
		for range rapid.IntRange(1, 6).Draw(t, "requests") {
			submit()
		}
		later := rapid.IntRange(0, 4).Draw(t, "later")
		for steps := int64(1); s.Busy() || later > 0; steps++ {
			if steps > 1500 {
				t.Fatalf("no end after %d steps", steps)
			}
			m.Advance(steps)
			if later > 0 && rapid.IntRange(0, 3).Draw(t, "arrive") == 0 {
				later--
				submit()
			}
			if !s.Busy() {
				continue
			}
			if st := truthStep(t, s, m, byReq, 20); st.Tokens > cfg.MaxBatchTokens {
				t.Fatalf("step %d: %d tokens, budget %d", st.Number, st.Tokens, cfg.MaxBatchTokens)
			}
			for _, q := range reqs {
				q.afterStep(t, s, m, cfg.MaxDrafts)
			}
		}
		for _, q := range reqs {
			q.checkOutputs(t)
			if aborted[q.r] && len(q.truth) == 1 {
				// Every request, long prompts of fresh tokens and
				// requests sharing a prefix with earlier ones alike: the
				// retention pins the latter hold (the window before
				// their branch point, a checkpoint there), which a fresh
				// pool's do not, are released when the pool needs them.
				// On a layout with a State group too: a hit on a state
				// checkpoint holds the checkpoint's pages beside the
				// sequence's own state pages in its admission's step,
				// so a prompt that fits an empty pool exactly as a miss
				// does not fit with the hit, and paged drops the hit
				// for the miss there (Stats.CheckpointHitsDropped).
				// Without that fallback this check fails within 20,000
				// runs (seed 4718157924642259747 then).
				// (A request of several samples is not checked: the
				// scheduler computes its prompt before it forks, so a
				// short prompt admitted whole holds every block of it
				// with the forks' state pages, where a fresh pool
				// computing it one token a step holds far fewer.)
				fresh := mcfg
				fresh.HostBlocks = 0
				if aloneFitsN(t, fresh, q.prompt, q.max, len(q.truth)) {
					t.Fatalf("request %d (%d prompt tokens, %d outputs) aborted (%v), but a fresh pool serves it alone", q.r.ID(), len(q.prompt), q.max, q.r.Err())
				}
			}
		}
		st := s.Stats()
		runs++
		swapped += int(st.SwappedOut)
		dropped += int(m.Stats().CheckpointHitsDropped)
		accepted += int(st.DraftsAccepted)
		for _, q := range reqs {
			if q.long && q.r.State() == sched.Finished {
				long++
				if q.r.Cached() > 0 {
					longHit++
				}
			}
		}
		if st.DraftsProposed != st.DraftsAccepted+st.DraftsRejected+st.DraftsDropped {
			t.Fatalf("drafts: %+v", st)
		}
		if ms := m.Stats(); ms.StateDraftPages != 0 || ms.Running != 0 {
			t.Fatalf("an idle manager: %+v", ms)
		}
	})
}
