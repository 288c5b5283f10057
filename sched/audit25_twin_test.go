package sched_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// twinLayouts are hybrid layouts a server meets: attention groups of
// every kind, State groups and a Shared group.
var twinLayouts = [][]paged.Group{
	nil,
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}},
	{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}},
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 5}, {Kind: paged.ChunkedLocal, Chunk: 4}, {Kind: paged.State, Pages: 1}, {Kind: paged.Shared, Target: 0}},
	{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}, {Kind: paged.Shared, Target: 0}, {Kind: paged.State, Pages: 3}},
}

// twin is a scheduler with its manager, and the outputs it gave.
type twin struct {
	m   *paged.Manager
	s   *sched.Scheduler
	out map[[2]any][]int32 // by request and sample
}

// cacheContent is the manager's cached blocks as sorted strings
// (content, group, medium), and its prefix statistics.
func cacheContent(m *paged.Manager) ([]string, string) {
	var snap paged.Snapshot
	m.Snapshot(&snap)
	var c []string
	for _, b := range snap.Blocks {
		c = append(c, fmt.Sprintf("%x/%d/%v", b.Hash, b.Group, b.Medium))
	}
	slices.Sort(c)
	st := m.Stats()
	return c, fmt.Sprintf("queries %d hitTokens %d hitBlocks %d queryBlocks %d", st.PrefixQueries, st.PrefixHitTokens, st.PrefixHitBlocks, st.PrefixQueryBlocks)
}

// drawDrafts draws up to most drafts: the true continuation next, wrong
// from a drawn index on (tokens above 60, which no output is).
func drawDrafts(t *rapid.T, next []int32, most int) []int32 {
	n := rapid.IntRange(0, most).Draw(t, "drafts")
	right := rapid.IntRange(0, n).Draw(t, "right")
	d := make([]int32, n)
	for j := range d {
		if j < right && j < len(next) {
			d[j] = next[j]
		} else {
			d[j] = 61 + int32(j)
		}
	}
	return d
}

// TestAudit25DraftsCacheWhatDecodingCaches runs two schedulers side by
// side over the same requests and the same sampled tokens, one token by
// token and one verifying drafts (some right, some wrong, crossing block
// boundaries where prefix-cache commits and State checkpoints happen):
// they must give the same outputs, finish the same samples (stop tokens
// and MaxTokens inside accepted drafts), and leave the same prefix cache
// (hashes, groups, checkpoints) and prefix hits for later requests.
func TestAudit25DraftsCacheWhatDecodingCaches(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		layout := twinLayouts[rapid.IntRange(0, len(twinLayouts)-1).Draw(t, "layout")]
		mcfg := paged.Config{
			BlockSize: rapid.IntRange(1, 4).Draw(t, "bs"),
			NumBlocks: 4000,
			Groups:    layout,
			Events:    1 << 12,
		}
		if layout != nil {
			mcfg.DisableOffload = true
		}
		cfg := sched.Config{ChunkedPrefill: rapid.Bool().Draw(t, "chunked")}
		if cfg.ChunkedPrefill && rapid.Bool().Draw(t, "budget") {
			cfg.MaxBatchTokens = rapid.IntRange(8, 24).Draw(t, "maxBatchTokens")
		}
		mk := func(drafts int) *twin {
			m, err := paged.New(mcfg)
			if err != nil {
				t.Fatal(err)
			}
			c := cfg
			c.MaxDrafts = drafts
			s, err := sched.New(m, c)
			if err != nil {
				t.Fatal(err)
			}
			return &twin{m: m, s: s, out: map[[2]any][]int32{}}
		}
		maxDrafts := rapid.IntRange(1, 6).Draw(t, "maxDrafts")
		plain, spec := mk(0), mk(maxDrafts)
		// truth gives the token each request's sample outputs at each
		// output index: both twins sample the same tokens.
		truth := map[int][][]int32{}
		stops := []int32{7}

		var chat []int32
		nreq := rapid.IntRange(1, 5).Draw(t, "requests")
		for q := range nreq {
			prompt := slices.Clone(sharedPrefix[:rapid.IntRange(0, len(sharedPrefix)).Draw(t, "shared")])
			if chat != nil && rapid.Bool().Draw(t, "chat") {
				// The next turn of a chat: the last prompt and its
				// answer, whose blocks accepted drafts filled.
				prompt = chat
			}
			prompt = append(prompt, rapid.SliceOfN(rapid.Int32Range(20, 40), 1, 10).Draw(t, "tail")...)
			maxTok := rapid.IntRange(1, 20).Draw(t, "maxTokens")
			n := rapid.IntRange(1, 3).Draw(t, "n")
			for range n {
				truth[q] = append(truth[q], rapid.SliceOfN(rapid.Int32Range(1, 60), maxTok, maxTok).Draw(t, "outputs"))
			}
			opts := sched.Options{MaxTokens: maxTok, N: n}
			if rapid.Bool().Draw(t, "stop") {
				opts.StopTokens = stops
			}
			// Both twins run the request alone to the end.
			var rs [2]*sched.Request
			for k, tw := range []*twin{plain, spec} {
				r, err := tw.s.Submit(prompt, opts)
				if err != nil {
					t.Fatal(err)
				}
				rs[k] = r
				for steps := 0; tw.s.Busy(); steps++ {
					if steps > 200 {
						t.Fatalf("twin %d: request %d never ends", k, q)
					}
					st, err := tw.s.Schedule()
					if err != nil {
						t.Fatal(err)
					}
					var b paged.Batch
					if rapid.Bool().Draw(t, "buildBatch") {
						if err := tw.s.BuildBatch(&b); err != nil {
							t.Fatal(err)
						}
					}
					tokens := make([]int32, 0, st.Outputs)
					accepted := make([]int, len(st.Scheduled))
					for i, sc := range st.Scheduled {
						for j := range sc.Outputs {
							key := [2]any{sc.Request, sc.Sample + j}
							tr := truth[q][sc.Sample+j]
							have := tw.out[key]
							a := 0
							for a < len(sc.Drafts) && len(have)+a < len(tr) && sc.Drafts[a] == tr[len(have)+a] {
								a++
							}
							accepted[i] = a
							next := len(have) + a
							if next >= len(tr) {
								t.Fatalf("twin %d: request %d asks output %d of %d", k, q, next, len(tr))
							}
							tokens = append(tokens, tr[next])
							// What the sample outputs: the accepted drafts,
							// the token, up to a stop or MaxTokens.
							for _, tok := range tr[len(have) : next+1] {
								if len(tw.out[key]) == maxTok {
									break
								}
								tw.out[key] = append(tw.out[key], tok)
								if opts.StopTokens != nil && tok == stops[0] {
									break
								}
							}
						}
					}
					if k == 0 {
						err = tw.s.Update(tokens)
					} else {
						err = tw.s.UpdateSpeculative(tokens, accepted, nil)
					}
					if err != nil {
						t.Fatal(err)
					}
					r := rs[k]
					for x := 0; k == 1 && !r.State().Done() && r.Outputs(0) > 0 && x < r.Samples(); x++ {
						// Propose the true continuation, wrong from a drawn
						// index on.
						tr := truth[q][x]
						have := len(tw.out[[2]any{r, x}])
						if r.Seq(x) == 0 {
							continue // finished
						}
						if err := tw.s.Propose(r, x, drawDrafts(t, tr[have:], maxDrafts)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if rs[0].State() != rs[1].State() || rs[0].Samples() != rs[1].Samples() {
				t.Fatalf("request %d: token by token %v, with drafts %v", q, rs[0].State(), rs[1].State())
			}
			for x := range rs[0].Samples() {
				o0, o1 := plain.out[[2]any{rs[0], x}], spec.out[[2]any{rs[1], x}]
				if !slices.Equal(o0, o1) || len(o0) != rs[0].Outputs(x) || len(o1) != rs[1].Outputs(x) {
					t.Fatalf("request %d sample %d: outputs %v and %v (Outputs %d, %d)", q, x, o0, o1, rs[0].Outputs(x), rs[1].Outputs(x))
				}
			}
			chat = append(slices.Clone(prompt), plain.out[[2]any{rs[0], 0}]...)
			c0, s0 := cacheContent(plain.m)
			c1, s1 := cacheContent(spec.m)
			if !slices.Equal(c0, c1) || s0 != s1 {
				t.Fatalf("after request %d the caches differ:\ntoken by token %s\n%v\nwith drafts %s\n%v", q, s0, c0, s1, c1)
			}
			for _, tw := range []*twin{plain, spec} {
				if err := tw.m.Check(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// TestAudit25DraftsUnderPressure runs requests side by side through a
// scheduler with drafts in a small pool (preemption by swap or
// recompute, forks, chunked prefill, hybrid layouts with State groups,
// prefix hits between them, cancels between Schedule and Update): every
// sample outputs exactly the tokens decoding one at a time gives it (a
// prefix of them when aborted or cancelled), the manager holds exactly
// its prompt and outputs, and the manager checks after every step.
func TestAudit25DraftsUnderPressure(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		layout := twinLayouts[rapid.IntRange(0, len(twinLayouts)-1).Draw(t, "layout")]
		mcfg := paged.Config{
			BlockSize: rapid.IntRange(1, 4).Draw(t, "bs"),
			NumBlocks: rapid.IntRange(12, 60).Draw(t, "blocks"),
			Groups:    layout,
		}
		if layout != nil {
			mcfg.DisableOffload = true
		}
		cfg := sched.Config{
			ChunkedPrefill: rapid.Bool().Draw(t, "chunked"),
			MaxDrafts:      rapid.IntRange(1, 5).Draw(t, "maxDrafts"),
			AdmitFirst:     rapid.Bool().Draw(t, "admitFirst"),
		}
		if cfg.ChunkedPrefill && rapid.Bool().Draw(t, "budget") {
			cfg.MaxBatchTokens = rapid.IntRange(8, 24).Draw(t, "maxBatchTokens")
		}
		if rapid.Bool().Draw(t, "swap") {
			cfg.Preemption = sched.Swap
			mcfg.HostBlocks = rapid.IntRange(4, 40).Draw(t, "hostBlocks")
		}
		m, err := paged.New(mcfg)
		if err != nil {
			t.Fatal(err)
		}
		s := newCancelRestScheduler(t, m, cfg)
		var reqs []*truthReq
		byReq := map[*sched.Request]*truthReq{}
		for range rapid.IntRange(1, 8).Draw(t, "requests") {
			q := &truthReq{}
			q.prompt = slices.Clone(sharedPrefix[:rapid.IntRange(0, len(sharedPrefix)).Draw(t, "shared")])
			q.prompt = append(q.prompt, rapid.SliceOfN(rapid.Int32Range(20, 40), 1, 6).Draw(t, "tail")...)
			q.max = rapid.IntRange(1, 20).Draw(t, "maxTokens")
			n := rapid.IntRange(1, 3).Draw(t, "n")
			if q.submit(t, s, n) {
				reqs = append(reqs, q)
				byReq[q.r] = q
			}
		}
		for steps := 0; s.Busy(); steps++ {
			if steps > 500 {
				t.Fatalf("no end after %d steps", steps)
			}
			truthStep(t, s, m, byReq, 10)
			for _, q := range reqs {
				q.afterStep(t, s, m, cfg.MaxDrafts)
			}
		}
		for _, q := range reqs {
			q.checkOutputs(t)
		}
		st := s.Stats()
		if st.DraftsProposed != st.DraftsAccepted+st.DraftsRejected+st.DraftsDropped {
			t.Fatalf("drafts: %+v", st)
		}
		if ms := m.Stats(); ms.StateDraftPages != 0 || ms.FreeBlocks+ms.CachedBlocks != ms.UsableBlocks {
			t.Fatalf("an idle manager: %+v", ms)
		}
	})
}

// truthReq is a request of the drafts tests whose samples output drawn
// tokens (truth), as decoding one token at a time would: out holds what
// each sample was given, up to max outputs or the stop token truthStop.
type truthReq struct {
	r      *sched.Request
	prompt []int32
	truth  [][]int32
	out    [][]int32
	max    int
	stop   bool
	// long: a long prompt of fresh tokens (audit26).
	long bool
}

// truthStop is the stop token of the truthReq requests that stop.
const truthStop = int32(7)

// truthVerdict returns the verdict of step st for UpdateSpeculative: each
// entry accepts its drafts as long as they are its samples' truth, and
// samples the next true token; the outputs the verdict gives are recorded
// in the requests' out.
func truthVerdict(t *rapid.T, st *sched.Step, byReq map[*sched.Request]*truthReq) ([]int32, []int) {
	tokens := make([]int32, 0, st.Outputs)
	accepted := make([]int, len(st.Scheduled))
	for i, sc := range st.Scheduled {
		q := byReq[sc.Request]
		for j := range sc.Outputs {
			x := sc.Sample + j
			tr, have := q.truth[x], len(q.out[x])
			if sc.Generated != have && sc.Outputs == 1 {
				t.Fatalf("request %d sample %d: Generated %d, %d outputs given", sc.Request.ID(), x, sc.Generated, have)
			}
			a := 0
			for a < len(sc.Drafts) && have+a < len(tr) && sc.Drafts[a] == tr[have+a] {
				a++
			}
			accepted[i] = a
			next := have + a
			if next >= len(tr) {
				t.Fatalf("request %d sample %d asks output %d of %d", sc.Request.ID(), x, next, len(tr))
			}
			tokens = append(tokens, tr[next])
			if sc.Request.State().Done() {
				continue
			}
			for _, tok := range tr[have : next+1] {
				if len(q.out[x]) == q.max {
					break
				}
				q.out[x] = append(q.out[x], tok)
				if q.stop && tok == truthStop {
					break
				}
			}
		}
	}
	return tokens, accepted
}

// submit draws the truth of n samples of q, whose prompt and max are set,
// and whether it stops at truthStop, and submits it to s: false when it
// is too big for the pool (Submit's ErrNever).
func (q *truthReq) submit(t *rapid.T, s *sched.Scheduler, n int) bool {
	for range n {
		q.truth = append(q.truth, rapid.SliceOfN(rapid.Int32Range(1, 60), q.max, q.max).Draw(t, "outputs"))
	}
	q.out = make([][]int32, n)
	q.stop = rapid.Bool().Draw(t, "stop")
	opts := sched.Options{MaxTokens: q.max, N: n}
	if q.stop {
		opts.StopTokens = []int32{truthStop}
	}
	r, err := s.Submit(q.prompt, opts)
	if errors.Is(err, sched.ErrNever) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	q.r = r
	return true
}

// truthStep runs one step of s with the truth's verdict (truthVerdict):
// Schedule, maybe BuildBatch, maybe (one in cancelOdds) a Cancel of a
// scheduled request between them and the Update, then Check of m. It
// returns the step, valid until the next Schedule.
func truthStep(t *rapid.T, s *sched.Scheduler, m *paged.Manager, byReq map[*sched.Request]*truthReq, cancelOdds int) *sched.Step {
	st, err := s.Schedule()
	if err != nil {
		t.Fatal(err)
	}
	if rapid.Bool().Draw(t, "buildBatch") {
		var b paged.Batch
		if err := s.BuildBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.Scheduled) > 0 && rapid.IntRange(0, cancelOdds-1).Draw(t, "cancel") == 0 {
		sc := st.Scheduled[rapid.IntRange(0, len(st.Scheduled)-1).Draw(t, "victim")]
		if !sc.Request.State().Done() {
			if err := s.Cancel(sc.Request); err != nil {
				t.Fatal(err)
			}
		}
	}
	tokens, accepted := truthVerdict(t, st, byReq)
	if err := s.UpdateSpeculative(tokens, accepted, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	return st
}

// afterStep checks, after a step's Update, that each live sample of q has
// the outputs it was given and that m holds a prefix of its prompt and
// outputs (all but the last, pending, while running; all of them waiting
// to recompute), and maybe proposes drafts for its samples: their truth,
// wrong from a drawn index on.
func (q *truthReq) afterStep(t *rapid.T, s *sched.Scheduler, m *paged.Manager, maxDrafts int) {
	if q.r.State().Done() {
		return
	}
	if len(q.out) > 1 && q.r.Samples() == 1 && q.r.Outputs(0) == 0 {
		// A prompt whose forks found no room went back to the queue:
		// its outputs are drawn again.
		clear(q.out)
	}
	for x := range q.r.Samples() {
		if q.r.Outputs(x) != len(q.out[x]) {
			t.Fatalf("request %d sample %d: Outputs %d, %d given", q.r.ID(), x, q.r.Outputs(x), len(q.out[x]))
		}
		id := q.r.Seq(x)
		if id == 0 {
			continue
		}
		toks, err := m.Tokens(id)
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(q.prompt), q.out[x]...)
		if !slices.Equal(toks, want[:min(len(toks), len(want))]) || len(toks) > len(want) {
			t.Fatalf("request %d sample %d holds %v, want a prefix of %v", q.r.ID(), x, toks, want)
		}
	}
	if rapid.Bool().Draw(t, "propose") && q.r.Outputs(0) > 0 {
		for x := range q.r.Samples() {
			if q.r.Seq(x) == 0 {
				continue
			}
			d := drawDrafts(t, q.truth[x][len(q.out[x]):], maxDrafts)
			// A sample waiting to recompute has no token to follow:
			// refused, nothing changed.
			if err := s.Propose(q.r, x, d); err != nil && !errors.Is(err, sched.ErrInvalid) {
				t.Fatal(err)
			}
		}
	}
}

// checkOutputs checks, once the requests ended, that every sample of q
// output its truth up to its stop token, all of it if it finished, a
// prefix otherwise.
func (q *truthReq) checkOutputs(t *rapid.T) {
	for x := range q.out {
		want := q.truth[x]
		if q.stop {
			if i := slices.Index(want, truthStop); i >= 0 {
				want = want[:i+1]
			}
		}
		got := q.out[x]
		switch {
		case q.r.State() == sched.Finished && !slices.Equal(got, want):
			t.Fatalf("request %d sample %d finished with %v, want %v", q.r.ID(), x, got, want)
		case !slices.Equal(got, want[:min(len(got), len(want))]):
			t.Fatalf("request %d sample %d (%v) output %v, want a prefix of %v", q.r.ID(), x, q.r.State(), got, want)
		}
	}
}

// newCancelRestScheduler returns the scheduler of the machines under
// pressure over m: with a draw, a Finished hook (added to cfg's hooks)
// that, drawing again, cancels the rest of a request whose sample
// finished: the first answer wins, its siblings are cancelled (perhaps
// at a stop among its accepted drafts, whose drafts the step verified).
func newCancelRestScheduler(t *rapid.T, m *paged.Manager, cfg sched.Config) *sched.Scheduler {
	var s *sched.Scheduler
	if rapid.Bool().Draw(t, "hookCancel") {
		cfg.Hooks.Finished = func(r *sched.Request, sample int) {
			if !r.State().Done() && rapid.Bool().Draw(t, "cancelRest") {
				if err := s.Cancel(r); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	s, err := sched.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
