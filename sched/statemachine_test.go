package sched_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// machine drives a scheduler with random submissions, cancellations and
// steps under a random configuration, and checks after every action that
// the manager's invariants hold, that every sequence is where the model
// says, that a step never names a sequence twice or a finished one, and
// that every sequence holds exactly the tokens it was given, in order.
type machine struct {
	s    *sched.Scheduler
	m    *paged.Manager
	cfg  sched.Config
	reqs []*modelReq
	// next sampled token: distinct values make misplaced tokens visible.
	next int32
	// restarted are the beam searches restarted since the last step.
	restarted []*sched.Request
	// aborted are the requests aborted since the last step.
	aborted []*sched.Request
	// layout is the kind of KV cache groups drawn (newMachine), and floor
	// the blocks a sequence can always be admitted or swapped in with:
	// the usable blocks less the watermark's.
	layout, floor int
	// localCache: the layout has sliding-window or chunked-local groups,
	// and prefix caching is on; chunkedCache: chunked-local groups;
	// swapWhole: such groups, swap preemption and no chunked prefill
	// (cacheVerdict).
	localCache, chunkedCache, swapWhole bool
	// pages are the State group's pages a sequence holds (0: none).
	pages int
	// kv is the shadow KV cache of group 0: for each device slot a step
	// computed, the tokens up to and including its position (its KV
	// depends on all of them). Copies and tier transfers move it. A
	// prefix-cache hit must find in each slot it covers the KV of its own
	// tokens: a slot whose KV no step computed, or computed for other
	// tokens, is garbage. hostKV is the host tier's. Nil without prefix
	// caching.
	kv, hostKV map[int64]string
	// proposed are the drafts proposed for the next step, by request and
	// sample.
	proposed map[[2]uint64][]int32
}

// fataler is what the checks need of *testing.T and *rapid.T.
type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

type modelReq struct {
	r      *sched.Request
	prompt []int32
	opts   sched.Options
	// hist are the tokens each sample was given.
	hist [][]int32
	// given: the sample was given a token since its newest output was
	// last taken back, so a resampling preemption may take it back.
	given []bool
}

// sharedPrefix gives prompts common prefixes, so admissions hit the cache.
var sharedPrefix = []int32{11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}

// machineFocus narrows the layouts and pools newMachine draws.
type machineFocus struct {
	// stateLocal: a State group beside a sliding window or a
	// chunked-local group, in a small pool, swapping more often than not
	// (TestStateMachineStateLocalSwap).
	stateLocal bool
}

func newMachine(t *rapid.T, focus ...machineFocus) *machine {
	var fo machineFocus
	if len(focus) > 0 {
		fo = focus[0]
	}
	bs := rapid.IntRange(1, 4).Draw(t, "blockSize")
	mcfg := paged.Config{
		BlockSize:            bs,
		NumBlocks:            rapid.IntRange(8, 40).Draw(t, "blocks"),
		UnifiedFreeQueue:     rapid.Bool().Draw(t, "unified"),
		DisablePrefixCaching: rapid.Bool().Draw(t, "noCache"),
	}
	if fo.stateLocal {
		// A pool that a few requests fill; two kinds besides full
		// attention need the default mode, or no prefix caching.
		mcfg.NumBlocks = rapid.IntRange(8, 11).Draw(t, "small blocks")
		mcfg.UnifiedFreeQueue = mcfg.UnifiedFreeQueue && mcfg.DisablePrefixCaching
	}
	// Layouts of every kind of KV cache group: one full attention group;
	// two; a State group beside one; a sliding window or a chunked-local
	// group, perhaps with a State group (a chunked prefill's peak grows
	// with its chunk, which the scheduler shrinks to fit, audit26); a
	// Shared group reading group 0, perhaps beside a window. Submit
	// refuses what can never run in each (near its edge: Submit draws
	// requests there), and a watermark keeps blocks from admissions.
	layout := rapid.IntRange(1, 6).Draw(t, "groups")
	if fo.stateLocal {
		layout = rapid.IntRange(4, 5).Draw(t, "local groups")
	}
	pages := 0
	state := func() {
		// (Two kinds besides full attention: the default mode, or no
		// prefix caching.)
		if !(mcfg.UnifiedFreeQueue && !mcfg.DisablePrefixCaching) && (fo.stateLocal || rapid.Bool().Draw(t, "windowState")) {
			pages = rapid.IntRange(1, 2).Draw(t, "pages")
			mcfg.Groups = append(mcfg.Groups, paged.Group{Kind: paged.State, Pages: pages})
			mcfg.NumBlocks = max(mcfg.NumBlocks, pages+3)
		}
	}
	switch layout {
	case 4:
		mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")}}
		state()
	case 5:
		mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 3*bs).Draw(t, "chunk")}}
		state()
	case 6:
		mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared}}
		if rapid.Bool().Draw(t, "sharedWindow") {
			mcfg.Groups = append(mcfg.Groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")})
		}
	case 2:
		mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}
	case 3:
		// A State group (a linear-attention layer's fixed-size state):
		// every fork takes pages of its own at once, admission hits need
		// a checkpoint, and Schedule takes the step's checkpoints.
		pages = rapid.IntRange(1, 3).Draw(t, "pages")
		mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: pages}}
		mcfg.NumBlocks = max(mcfg.NumBlocks, pages+2)
	}
	if layout > 1 {
		mcfg.DisableOffload = true // swapping with several groups needs it
	}
	mcfg.Watermark = rapid.SampledFrom([]float64{0, 0, 0.2, 0.4}).Draw(t, "watermark")
	if fo.stateLocal {
		// Room kept from admissions for running sequences to grow into
		// makes preemption rare.
		mcfg.Watermark = 0
	}
	cfg := sched.Config{
		MaxRunning:             rapid.IntRange(1, 6).Draw(t, "maxRunning"),
		Policy:                 sched.Policy(rapid.IntRange(0, 1).Draw(t, "policy")),
		AdmitAfterPreemption:   rapid.Bool().Draw(t, "admitAfter"),
		CheckBeforeAdmit:       rapid.Bool().Draw(t, "check"),
		ChunkedPrefill:         rapid.Bool().Draw(t, "chunked"),
		AdmitFirst:             rapid.Bool().Draw(t, "admitFirst"),
		ResampleAfterRecompute: rapid.Bool().Draw(t, "resample"),
	}
	if rapid.Bool().Draw(t, "budget") {
		cfg.MaxBatchTokens = rapid.IntRange(1, 24).Draw(t, "maxBatchTokens")
	}
	cfg.MaxDrafts = rapid.SampledFrom([]int{0, 1, 3, 5}).Draw(t, "maxDrafts")
	if rapid.Bool().Draw(t, "swap") || fo.stateLocal && rapid.IntRange(0, 2).Draw(t, "swap more") > 0 {
		cfg.Preemption = sched.Swap
		mcfg.HostBlocks = rapid.IntRange(1, 30).Draw(t, "hostBlocks")
	}
	m, err := paged.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	usable := m.Stats().UsableBlocks
	local, chunkedLocal := false, false
	for _, g := range mcfg.Groups {
		local = local || g.Kind == paged.SlidingWindow || g.Kind == paged.ChunkedLocal
		chunkedLocal = chunkedLocal || g.Kind == paged.ChunkedLocal
	}
	caching := !mcfg.DisablePrefixCaching
	mc := &machine{m: m, localCache: local && caching, chunkedCache: chunkedLocal && caching,
		swapWhole: local && cfg.Preemption == sched.Swap && !cfg.ChunkedPrefill, next: 1000, layout: layout, pages: pages, floor: usable - int(math.Ceil(mcfg.Watermark*float64(usable))),
		proposed: map[[2]uint64][]int32{}}
	cfg.Hooks.Restarted = func(r *sched.Request) { mc.restarted = append(mc.restarted, r) }
	if rapid.Bool().Draw(t, "hookCancel") {
		// A hook inside Schedule may not cancel: refused, nothing changed.
		cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
			before := sc.Request.State()
			if err := mc.s.Cancel(sc.Request); !errors.Is(err, sched.ErrInvalid) || sc.Request.State() != before {
				t.Fatalf("Cancel of request %d from the Scheduled hook: %v, state %v then %v", sc.Request.ID(), err, before, sc.Request.State())
			}
		}
		// Finished may: "the first answer wins" ends the other samples.
		cfg.Hooks.Finished = func(r *sched.Request, sample int) {
			if r.State().Done() || !rapid.Bool().Draw(t, "cancelRest") {
				return
			}
			if err := mc.s.Cancel(r); err != nil {
				t.Fatalf("Cancel of request %d from the Finished hook: %v", r.ID(), err)
			}
		}
	}
	cfg.Hooks.Aborted = func(r *sched.Request, err error) {
		if r.State() != sched.Aborted || r.Err() != err || !errors.Is(err, sched.ErrNever) {
			t.Fatalf("request %d aborted: state %v, Err %v, hook's error %v", r.ID(), r.State(), r.Err(), err)
		}
		mc.aborted = append(mc.aborted, r)
	}
	s, err := sched.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mc.s, mc.cfg = s, s.Config()
	if !mcfg.DisablePrefixCaching {
		mc.kv, mc.hostKV = map[int64]string{}, map[int64]string{}
	}
	return mc
}

func (mc *machine) Submit(t *rapid.T) {
	n := rapid.IntRange(1, 14).Draw(t, "promptLen")
	k := rapid.IntRange(0, min(n, len(sharedPrefix))).Draw(t, "shared")
	prompt := slices.Clone(sharedPrefix[:k])
	for len(prompt) < n {
		prompt = append(prompt, int32(rapid.IntRange(0, 3).Draw(t, "tok")))
	}
	opts := sched.Options{
		N:        rapid.IntRange(0, 3).Draw(t, "n"),
		Priority: rapid.IntRange(0, 3).Draw(t, "priority"),
	}
	if opts.N <= 1 && rapid.Bool().Draw(t, "beam") {
		opts.BeamWidth = rapid.IntRange(1, 3).Draw(t, "beamWidth")
	}
	if rapid.Bool().Draw(t, "edge") {
		// The most outputs Submit accepts, or one more: the edge of
		// what can run in this pool.
		edge := 0
		for k := 1; k <= mc.m.Config().MaxModelLen-n && k <= 64; k++ {
			if opts.MaxTokens = k; mc.accepts(n, opts) == nil {
				edge = k
			}
		}
		past := rapid.IntRange(0, 1).Draw(t, "pastEdge")
		opts.MaxTokens = max(1, edge+past)
		if edge > 0 && past == 0 {
			edgeTally.accepted++
		} else if edge > 0 {
			edgeTally.refused++
		}
	} else {
		opts.MaxTokens = rapid.IntRange(1, 10).Draw(t, "maxTokens")
	}
	if rapid.Bool().Draw(t, "stop") {
		opts.StopTokens = []int32{mc.next + int32(rapid.IntRange(1, 30).Draw(t, "stopAt"))}
	}
	seqs := mc.m.Stats().Sequences
	want := mc.accepts(n, opts)
	r, err := mc.s.Submit(prompt, opts)
	// Submit refuses exactly what the model says can never run.
	if (err == nil) != (want == nil) || (err != nil && !errors.Is(err, want)) {
		t.Fatalf("Submit of %d prompt tokens, %+v: %v; the model: %v", n, opts, err, want)
	}
	if err != nil {
		if mc.m.Stats().Sequences != seqs {
			t.Fatalf("a refused Submit (%v) added a sequence", err)
		}
		// Beside the model above (which shares paged's PrefillFloor with
		// Submit), a bound of its own: a request within MaxModelLen, a
		// step's budget where it must fit one, and the blocks a sequence
		// can always have at its longest, is never refused as never.
		if kv := n + opts.MaxTokens - 1; errors.Is(err, sched.ErrNever) && opts.BeamWidth == 0 &&
			n+opts.MaxTokens <= mc.m.Config().MaxModelLen && (mc.cfg.ChunkedPrefill || kv <= mc.cfg.MaxBatchTokens) &&
			mc.need(kv, opts.N) <= mc.floor {
			t.Fatalf("Submit of %d prompt tokens and %d new (N %d) refused (%v), though %d blocks can always be had", n, opts.MaxTokens, opts.N, err, mc.floor)
		}
		mc.submitOne(t)
		return
	}
	kept := slices.Clone(prompt)
	prompt[0] = -1 // the scheduler copied it
	ns := max(opts.N, opts.BeamWidth, 1)
	mc.reqs = append(mc.reqs, &modelReq{r: r, prompt: kept, opts: opts, hist: make([][]int32, ns), given: make([]bool, ns)})
}

// accepts is the model of Submit's refusals of a request of p prompt
// tokens with opts (the machine draws valid options but for N or a beam
// width above MaxRunning): nil, ErrInvalid, or ErrNever when it can never
// run here. A sample's KV is at its longest the prompt and every output
// but the last (kv tokens). It is admitted at its prompt, whole or with
// chunked prefill in chunks, and after a preemption at any length up to
// kv, recomputed (in chunks with chunked prefill) or swapped in (what a
// decode step holds: in chunks); at each it holds at least
// paged.Manager.PrefillFloor, whose exactness paged's TestPrefillFloor
// checks, and it can never come back when that exceeds what the
// watermark leaves to an admission. With chunked prefill and no prefix
// caching every chunk is computed from the first token, and the step at
// every length counts. Every length is tried (Submit scans only the last
// period of them). A request whose samples fork holds at
// least the prompt's floor and the other samples' state pages when it
// forks, which the pool must hold. Without chunked prefill a recompute
// (a beam search's prompt) must fit a step's budget.
func (mc *machine) accepts(p int, opts sched.Options) error {
	n := max(opts.N, opts.BeamWidth, 1)
	if n > mc.cfg.MaxRunning {
		return sched.ErrInvalid
	}
	kv := p + opts.MaxTokens - 1
	if kv >= mc.m.Config().MaxModelLen {
		return sched.ErrNever
	}
	chunked, swap := mc.cfg.ChunkedPrefill, mc.cfg.Preemption == sched.Swap
	lo := p
	if chunked && mc.m.Config().DisablePrefixCaching {
		// Computed in chunks with no hit, from the first token: the
		// manager judges the peak over the chunks' steps.
		lo = 1
	}
	for l := lo; l <= kv; l++ {
		f, err := mc.m.PrefillFloor(l, nil, chunked || l > p && swap)
		if err != nil || f > mc.floor {
			return sched.ErrNever
		}
	}
	if n > 1 && mc.pages > 0 {
		f, err := mc.m.PrefillFloor(p, nil, chunked)
		if err != nil || f+(n-1)*mc.pages > mc.m.Stats().UsableBlocks {
			return sched.ErrNever
		}
	}
	beam := opts.BeamWidth > 0
	switch {
	case !chunked && !beam && kv > mc.cfg.MaxBatchTokens,
		!chunked && beam && p > mc.cfg.MaxBatchTokens,
		beam && n > mc.cfg.MaxBatchTokens:
		return sched.ErrNever
	}
	return nil
}

// cacheVerdict reports whether err, a request's abort, is the manager's
// verdict on an admission that depends on what the prefix cache holds:
// on a layout with sliding-window or chunked-local groups and prefix
// caching, Submit's floor (paged.Manager.PrefillFloor) is the fewest
// blocks over every cache state, counting on the hit that lets a
// sequence skip the blocks before a window or chunk; admitted where the
// cache lacks it (or, in chunks, holds a hit longer than the floor's,
// which leaves the admission's step the last token to compute beside
// it), the manager may say never (paged.ErrNever, or the dry run's
// AdmitNever) to a request that fits with another cache.
//
// With swap preemption, Submit counts on a preempted sample coming back
// with what a decode step holds (swapped in), but one preempted when the
// host tier is full, or in the step it was admitted, is recomputed,
// whole without chunked prefill: with window or chunked-local groups it
// holds every block of its tokens there, and may never fit.
//
// With a chunked-local group and prefix caching, a decode keeps the
// group's last cached block besides its chunk's (as vLLM does), which a
// readmission after a hit ending at the chunk's start does not hold: a
// request that fits the pool only when so readmitted cannot grow alone.
// (Swapped out, it leaves that block behind since audit 41, and comes
// back: TestSwappedOutPastTheChunkComesBack.)
func (mc *machine) cacheVerdict(err error) bool {
	switch {
	case mc.chunkedCache && strings.Contains(err.Error(), "cannot grow past"):
		return true
	case !mc.localCache && !mc.swapWhole:
		return false
	}
	return errors.Is(err, paged.ErrNever) || strings.Contains(err.Error(), "can never be admitted")
}

// submitOne submits a one-token request, which always fits.
func (mc *machine) submitOne(t fataler) {
	prompt := []int32{sharedPrefix[0]}
	opts := sched.Options{MaxTokens: 1}
	r, err := mc.s.Submit(prompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	mc.reqs = append(mc.reqs, &modelReq{r: r, prompt: prompt, opts: opts, hist: make([][]int32, 1), given: make([]bool, 1)})
}

func (mc *machine) Cancel(t *rapid.T) {
	var live []*modelReq
	for _, q := range mc.reqs {
		if !q.r.State().Done() {
			live = append(live, q)
		}
	}
	if len(live) == 0 {
		mc.submitOne(t) // no action is ever skipped, so a fuzzer's input always finds one to run
		return
	}
	q := rapid.SampledFrom(live).Draw(t, "victim")
	if err := mc.s.Cancel(q.r); err != nil {
		t.Fatal(err)
	}
	if q.r.State() != sched.Cancelled {
		t.Fatalf("request %d is %v after Cancel", q.r.ID(), q.r.State())
	}
	for i := range q.r.Samples() {
		if q.r.Seq(i) != 0 {
			t.Fatalf("request %d sample %d still has %v", q.r.ID(), i, q.r.Seq(i))
		}
	}
}

func (mc *machine) Step(t *rapid.T) {
	if !mc.s.Busy() {
		mc.submitOne(t)
		return
	}
	mc.step(t)
}

func (mc *machine) step(t *rapid.T) {
	mc.propose(t)
	st, err := mc.s.Schedule()
	if err != nil {
		t.Fatal(err)
	}
	// The step verifies a prefix of each sample's proposal, after its
	// pending token; every proposal is used or dropped.
	drafts := 0
	for _, sc := range st.Scheduled {
		key := [2]uint64{sc.Request.ID(), uint64(sc.Sample)}
		p := mc.proposed[key]
		if len(sc.Drafts) > len(p) || !slices.Equal(sc.Drafts, p[:len(sc.Drafts)]) || (len(sc.Drafts) > 0 && (sc.Prefill || sc.Outputs != 1)) {
			t.Fatalf("step %d: request %d sample %d verifies drafts %v (prefill %v, %d outputs), proposed %v", st.Number, key[0], key[1], sc.Drafts, sc.Prefill, sc.Outputs, p)
		}
		if q := mc.reqs[key[0]-1]; len(sc.Drafts) > 0 && len(q.hist[sc.Sample])+len(sc.Drafts)+1 > q.limit(mc) {
			t.Fatalf("step %d: request %d sample %d verifies %d drafts after %d outputs, limit %d", st.Number, key[0], key[1], len(sc.Drafts), len(q.hist[sc.Sample]), q.limit(mc))
		}
		drafts += len(sc.Drafts)
		if sc.Admitted && len(sc.Drafts) > 0 {
			draftTally.swappedIn++
		}
	}
	if drafts != st.Drafts {
		t.Fatalf("step %d verifies %d drafts, says %d", st.Number, drafts, st.Drafts)
	}
	clear(mc.proposed)
	// A restarted beam search starts again from its prompt.
	for _, r := range mc.restarted {
		q := mc.reqs[r.ID()-1]
		if r.Samples() != 1 || r.Outputs(0) != 0 || r.Beams() != 0 {
			t.Fatalf("restarted request %d has %d samples, %d outputs, %d beams", r.ID(), r.Samples(), r.Outputs(0), r.Beams())
		}
		clear(q.hist)
		clear(q.given)
	}
	mc.restarted = mc.restarted[:0]
	// An aborted request holds nothing, and only one that can never run
	// is aborted.
	for _, r := range mc.aborted {
		for i := range r.Samples() {
			if r.Seq(i) != 0 {
				t.Fatalf("aborted request %d sample %d still has %v", r.ID(), i, r.Seq(i))
			}
		}
		q := mc.reqs[r.ID()-1]
		// Beams may need more than one sequence: not checked. Nor are
		// the samples of a request with State groups: they may find no
		// room at the fork, be refused it at admission by the set-aside
		// (forkRoom: the schedule's likely need, not a bound), so that
		// the prompt does not fit an empty pool, or, beside other forking
		// requests, not grow alone (seed 938529761264887334 with
		// -rapid.steps=200 checked them).
		forks := max(q.opts.N, 1) > 1 && mc.pages > 0
		switch {
		case r.BeamWidth() > 0:
			edgeTally.beams++
		case forks:
			edgeTally.forks++
		case mc.cacheVerdict(r.Err()):
			edgeTally.cache++
		default:
			t.Fatalf("request %d (%d prompt tokens, %+v), which Submit accepted, aborted: %v", r.ID(), len(q.prompt), q.opts, r.Err())
		}
	}
	mc.aborted = mc.aborted[:0]
	if st.Tokens > mc.cfg.MaxBatchTokens {
		t.Fatalf("step %d computes %d tokens, budget %d", st.Number, st.Tokens, mc.cfg.MaxBatchTokens)
	}
	// A resampling preemption takes back the newest output of a sample.
	for _, q := range mc.reqs {
		if q.r.State() == sched.Cancelled {
			continue // a Finished hook may have cancelled it amid an Update
		}
		for i := range q.r.Samples() {
			switch got, had := q.r.Outputs(i), len(q.hist[i]); {
			case got == had:
			case got == had-1 && mc.cfg.ResampleAfterRecompute && q.given[i]:
				q.hist[i], q.given[i] = q.hist[i][:got], false
			default:
				t.Fatalf("step %d: request %d sample %d has %d outputs, was given %d", st.Number, q.r.ID(), i, got, had)
			}
		}
	}
	var batch paged.Batch
	if err := mc.s.BuildBatch(&batch); err != nil {
		t.Fatalf("step %d: %v", st.Number, err)
	}
	mc.shadowKV(t, st, &batch)
	// Schedule took the step's checkpoints (Step.Checkpoints): each is of
	// a sequence of the step, within the tokens it computes, and the
	// manager has none left.
	if cps := mc.m.TakeCheckpoints(nil); len(cps) != 0 {
		t.Fatalf("step %d: the manager still hands out %d checkpoints after Schedule", st.Number, len(cps))
	}
	for _, c := range st.Checkpoints {
		k := slices.IndexFunc(st.Scheduled, func(sc sched.Scheduled) bool { return sc.Seq == c.Seq })
		if k < 0 || c.Tokens < st.Scheduled[k].Start || c.Tokens > st.Scheduled[k].Start+st.Scheduled[k].NewTokens {
			t.Fatalf("step %d: checkpoint of %v at %d, not within the step's tokens of it", st.Number, c.Seq, c.Tokens)
		}
	}
	seen := map[[2]uint64]bool{}
	tokens := make([]int32, 0, st.Outputs)
	outs := 0
	for _, sc := range st.Scheduled {
		key := [2]uint64{sc.Request.ID(), uint64(sc.Sample)}
		if seen[key] {
			t.Fatalf("step %d runs request %d sample %d twice", st.Number, key[0], key[1])
		}
		seen[key] = true
		if sc.Request.State().Done() {
			t.Fatalf("step %d runs %v request %d", st.Number, sc.Request.State(), key[0])
		}
		n, err := mc.m.Len(sc.Seq)
		if err != nil || n != sc.Start+sc.NewTokens || sc.NewTokens < 1 {
			t.Fatalf("step %d: request %d has %d tokens (%v), scheduled [%d, %d)", st.Number, key[0], n, err, sc.Start, sc.Start+sc.NewTokens)
		}
		if g := len(mc.reqs[key[0]-1].hist[sc.Sample]); sc.Outputs > 0 && sc.Generated != g {
			t.Fatalf("step %d: request %d sample %d: Generated %d, was given %d", st.Number, key[0], key[1], sc.Generated, g)
		}
		for range sc.Outputs {
			mc.next++
			tokens = append(tokens, mc.next)
		}
		outs += sc.Outputs
	}
	// A beam search's beams run together: side by side in beam order,
	// every beam still going or none.
	for i := 0; i < len(st.Scheduled); {
		r := st.Scheduled[i].Request
		if r.BeamWidth() == 0 {
			i++
			continue
		}
		j := i + 1
		for j < len(st.Scheduled) && st.Scheduled[j].Request == r {
			if st.Scheduled[j].Sample <= st.Scheduled[j-1].Sample {
				t.Fatalf("step %d: request %d's samples out of order", st.Number, r.ID())
			}
			j++
		}
		if r.Beams() > 0 && j-i != r.Beams() {
			t.Fatalf("step %d runs %d of the %d beams of request %d", st.Number, j-i, r.Beams(), r.ID())
		}
		for _, o := range st.Scheduled[j:] {
			if o.Request == r {
				t.Fatalf("step %d: the beams of request %d are not side by side", st.Number, r.ID())
			}
		}
		i = j
	}
	if outs != st.Outputs || len(batch.Slots) != st.Tokens {
		t.Fatalf("step %d: outputs %d of %d, slots %d of %d tokens", st.Number, outs, st.Outputs, len(batch.Slots), st.Tokens)
	}
	if mc.s.Running() > mc.cfg.MaxRunning {
		t.Fatalf("%d running, limit %d", mc.s.Running(), mc.cfg.MaxRunning)
	}
	// Each beam of a beam search picks a parent among the request's beams
	// in this step; every other output extends its own sample.
	parents := make([]int, 0, len(tokens))
	for i, sc := range st.Scheduled {
		for j := range sc.Outputs {
			p := sc.Sample + j
			if sc.Request.BeamWidth() > 0 && sc.Request.Beams() > 0 {
				var beams []int
				for _, o := range st.Scheduled[max(0, i-sched.MaxSamples):min(len(st.Scheduled), i+sched.MaxSamples)] {
					if o.Request == sc.Request {
						beams = append(beams, o.Sample)
					}
				}
				p = rapid.SampledFrom(beams).Draw(t, "parent")
			}
			parents = append(parents, p)
		}
	}
	// The verdict: how many drafts of each entry the model accepted.
	accepted := make([]int, len(st.Scheduled))
	for i, sc := range st.Scheduled {
		if len(sc.Drafts) > 0 {
			accepted[i] = rapid.IntRange(0, len(sc.Drafts)).Draw(t, "accepted")
		}
	}
	before := mc.s.Stats()
	if st.Drafts > 0 {
		// A step with drafts takes its verdict whole: Update, a count
		// list of the wrong length or a count out of range change
		// nothing.
		if err := mc.s.Update(tokens); !errors.Is(err, sched.ErrInvalid) {
			t.Fatalf("step %d: Update of a step with drafts: %v", st.Number, err)
		}
		if err := mc.s.UpdateSpeculative(tokens, accepted[1:], nil); !errors.Is(err, sched.ErrInvalid) {
			t.Fatalf("step %d: UpdateSpeculative with %d counts for %d entries: %v", st.Number, len(accepted)-1, len(accepted), err)
		}
		i := slices.IndexFunc(st.Scheduled, func(sc sched.Scheduled) bool { return len(sc.Drafts) > 0 })
		bad := slices.Clone(accepted)
		bad[i] = len(st.Scheduled[i].Drafts) + 1
		if err := mc.s.UpdateSpeculative(tokens, bad, nil); !errors.Is(err, sched.ErrInvalid) {
			t.Fatalf("step %d: UpdateSpeculative accepting %d of %d drafts: %v", st.Number, bad[i], len(st.Scheduled[i].Drafts), err)
		}
		if mc.s.Stats() != before {
			t.Fatalf("step %d: refused updates changed the statistics", st.Number)
		}
		for _, sc := range st.Scheduled {
			if n, err := mc.m.Len(sc.Seq); sc.Request.State() != sched.Cancelled && (err != nil || n != sc.Start+sc.NewTokens) {
				t.Fatalf("step %d: after refused updates request %d sample %d has %d tokens (%v), scheduled [%d, %d)", st.Number, sc.Request.ID(), sc.Sample, n, err, sc.Start, sc.Start+sc.NewTokens)
			}
		}
	}
	var uerr error
	update := rapid.Bool().Draw(t, "update")
	if update {
		// Update: every output extends its own sample.
		parents = parents[:0]
		for _, sc := range st.Scheduled {
			for j := range sc.Outputs {
				parents = append(parents, sc.Sample+j)
			}
		}
	}
	switch {
	case st.Drafts > 0 && update:
		uerr = mc.s.UpdateSpeculative(tokens, accepted, nil)
	case st.Drafts > 0:
		uerr = mc.s.UpdateSpeculative(tokens, accepted, parents)
	case update && rapid.Bool().Draw(t, "plainUpdate"):
		uerr = mc.s.Update(tokens)
	case update:
		uerr = mc.s.UpdateSpeculative(tokens, accepted, nil) // no drafts: Update
	default:
		uerr = mc.s.UpdateBeams(tokens, parents)
	}
	if uerr != nil {
		t.Fatal(uerr)
	}
	if st.Drafts > 0 && st.Preempted > 0 {
		draftTally.preemptedSteps++
	}
	if after := mc.s.Stats(); after.DraftsProposed != after.DraftsAccepted+after.DraftsRejected+after.DraftsDropped {
		t.Fatalf("step %d: %d drafts proposed, %d accepted, %d rejected, %d dropped", st.Number, after.DraftsProposed, after.DraftsAccepted, after.DraftsRejected, after.DraftsDropped)
	}
	k := 0
	old := map[*modelReq][][]int32{}
	for i, sc := range st.Scheduled {
		q := mc.reqs[sc.Request.ID()-1]
		if q.r.State() == sched.Cancelled { // by a Finished hook in the Update
			k += sc.Outputs
			continue
		}
		if sc.Outputs > 1 && q.r.Samples() < sc.Outputs {
			// A prompt whose forks found no room for their state pages
			// went back to the queue: its outputs are drawn again later.
			k += sc.Outputs
			continue
		}
		if _, ok := old[q]; !ok {
			old[q] = slices.Clone(q.hist)
		}
		if len(sc.Drafts) > 0 {
			// The accepted drafts, then the bonus token, up to a stop
			// token or the sample's last output.
			x := sc.Sample
			h := slices.Clone(old[q][x])
			for _, d := range append(slices.Clone(sc.Drafts[:accepted[i]]), tokens[k]) {
				h = append(h, d)
				if len(h) >= q.limit(mc) || slices.Contains(q.opts.StopTokens, d) {
					break
				}
			}
			q.hist[x], q.given[x] = h, true
			if len(h) < len(old[q][x])+accepted[i]+1 {
				draftTally.stops++ // ended inside the accepted drafts
			}
			k++
			continue
		}
		for j := range sc.Outputs {
			x := sc.Sample + j
			q.hist[x] = append(slices.Clone(old[q][parents[k]]), tokens[k])
			q.given[x] = true
			k++
		}
	}
}

// need bounds the blocks a request of n samples (Options.N) whose lone
// sequence holds kv tokens of KV at its longest needs: a block per block
// of tokens in each group, and with a State group its samples' own state
// pages and the checkpoints it may hold (a bound, not the exact need).
func (mc *machine) need(kv, n int) int {
	bs := mc.m.BlockSize()
	groups := 0 // the groups whose blocks grow with the sequence, at most
	for _, g := range mc.m.Config().Groups {
		switch g.Kind {
		case paged.FullAttention, paged.SlidingWindow, paged.ChunkedLocal:
			groups++
		}
	}
	need := max(groups, 1)*((kv+bs-1)/bs) + mc.pages
	if mc.pages > 0 {
		need += mc.pages * (max(n, 1) + 2)
	}
	return need
}

// limit is the outputs at which a sample of q ends.
func (q *modelReq) limit(mc *machine) int {
	return min(q.opts.MaxTokens, mc.m.Config().MaxModelLen-len(q.prompt))
}

// propose offers drafts for some samples before a step: the tokens the
// step will sample (so some are accepted for real in a model's sense) or
// the request's stop token, so that stops fall inside accepted drafts.
// Refusals must be for a reason Propose documents, and change nothing.
func (mc *machine) propose(t *rapid.T) {
	if mc.cfg.MaxDrafts == 0 {
		if len(mc.reqs) > 0 {
			q := mc.reqs[len(mc.reqs)-1]
			if err := mc.s.Propose(q.r, 0, []int32{1}); !errors.Is(err, sched.ErrInvalid) && !errors.Is(err, sched.ErrDone) {
				t.Fatalf("Propose with MaxDrafts 0: %v", err)
			}
		}
		return
	}
	for _, q := range mc.reqs {
		r := q.r
		if r.State().Done() && q != mc.reqs[len(mc.reqs)-1] {
			continue // (the newest is tried even when done: ErrDone)
		}
		for i := range r.Samples() {
			if !rapid.Bool().Draw(t, "propose") {
				continue
			}
			drafts := make([]int32, rapid.IntRange(0, mc.cfg.MaxDrafts).Draw(t, "drafts"))
			for j := range drafts {
				drafts[j] = mc.next + int32(j) + 2
				if len(q.opts.StopTokens) > 0 && rapid.IntRange(0, 3).Draw(t, "draftStop") == 0 {
					drafts[j] = q.opts.StopTokens[0]
				}
			}
			before := mc.s.Stats()
			if rapid.IntRange(0, 9).Draw(t, "badDrafts") == 0 {
				bad := append(slices.Clone(drafts), -1)
				if err := mc.s.Propose(r, i, bad); !errors.Is(err, sched.ErrInvalid) && !errors.Is(err, sched.ErrDone) {
					t.Fatalf("Propose of a negative draft: %v", err)
				}
				if err := mc.s.Propose(r, i, make([]int32, mc.cfg.MaxDrafts+1)); !errors.Is(err, sched.ErrInvalid) && !errors.Is(err, sched.ErrDone) {
					t.Fatalf("Propose of %d drafts: %v", mc.cfg.MaxDrafts+1, err)
				}
				if mc.s.Stats() != before {
					t.Fatal("a refused Propose changed the statistics")
				}
			}
			err := mc.s.Propose(r, i, drafts)
			key := [2]uint64{r.ID(), uint64(i)}
			switch {
			case err == nil:
				if r.State().Done() || r.Seq(i) == 0 || r.BeamWidth() > 0 || r.Outputs(i) == 0 {
					t.Fatalf("Propose for request %d sample %d (%v, %d outputs, beam width %d) accepted", r.ID(), i, r.State(), r.Outputs(i), r.BeamWidth())
				}
				mc.proposed[key] = drafts
			case errors.Is(err, sched.ErrDone):
				if !r.State().Done() && r.Seq(i) != 0 {
					t.Fatalf("Propose for live request %d sample %d: %v", r.ID(), i, err)
				}
			case errors.Is(err, sched.ErrInvalid):
				if r.BeamWidth() == 0 && r.Outputs(i) > 0 {
					if run, rerr := mc.m.Running(r.Seq(i)); rerr == nil && run {
						// A running sample that produced a token refuses
						// drafts only when a recompute took the token in.
						toks, _ := mc.m.Tokens(r.Seq(i))
						if len(toks) == len(q.prompt)+r.Outputs(i)-1 && !mc.cfg.ChunkedPrefill {
							t.Fatalf("Propose for running request %d sample %d (%d tokens, %d outputs): %v", r.ID(), i, len(toks), r.Outputs(i), err)
						}
					}
				}
				if mc.s.Stats() != before {
					t.Fatal("a refused Propose changed the statistics")
				}
			default:
				t.Fatalf("Propose: %v", err)
			}
		}
	}
}

// shadowKV runs the step on the shadow KV cache: the copies first, then
// the KV of every scheduled token; then each admission's prefix hits must
// cover only slots holding the KV of the admitted sequence's own tokens.
// A hit on a block another sequence of the same step fills is right: the
// step computes it before attention reads it, as in vLLM.
func (mc *machine) shadowKV(t *rapid.T, st *sched.Step, b *paged.Batch) {
	if mc.kv == nil {
		return
	}
	bs := int64(mc.m.BlockSize())
	move := func(src, dst map[int64]string, from, to int64) {
		for i := range bs {
			if v, ok := src[from*bs+i]; ok {
				dst[to*bs+i] = v
			} else {
				delete(dst, to*bs+i)
			}
		}
	}
	tier := func(m paged.Medium) map[int64]string {
		if m == paged.Host {
			return mc.hostKV
		}
		return mc.kv
	}
	for _, w := range b.Swaps {
		if w.Group == 0 {
			move(tier(w.Kind.SrcMedium()), tier(w.Kind.DstMedium()), int64(w.Src), int64(w.Dst))
		}
	}
	for _, c := range b.Copies {
		move(mc.kv, mc.kv, int64(c.Src), int64(c.Dst))
	}
	key := func(toks []int32) string { return fmt.Sprint(toks) }
	slot := func(sc *sched.Scheduled, pos int) int64 {
		x, err := mc.m.Slot(sc.Seq, pos)
		if err != nil {
			t.Fatalf("step %d: slot %d of %v: %v", st.Number, pos, sc.Seq, err)
		}
		return x
	}
	for i := range st.Scheduled {
		sc := &st.Scheduled[i]
		toks, err := mc.m.Tokens(sc.Seq)
		if err != nil {
			t.Fatal(err)
		}
		for pos := sc.Start; pos < sc.Start+sc.NewTokens; pos++ {
			mc.kv[slot(sc, pos)] = key(toks[:pos+1])
		}
	}
	for i := range st.Scheduled {
		sc := &st.Scheduled[i]
		toks, _ := mc.m.Tokens(sc.Seq)
		// Every position before the step's tokens is read by them: a
		// prefix hit, a swapped-in or a running sequence's own KV.
		for pos := range sc.Start {
			if got, want := mc.kv[slot(sc, pos)], key(toks[:pos+1]); got != want {
				t.Fatalf("step %d: request %d sample %d (admitted %v, %d cached tokens) reads position %d, whose slot holds the KV of %q, not of %v",
					st.Number, sc.Request.ID(), sc.Sample, sc.Admitted, sc.Cached, pos, got, want)
			}
		}
	}
}

// Check runs after every action.
func (mc *machine) Check(t *rapid.T) { mc.check(t) }

func (mc *machine) check(t fataler) {
	if err := mc.m.Check(); err != nil {
		t.Fatal(err)
	}
	seqs := 0
	for _, q := range mc.reqs {
		r := q.r
		if r.State().Done() {
			continue
		}
		seqs += r.Samples()
		for i := range r.Samples() {
			seq := r.Seq(i)
			if seq == 0 {
				continue // finished sample of a live request
			}
			toks, err := mc.m.Tokens(seq)
			if err != nil {
				t.Fatalf("request %d sample %d: %v", r.ID(), i, err)
			}
			want := append(slices.Clone(q.prompt), q.hist[i]...)
			if len(toks) > len(want) || !slices.Equal(toks, want[:len(toks)]) {
				t.Fatalf("request %d sample %d holds %v, given %v", r.ID(), i, toks, want)
			}
			if r.Outputs(i) != len(q.hist[i]) {
				t.Fatalf("request %d sample %d: %d outputs, given %d", r.ID(), i, r.Outputs(i), len(q.hist[i]))
			}
		}
	}
	live := 0
	for _, q := range mc.reqs {
		for i := range q.r.Samples() {
			if q.r.Seq(i) != 0 {
				live++
			}
		}
	}
	if got := mc.s.Running() + mc.s.Waiting(); got != live {
		t.Fatalf("%d running + waiting sequences, %d live samples", got, live)
	}
	if got := mc.m.Stats().Sequences; got != live {
		t.Fatalf("the manager has %d sequences, %d live samples", got, live)
	}
}

// finish drains the scheduler and checks that every request ended as the
// model says: nothing lost, nothing left in the manager.
func (mc *machine) finish(t *rapid.T) {
	for steps := 0; mc.s.Busy(); steps++ {
		if steps > 10000 {
			t.Fatal("no progress after 10000 steps")
		}
		mc.step(t)
		mc.check(t)
	}
	for _, q := range mc.reqs {
		r := q.r
		if (r.State() == sched.Aborted) != (r.Err() != nil) {
			t.Fatalf("request %d is %v with Err %v", r.ID(), r.State(), r.Err())
		}
		switch r.State() {
		case sched.Cancelled, sched.Aborted:
			continue
		case sched.Finished:
		default:
			t.Fatalf("request %d is %v after the drain", r.ID(), r.State())
		}
		if r.Samples() != max(q.opts.N, q.opts.BeamWidth, 1) {
			t.Fatalf("request %d has %d samples, asked %d", r.ID(), r.Samples(), q.opts.N)
		}
		for i, h := range q.hist {
			last := h[len(h)-1]
			if len(h) != q.opts.MaxTokens && !slices.Contains(q.opts.StopTokens, last) &&
				len(q.prompt)+len(h) < mc.m.Config().MaxModelLen {
				t.Fatalf("request %d sample %d stopped after %d of %d tokens", r.ID(), i, len(h), q.opts.MaxTokens)
			}
		}
	}
	ss := mc.s.Stats()
	draftTally.accepted += ss.DraftsAccepted
	draftTally.rejected += ss.DraftsRejected
	draftTally.dropped += ss.DraftsDropped
	st := mc.m.Stats()
	if st.Sequences != 0 || st.UsedBlocks != 0 || st.Tiers.HostUsed != 0 {
		t.Fatalf("left behind: %d sequences, %d blocks, %d host blocks", st.Sequences, st.UsedBlocks, st.Tiers.HostUsed)
	}
}

// edgeTally sums what the runs did at Submit's edge: requests drawn at
// the most outputs Submit accepts (accepted) and one past it (refused),
// and the aborts of accepted requests by reason: beam searches, forks of
// a State group's layout, and the manager's cache-dependent verdicts.
var edgeTally struct {
	accepted, refused   int
	beams, forks, cache int
}

// draftTally sums what the runs did with drafts, so a run that exercises
// none shows: drafts accepted, rejected and dropped, samples that ended
// inside their accepted drafts, steps with drafts that preempted, and
// drafts verified by samples swapped in in the same step.
var draftTally struct {
	accepted, rejected, dropped      int64
	stops, preemptedSteps, swappedIn int
}

func TestStateMachine(t *testing.T) { runMachine(t) }

// runMachine runs the scheduler state machine (newMachine, with focus)
// and returns what its runs did with swaps.
func runMachine(t *testing.T, focus ...machineFocus) swapTally {
	var sw swapTally
	rapid.Check(t, func(t *rapid.T) {
		mc := newMachine(t, focus...)
		t.Repeat(rapid.StateMachineActions(mc))
		sw.add(mc)
		mc.finish(t)
	})
	t.Logf("drafts: %+v", draftTally)
	t.Logf("edge: %+v", edgeTally)
	t.Logf("swaps: %+v", sw)
	return sw
}

// swapTally counts what runs of the machine did on layouts with a State
// group beside a window or chunked-local group: runs, and their swap-outs
// (Tiers.SwapOutCalls) and recompute preemptions.
type swapTally struct {
	Runs, StateLocalRuns, SwapOuts, Preemptions uint64
}

func (y *swapTally) add(mc *machine) {
	y.Runs++
	g := mc.m.Config().Groups
	if !slices.ContainsFunc(g, func(k paged.Group) bool { return k.Kind == paged.State }) ||
		!slices.ContainsFunc(g, func(k paged.Group) bool { return k.Kind == paged.SlidingWindow || k.Kind == paged.ChunkedLocal }) {
		return
	}
	st := mc.m.Stats()
	y.StateLocalRuns++
	y.SwapOuts += st.Tiers.SwapOutCalls
	y.Preemptions += st.Preemptions
}

// TestStateMachineStateLocalSwap is TestStateMachine on the layouts where
// a State group sits beside a sliding window or a chunked-local group, in
// pools of 7 to 15 usable blocks (submitOne's request fits beside the
// watermark), with swap preemption in about 5 runs in
// 6: the swap and preemption paths of those layouts (a swapped-out
// sequence's window kept from the position its next step computes, its
// state pages moved whole, a dropped step taken back by Uncompute) are
// drawn far more often than in the general machine, which draws such a
// layout in about 1 run in 6 and swaps in half of those.
func TestStateMachineStateLocalSwap(t *testing.T) {
	sw := runMachine(t, machineFocus{stateLocal: true})
	if sw.Runs >= 100 {
		if sw.StateLocalRuns != sw.Runs || sw.SwapOuts == 0 {
			t.Errorf("%d runs, %d on a State group beside a local one, %d swap-outs", sw.Runs, sw.StateLocalRuns, sw.SwapOuts)
		}
	}
}

func FuzzScheduler(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		rapid.MakeFuzz(func(t *rapid.T) {
			mc := newMachine(t)
			t.Repeat(rapid.StateMachineActions(mc))
			mc.finish(t)
		})(t, data)
	})
}
