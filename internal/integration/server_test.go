package integration_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/fleet/zmq"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The test runs a small fleet of inference servers for many steps, each a
// sched.Scheduler over a paged.Manager of a hybrid layout, the way a Go
// server author wires the library together, and checks after every step:
//
//   - Manager.Check;
//   - a shadow KV store: every directive of the step (Swaps in order, then
//     Copies, then state checkpoints) is executed on it, every new token's
//     KV is written at the slot the batch names in every group, and every
//     position a query of the step reads, in every group (the whole prefix
//     for full attention, the window, the chunk, the state pages), must
//     hold the KV of exactly the sequence's own tokens up to there;
//   - every sequence holds the prompt and the tokens it was given;
//   - the fleet index fed by the events scores each server for each
//     admission exactly the prefix the manager then hits, and equals an
//     index rebuilt from a Snapshot at every step; the index fed through
//     vLLM frames (fleet/kvevents) never scores more (the same without a
//     host tier), and in TestServerLoopZMQ one fed over ZeroMQ equals it;
//   - a live prefix pin keeps its prefix on the device, and the pin events
//     tally with PinStats;
//   - split-KV plans (Batch.SplitUnits) pass SplitPlan.Check;
//   - at the end nothing is left but cached content and pins, and after
//     a ResetCache every index scores nothing.

// debug logs every scheduled entry and preemption, to read a failure's
// history (set it and rerun with -rapid.failfile).
const debug = false

// families are the shared prefixes of prompts (a system prompt each).
const families = 3

// maxDrafts is the most drafts a sample verifies in a step.
const maxDrafts = 3

// srv is one inference server of the fleet.
type srv struct {
	name string
	cfg  paged.Config
	m    *paged.Manager
	s    *sched.Scheduler
	ph   *paged.PromptHasher
	bs   int
	reqs []*req
	// swapped are the sequences preempted by swap, whose readmission is a
	// SwapIn (no prefix lookup).
	swapped map[paged.SeqID]bool
	// expect is, for each waiting sequence, the prefix in tokens the fleet
	// index (rebuilt from a snapshot just before) says it hits.
	expect map[paged.SeqID]int
	// inAdmit: Schedule is in its admission phase.
	inAdmit bool
	// dev and host are the shadow KV store: per slot, the value of the
	// KV written there (see val).
	dev, host map[int64]uint64
	// batch is reused every step.
	batch paged.Batch
	evs   []paged.Event
	// frames, batchSeq and stream carry the events as vLLM frames to
	// index b; pub publishes them over ZeroMQ to index c.
	frames   []byte
	batchSeq uint64
	stream   kvevents.Stream
	pub      *zmq.Publisher
	// pins are the live prefix pins; pinEvents counts the pin events by
	// kind.
	pins      []pin
	pinEvents map[paged.PinEventKind]uint64
	// admitted counts the admissions checked against the fleet index,
	// hits those with a prefix hit.
	admitted, hits int
	// dropped is the manager's CheckpointHitsDropped when expect was
	// made, fell its HitFallbacks.
	dropped, fell uint64
	// drafts counts the drafts the steps verified, checkpoints the state
	// checkpoints written.
	drafts, checkpoints int
}

type req struct {
	r      *sched.Request
	prompt []int32
	opts   sched.Options
	hist   [][]int32
	// fresh says the sample was given a token by the last Update, which
	// drafts may follow (sched.Scheduler.Propose).
	fresh []bool
}

type pin struct {
	id     paged.PinID
	prompt []int32
	blocks int
	until  int64
}

// world is one run: the servers and their shared fleet indexes.
type world struct {
	t   *rapid.T
	bs  int
	now int64
	// next is the next sampled token: distinct values make misplaced KV
	// visible.
	next    int32
	servers []*srv
	sys     [families][]int32
	// a is fed the managers' events as they are; b through vLLM frames;
	// c over ZeroMQ (nil unless drawn); probe is rebuilt from snapshots.
	a, b, c, probe *fleet.Index
	enc            *kvevents.Encoder
	scores         []fleet.Score
	follow         context.CancelFunc
	followErr      chan error
}

// val is the KV of group g at the position whose token prefix has key k.
func val(g int, k uint64) uint64 { return k ^ uint64(g+1)*0x9E3779B97F4A7C15 }

// stateVal is a state group's state after the tokens of key k.
func stateVal(g int, k uint64) uint64 { return val(g, k) ^ 0xD6E8FEB86659FD93 }

// prefixKeys returns the key of each token prefix: keys[i] names toks[:i+1].
func prefixKeys(dst []uint64, toks []int32) []uint64 {
	dst = dst[:0]
	h := uint64(0xCBF29CE484222325)
	for _, x := range toks {
		h ^= uint64(uint32(x)) + 0x9E3779B97F4A7C15
		h *= 0x100000001B3
		h ^= h >> 29
		dst = append(dst, h)
	}
	return dst
}

func drawLayout(t *rapid.T, bs int) (string, []paged.Group) {
	switch rapid.IntRange(0, 3).Draw(t, "layout") {
	case 0:
		return "full", nil
	case 1: // gpt-oss: full attention beside a sliding window
		w := rapid.IntRange(1, 4*bs).Draw(t, "window")
		return fmt.Sprintf("full window:%d", w), []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: w}}
	case 2: // Qwen3-Next: three linear-attention states per full-attention group
		p := rapid.IntRange(1, 2).Draw(t, "pages")
		return fmt.Sprintf("full state:%d x3", p), []paged.Group{{Kind: paged.FullAttention},
			{Kind: paged.State, Pages: p}, {Kind: paged.State, Pages: p}, {Kind: paged.State, Pages: p}}
	default: // every kind at once
		w := rapid.IntRange(1, 3*bs).Draw(t, "window")
		c := rapid.IntRange(1, 3*bs).Draw(t, "chunk")
		return fmt.Sprintf("full window:%d chunked:%d state:1 shared:1", w, c), []paged.Group{{Kind: paged.FullAttention},
			{Kind: paged.SlidingWindow, Window: w}, {Kind: paged.ChunkedLocal, Chunk: c}, {Kind: paged.State, Pages: 1},
			{Kind: paged.Shared, Target: 1}}
	}
}

func newWorld(t *rapid.T, withZMQ bool) *world {
	bs := rapid.SampledFrom([]int{2, 4}).Draw(t, "blockSize")
	w := &world{t: t, bs: bs, next: 10000}
	for f := range families {
		n := rapid.IntRange(bs, 4*bs).Draw(t, "sysLen")
		for i := range n {
			w.sys[f] = append(w.sys[f], int32(100*(f+1)+i))
		}
	}
	mk := func() *fleet.Index {
		mem, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: 1 << 12})
		if err != nil {
			t.Fatal(err)
		}
		x, err := fleet.New(fleet.Config{Backend: mem})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	w.a, w.b, w.probe = mk(), mk(), mk()
	if withZMQ {
		w.c = mk()
	}
	var err error
	if w.enc, err = kvevents.NewEncoder(kvevents.EncoderConfig{Layout: kvevents.Layout(rapid.IntRange(0, 1).Draw(t, "wire"))}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		w.servers = append(w.servers, w.newServer(fmt.Sprintf("s%d", i)))
	}
	if withZMQ {
		w.startZMQ()
	}
	return w
}

func (w *world) newServer(name string) *srv {
	t, bs := w.t, w.bs
	layout, groups := drawLayout(t, bs)
	cfg := paged.Config{
		BlockSize: bs,
		NumBlocks: rapid.IntRange(24, 64).Draw(t, "blocks"),
		Groups:    groups,
		Events:    1 << 12,
		HashSeed:  []byte("fleet"),
		Watermark: rapid.SampledFrom([]float64{0, 0.05}).Draw(t, "watermark"),
	}
	if rapid.Bool().Draw(t, "backPressure") {
		cfg.MaxWaiting = rapid.IntRange(2, 8).Draw(t, "maxWaiting")
	}
	cfg.HashMemo = rapid.Bool().Draw(t, "hashMemo")
	// vLLM's decisions (one free queue) take one kind besides full
	// attention.
	if !strings.Contains(layout, "chunked") {
		cfg.UnifiedFreeQueue = rapid.IntRange(0, 3).Draw(t, "unified") == 0
	}
	if rapid.Bool().Draw(t, "priorityPolicy") {
		cfg.Policy = eviction.NewPriority
	}
	scfg := sched.Config{
		MaxDrafts:            maxDrafts,
		MaxRunning:           rapid.IntRange(3, 8).Draw(t, "maxRunning"),
		CheckBeforeAdmit:     rapid.Bool().Draw(t, "checkBefore"),
		AdmitAfterPreemption: rapid.Bool().Draw(t, "admitAfterPreemption"),
		Policy:               sched.Policy(rapid.IntRange(0, 1).Draw(t, "policy")),
	}
	if rapid.Bool().Draw(t, "chunked") {
		scfg.MaxBatchTokens = rapid.IntRange(2*bs, 12*bs).Draw(t, "budget")
		scfg.ChunkedPrefill = true
	}
	if rapid.IntRange(0, 3).Draw(t, "host") > 0 {
		cfg.HostBlocks = rapid.IntRange(4, 48).Draw(t, "hostBlocks")
		cfg.OffloadPriority = rapid.SampledFrom([]int{0, 0, 40}).Draw(t, "offloadPriority")
		if rapid.Bool().Draw(t, "swap") {
			scfg.Preemption = sched.Swap
		}
	}
	m, err := paged.New(cfg)
	if err != nil {
		t.Fatalf("%s (%s): %v", name, layout, err)
	}
	if err := m.SetPinBudget(rapid.IntRange(0, (cfg.NumBlocks-1)/3).Draw(t, "pinBudget")); err != nil {
		t.Fatal(err)
	}
	ph, err := m.NewPromptHasher(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &srv{name: name, cfg: cfg, m: m, ph: ph, bs: bs,
		swapped: map[paged.SeqID]bool{}, expect: map[paged.SeqID]int{},
		dev: map[int64]uint64{}, host: map[int64]uint64{}, pinEvents: map[paged.PinEventKind]uint64{}}
	scfg.Hooks = w.hooks(s)
	if s.s, err = sched.New(m, scfg); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*fleet.Index{w.a, w.b, w.c} {
		if x == nil {
			continue
		}
		if err := x.SetLayout(name, fleet.LayoutOf(cfg)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: %s, %d blocks, host %d, %v preemption, chunked %v, unified %v", name, layout, cfg.NumBlocks, cfg.HostBlocks, scfg.Preemption, scfg.ChunkedPrefill, cfg.UnifiedFreeQueue)
	return s
}

// hooks check each admission's hit against the fleet index's view of the
// manager just before it: at the start of the admission phase, and after
// every change the phase makes, the expected hits of the waiting
// sequences are scored again from a snapshot.
func (w *world) hooks(s *srv) sched.Hooks {
	return sched.Hooks{
		Phase: func(p sched.Phase) {
			s.inAdmit = p == sched.PhaseAdmit
			if s.inAdmit {
				w.expectHits(s)
			}
		},
		Scheduled: func(sc *sched.Scheduled) {
			if !s.inAdmit || !sc.Admitted {
				return
			}
			if s.swapped[sc.Seq] {
				delete(s.swapped, sc.Seq)
			} else {
				want, ok := s.expect[sc.Seq]
				if !ok {
					w.t.Fatalf("%s: %v admitted, not waiting before", s.name, sc.Seq)
				}
				if sc.Cached == 0 && s.m.Stats().CheckpointHitsDropped != s.dropped {
					// A checkpoint hit that did not fit, computed from
					// scratch (paged.Manager.Admit): this admission's,
					// or another's made since expect was made (Unadmit
					// takes back what an undone one counted).
					want = 0
				}
				if sc.Cached < want && s.m.Stats().HitFallbacks != s.fell {
					// The longest hit would have made the admission
					// refused for good: a shorter one taken
					// (paged.Manager.AdmitChunk), this admission's or
					// another's made since expect was made.
					want = sc.Cached
				}
				if sc.Cached != want {
					toks, _ := s.m.Tokens(sc.Seq)
					w.t.Fatalf("%s: request %d sample %d (%d tokens) hit %d tokens, the fleet index scored %d", s.name, sc.Request.ID(), sc.Sample, len(toks), sc.Cached, want)
				}
				s.admitted++
				if want > 0 {
					s.hits++
				}
			}
			w.expectHits(s)
		},
		Preempted: func(r *sched.Request, sample int, swapped bool) {
			if debug {
				w.t.Logf("%s: preempted req %d sample %d swapped %v", s.name, r.ID(), sample, swapped)
			}
			if swapped {
				s.swapped[r.Seq(sample)] = true
			}
			if s.inAdmit {
				w.expectHits(s)
			}
		},
		Aborted: func(r *sched.Request, err error) {
			reason := regexp.MustCompile(`[0-9]+`).ReplaceAllString(err.Error(), "N")
			if ps := s.m.PinStats(); ps.Lasting > 0 && ps.PinnedBlocks > 0 {
				// Pins without expiry count as held for good.
				reason += " (pins without expiry hold blocks)"
			}
			abortReasons[reason]++
			if s.inAdmit {
				w.expectHits(s)
			}
		},
	}
}

// expectHits scores every waiting sequence of s in an index rebuilt from a
// snapshot of the manager as it is now.
func (w *world) expectHits(s *srv) {
	t := w.t
	w.resyncProbe(s)
	clear(s.expect)
	s.dropped = s.m.Stats().CheckpointHitsDropped
	s.fell = s.m.Stats().HitFallbacks
	for _, q := range s.reqs {
		r := q.r
		if r.State().Done() {
			continue
		}
		for i := range r.Samples() {
			id := r.Seq(i)
			if id == 0 || s.swapped[id] {
				continue
			}
			if run, err := s.m.Running(id); err != nil || run {
				continue
			}
			toks, err := s.m.Tokens(id)
			if err != nil {
				t.Fatal(err)
			}
			sc := w.score(w.probe, s, toks, q.opts.Seq)
			s.expect[id] = sc.Blocks * s.bs
		}
	}
}

// resyncProbe rebuilds the probe index's view of s from a snapshot.
func (w *world) resyncProbe(s *srv) {
	t := w.t
	var snap paged.Snapshot
	s.m.Snapshot(&snap)
	if err := w.probe.Unregister(s.name); err != nil && !errors.Is(err, fleet.ErrUnknownServer) {
		t.Fatal(err)
	}
	if err := w.probe.SetLayout(s.name, fleet.LayoutOf(s.cfg)); err != nil {
		t.Fatal(err)
	}
	if err := w.probe.Resync(s.name, &snap); err != nil {
		t.Fatal(err)
	}
}

// score looks up server s in x for a prompt: the blocks a hit may cover.
func (w *world) score(x *fleet.Index, s *srv, toks []int32, opts *paged.SeqOptions) fleet.Score {
	hashes := s.ph.Hashes(nil, toks, opts)
	hashes = hashes[:(len(toks)-1)/s.bs]
	var err error
	if w.scores, err = x.Lookup(hashes, w.scores[:0]); err != nil {
		w.t.Fatal(err)
	}
	for _, sc := range w.scores {
		if sc.Name == s.name {
			return sc
		}
	}
	return fleet.Score{}
}

// prompt draws a prompt: a system prompt of one family, then a tail.
func (w *world) prompt() []int32 {
	t := w.t
	p := slices.Clone(w.sys[rapid.IntRange(0, families-1).Draw(t, "family")])
	p = p[:rapid.IntRange(1, len(p)).Draw(t, "sysCut")]
	for range rapid.IntRange(0, 3*w.bs).Draw(t, "tail") {
		p = append(p, int32(rapid.IntRange(0, 3).Draw(t, "tok")))
	}
	return p
}

// submit routes a new request to the server with the longest prefix in
// index a (PrefixAware), as a router in front of the fleet does.
func (w *world) submit() {
	t := w.t
	prompt := w.prompt()
	opts := sched.Options{
		MaxTokens: rapid.IntRange(1, 4*w.bs).Draw(t, "maxTokens"),
		N:         rapid.SampledFrom([]int{1, 1, 1, 2, 3}).Draw(t, "n"),
		Priority:  rapid.IntRange(0, 2).Draw(t, "priority"),
	}
	if rapid.Bool().Draw(t, "retention") {
		opts.Seq = &paged.SeqOptions{Retention: &paged.Retention{
			Priority: rapid.IntRange(0, 100).Draw(t, "retPriority"),
			Ticks:    int64(rapid.IntRange(0, 20).Draw(t, "retTicks")),
		}}
	}
	cands := make([]fleet.Candidate, len(w.servers))
	for i, s := range w.servers {
		cands[i] = fleet.Candidate{Score: w.score(w.a, s, prompt, opts.Seq), Load: float64(s.s.Running() + s.s.Waiting())}
	}
	s := w.servers[fleet.PrefixAware{}.Route(cands)]
	if rapid.IntRange(0, 3).Draw(t, "misroute") == 0 {
		s = w.servers[rapid.IntRange(0, len(w.servers)-1).Draw(t, "server")]
	}
	r, err := s.s.Submit(prompt, opts)
	if err != nil {
		if errors.Is(err, sched.ErrNever) {
			return // too long for this pool or budget
		}
		if errors.Is(err, paged.ErrNoSpace) && s.cfg.MaxWaiting > 0 {
			tally.refused++
			return // back-pressure: paged.Config.MaxWaiting sequences wait
		}
		t.Fatalf("%s: Submit: %v", s.name, err)
	}
	s.reqs = append(s.reqs, &req{r: r, prompt: prompt, opts: opts, hist: make([][]int32, max(opts.N, 1)), fresh: make([]bool, max(opts.N, 1))})
}

// propose gives drafts to some samples that decode next: each draft a
// fresh token value, so a draft's KV in the wrong slot shows. The
// scheduler takes them for any sample the last Update gave a token.
func (w *world) propose(s *srv) {
	t := w.t
	for _, q := range s.reqs {
		for i := range q.r.Samples() {
			if !q.fresh[i] || q.r.Seq(i) == 0 || rapid.IntRange(0, 2).Draw(t, "propose") == 0 {
				continue
			}
			drafts := make([]int32, rapid.IntRange(0, maxDrafts).Draw(t, "drafts"))
			for k := range drafts {
				w.next++
				drafts[k] = w.next
			}
			if err := s.s.Propose(q.r, i, drafts); err != nil {
				t.Fatalf("%s: Propose for request %d sample %d: %v", s.name, q.r.ID(), i, err)
			}
		}
	}
}

// pins makes, extends and drops prefix pins of the system prompts, and
// checks that each live one still holds its prefix on the device.
func (w *world) pinStep(s *srv) {
	t, m := w.t, s.m
	for _, p := range s.pins {
		if p.until != 0 && p.until <= w.now {
			continue
		}
		// Every full block the pin holds: a hit leaves the last token to
		// compute, a pin need not.
		sc := w.score(w.a, s, append(slices.Clone(p.prompt), 0), nil)
		if sc.Device < p.blocks {
			t.Fatalf("%s: pin %d holds %d blocks of a system prompt until %d (now %d), the index scores %d on the device",
				s.name, p.id, p.blocks, p.until, w.now, sc.Device)
		}
	}
	switch rapid.IntRange(0, 7).Draw(t, "pinOp") {
	case 0:
		p := w.sys[rapid.IntRange(0, families-1).Draw(t, "pinFamily")]
		until := w.now + int64(rapid.IntRange(1, 30).Draw(t, "pinTicks"))
		if rapid.IntRange(0, 9).Draw(t, "lastingPin") == 0 {
			until = 0 // until Unpin
		}
		id, held, err := m.Pin(p, nil, until)
		switch {
		case err == nil:
			s.pins = append(s.pins, pin{id: id, prompt: p, blocks: held / w.bs, until: until})
		case errors.Is(err, paged.ErrPinBudget):
		default:
			t.Fatalf("%s: Pin: %v", s.name, err)
		}
	case 1:
		if len(s.pins) == 0 {
			break
		}
		i := rapid.IntRange(0, len(s.pins)-1).Draw(t, "pin")
		p := &s.pins[i]
		if rapid.Bool().Draw(t, "unpin") {
			err := m.Unpin(p.id)
			if expired := p.until != 0 && p.until <= w.now; expired != errors.Is(err, paged.ErrUnknownPin) || (!expired && err != nil) {
				t.Fatalf("%s: Unpin of pin until %d at %d: %v", s.name, p.until, w.now, err)
			}
			s.pins = slices.Delete(s.pins, i, i+1)
			break
		}
		until := w.now + int64(rapid.IntRange(1, 30).Draw(t, "extendTicks"))
		err := m.ExtendPin(p.id, until)
		if expired := p.until != 0 && p.until <= w.now; expired != errors.Is(err, paged.ErrUnknownPin) || (!expired && err != nil) {
			t.Fatalf("%s: ExtendPin of pin until %d at %d: %v", s.name, p.until, w.now, err)
		}
		if err == nil {
			p.until = until
		}
	}
	s.pins = slices.DeleteFunc(s.pins, func(p pin) bool { return p.until != 0 && p.until <= w.now })
	// The pin events, as a prompt-caching API's metrics read them, tally
	// with the statistics.
	for _, e := range m.TakePinEvents(nil) {
		s.pinEvents[e.Kind]++
	}
	ps := m.PinStats()
	if ps.EventsDropped != 0 || s.pinEvents[paged.Pinned] != ps.Made || s.pinEvents[paged.Unpinned] != ps.Unpinned ||
		s.pinEvents[paged.PinExpired] != ps.Expired || s.pinEvents[paged.PinRejected] != ps.Rejected || ps.PinnedBlocks > ps.Budget {
		t.Fatalf("%s: pin events %v, statistics %+v", s.name, s.pinEvents, ps)
	}
}

// step runs one engine step of server s.
func (w *world) step(s *srv) {
	t, m := w.t, s.m
	w.pinStep(s)
	// Onboard the head of the queue's host-resident prefix ahead of its
	// admission, as a server overlapping the transfer with a step does.
	if s.cfg.HostBlocks > 0 && rapid.IntRange(0, 2).Draw(t, "onboard") == 0 {
		if r, i, ok := s.s.Next(); ok {
			// A swapped-out head is refused (ErrSequenceState): SwapIn
			// brings its own blocks back.
			if _, err := m.Onboard(r.Seq(i)); err != nil && !errors.Is(err, paged.ErrNoSpace) &&
				!(s.swapped[r.Seq(i)] && errors.Is(err, paged.ErrSequenceState)) {
				t.Fatalf("%s: Onboard of the head of the queue: %v", s.name, err)
			}
		}
	}
	w.propose(s)
	// Schedule of an idle scheduler returns an empty step that Update
	// refuses (ErrInvalid: no scheduled step), so the loop asks Busy.
	busy := s.s.Busy()
	st, err := s.s.Schedule()
	if err != nil {
		t.Fatalf("%s: Schedule: %v", s.name, err)
	}
	if debug {
		for _, sc := range st.Scheduled {
			t.Logf("%s step %d: req %d sample %d %v start %d new %d cached %d outputs %d admitted %v prefill %v state %v", s.name, st.Number, sc.Request.ID(), sc.Sample, sc.Seq, sc.Start, sc.NewTokens, sc.Cached, sc.Outputs, sc.Admitted, sc.Prefill, sc.Request.State())
		}
	}
	ents := make([]paged.Scheduled, 0, len(st.Scheduled))
	starts := make([]int, 0, cap(ents))
	for _, sc := range st.Scheduled {
		ents = append(ents, paged.Scheduled{ID: sc.Seq, NewTokens: sc.NewTokens})
		starts = append(starts, sc.Start)
		if n := len(sc.Drafts); n > 0 {
			// The drafts are the sequence's last tokens, after its
			// pending one.
			toks, err := m.Tokens(sc.Seq)
			if err != nil || sc.Prefill || !slices.Equal(toks[len(toks)-n:], sc.Drafts) {
				t.Fatalf("%s: request %d sample %d verifies drafts %v, holds %v (%v)", s.name, sc.Request.ID(), sc.Sample, sc.Drafts, toks, err)
			}
		}
	}
	s.drafts += st.Drafts
	if len(ents) > 0 {
		s.batch.SplitUnits = rapid.SampledFrom([]int{0, 0, 1, 3, 8}).Draw(t, "splitUnits")
		if err := s.s.BuildBatch(&s.batch); err != nil {
			t.Fatalf("%s: BuildBatch of %v (starts %v, sched %+v): %v", s.name, ents, starts, st.Scheduled, err)
		}
		if s.batch.SplitUnits > 0 {
			if err := s.batch.Split.CheckFrom(s.batch.FirstBlocks, s.batch.BlocksPerSeq); err != nil {
				t.Fatalf("%s: split plan: %v", s.name, err)
			}
		}
		// Schedule took the step's checkpoints: the manager has none
		// left.
		if left := m.TakeCheckpoints(nil); len(left) != 0 {
			t.Fatalf("%s: %d checkpoints left in the manager after Schedule", s.name, len(left))
		}
		cps := st.Checkpoints
		s.checkpoints += len(cps)
		w.shadow(s, ents, starts, cps)
	}
	// A client cancels while the model runs: after it ran, before Update,
	// which then skips the request's outputs.
	var cancelled *sched.Request
	if len(st.Scheduled) > 0 && rapid.IntRange(0, 19).Draw(t, "cancelInStep") == 0 {
		cancelled = st.Scheduled[rapid.IntRange(0, len(st.Scheduled)-1).Draw(t, "cancelEntry")].Request
		if err := s.s.Cancel(cancelled); err != nil {
			t.Fatalf("%s: Cancel between Schedule and Update: %v", s.name, err)
		}
	}
	toks := make([]int32, 0, st.Outputs)
	for range st.Outputs {
		w.next++
		toks = append(toks, w.next)
	}
	// The verifier accepts a prefix of each sequence's drafts.
	accepted := make([]int, len(st.Scheduled))
	for i, sc := range st.Scheduled {
		if len(sc.Drafts) > 0 {
			accepted[i] = rapid.IntRange(0, len(sc.Drafts)).Draw(t, "accepted")
		}
	}
	switch {
	case !busy:
	case st.Drafts > 0:
		if err := s.s.UpdateSpeculative(toks, accepted, nil); err != nil {
			t.Fatalf("%s: UpdateSpeculative: %v", s.name, err)
		}
	default:
		if err := s.s.Update(toks); err != nil {
			t.Fatalf("%s: Update: %v", s.name, err)
		}
	}
	for _, q := range s.reqs {
		clear(q.fresh)
	}
	k := 0
	for i, sc := range st.Scheduled {
		if sc.Request == cancelled {
			k += sc.Outputs
			continue
		}
		q := s.reqs[slices.IndexFunc(s.reqs, func(q *req) bool { return q.r == sc.Request })]
		for j := range sc.Outputs {
			// The accepted drafts, then the token sampled after them
			// (no stop tokens here, and drafts never pass MaxTokens).
			h := append(q.hist[sc.Sample+j], sc.Drafts[:accepted[i]]...)
			q.hist[sc.Sample+j] = append(h, toks[k])
			q.fresh[sc.Sample+j] = true
			k++
		}
	}
	// A prompt whose forks found no room went back to the queue: its
	// outputs of the step were dropped, to be drawn again.
	for _, q := range s.reqs {
		for i := range q.hist {
			if n := q.r.Outputs(i); i >= q.r.Samples() || n < len(q.hist[i]) {
				if q.r.Samples() != 1 || q.r.Outputs(0) != 0 {
					t.Fatalf("%s: request %d sample %d has %d outputs, was given %d", s.name, q.r.ID(), i, n, len(q.hist[i]))
				}
				q.hist[i], q.fresh[i] = q.hist[i][:0], false
			}
		}
	}
	s.reqs = slices.DeleteFunc(s.reqs, func(q *req) bool { return q.r.State().Done() })
	if err := m.Check(); err != nil {
		t.Fatalf("%s: step %d: %v", s.name, st.Number, err)
	}
	w.checkTokens(s)
	w.feed(s)
}

// shadow runs the step on the shadow KV store and checks every read.
func (w *world) shadow(s *srv, ents []paged.Scheduled, starts []int, cps []paged.Checkpoint) {
	t, m, b := w.t, s.m, &s.batch
	bs := int64(s.bs)
	move := func(src, dst map[int64]uint64, from, to int64) {
		for i := range bs {
			if v, ok := src[from*bs+i]; ok {
				dst[to*bs+i] = v
			} else {
				delete(dst, to*bs+i)
			}
		}
	}
	tier := func(md paged.Medium) map[int64]uint64 {
		if md == paged.Host {
			return s.host
		}
		return s.dev
	}
	for _, x := range b.Swaps {
		if debug {
			t.Logf("%s swap %v %d -> %d group %d", s.name, x.Kind, x.Src, x.Dst, x.Group)
		}
		move(tier(x.Kind.SrcMedium()), tier(x.Kind.DstMedium()), int64(x.Src), int64(x.Dst))
	}
	for _, c := range b.Copies {
		move(s.dev, s.dev, int64(c.Src), int64(c.Dst))
	}
	groups := s.cfg.Groups
	if len(groups) == 0 {
		groups = []paged.Group{{Kind: paged.FullAttention}}
	}
	row := func(g, i int) []int32 {
		if g == 0 {
			return b.Tables[i*b.Stride : (i+1)*b.Stride]
		}
		width := b.Stride
		if groups[g].Kind == paged.State {
			width = groups[g].Pages
		}
		return b.GroupTables[g-1][i*width : (i+1)*width]
	}
	// state is state j of sequence i in State group g: 0 its row, j > 0
	// the state after its j-th pending draft (Batch.StateDrafts).
	state := func(g, i, j int) []int32 {
		if j == 0 {
			return row(g, i)
		}
		p := groups[g].Pages
		k := int(b.DraftStart[i]) + j - 1
		return b.StateDrafts[g-1][k*p : (k+1)*p]
	}
	keys := make([][]uint64, len(ents))
	index := map[paged.SeqID]int{}
	for i, e := range ents {
		toks, err := m.Tokens(e.ID)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = prefixKeys(nil, toks)
		index[e.ID] = i
		if b.Seqs[i] != e.ID || int(b.SeqLens[i]) != len(toks) || int(b.QueryLens[i]) != e.NewTokens {
			t.Fatalf("%s: batch row %d: %v len %d query %d, scheduled %v len %d query %d", s.name, i, b.Seqs[i], b.SeqLens[i], b.QueryLens[i], e.ID, len(toks), e.NewTokens)
		}
	}
	// State checkpoints at the start of a sequence's step are copied from
	// its own state before the kernels; the others are written as the
	// kernels pass them.
	for _, cp := range cps {
		i, ok := index[cp.Seq]
		if !ok {
			t.Fatalf("%s: checkpoint of %v, which the step does not run", s.name, cp.Seq)
		}
		if cp.Tokens < starts[i] || cp.Tokens > starts[i]+ents[i].NewTokens || cp.Tokens < 1 {
			t.Fatalf("%s: checkpoint of %v at %d, the step computes [%d, %d)", s.name, cp.Seq, cp.Tokens, starts[i], starts[i]+ents[i].NewTokens)
		}
		if cp.Tokens == starts[i] {
			for j, p := range cp.Pages {
				move(s.dev, s.dev, int64(row(cp.Group, i)[j]), int64(p))
			}
		}
	}
	// Before the kernels: each state holds the state after the tokens
	// computed before the step.
	for i := range ents {
		for g, gr := range groups {
			if gr.Kind != paged.State || starts[i] == 0 {
				continue
			}
			want := stateVal(g, keys[i][starts[i]-1])
			for j, p := range state(g, i, int(b.StateRead[i])) {
				if got := s.dev[int64(p)*bs]; p == 0 || got != want {
					t.Fatalf("%s: %v (%d tokens computed) reads state page %d of group %d in block %d holding %x, not its state %x",
						s.name, ents[i].ID, starts[i], j, g, p, got, want)
				}
			}
		}
	}
	// The kernels write every new token's KV in every group that holds
	// blocks, and the states.
	for i, e := range ents {
		q0 := int(b.QueryStart[i])
		for k := range e.NewTokens {
			pos := starts[i] + k
			for g, gr := range groups {
				var slot int64
				switch gr.Kind {
				case paged.State, paged.Shared:
					continue
				case paged.FullAttention:
					if g == 0 {
						slot = b.Slots[q0+k]
						break
					}
					fallthrough
				default:
					slot = b.GroupSlots[g-1][q0+k]
				}
				r := row(g, i)
				if want := int64(r[pos/s.bs])*bs + int64(pos%s.bs); slot != want || r[pos/s.bs] == 0 {
					t.Fatalf("%s: %v position %d of group %d: slot %d, its table row says %d", s.name, e.ID, pos, g, slot, want)
				}
				s.dev[slot] = val(g, keys[i][pos])
			}
		}
		end := starts[i] + e.NewTokens
		for g, gr := range groups {
			if gr.Kind == paged.Shared {
				if !slices.Equal(row(g, i), row(gr.Target, i)) {
					t.Fatalf("%s: %v: shared group %d's row %v is not group %d's %v", s.name, e.ID, g, row(g, i), gr.Target, row(gr.Target, i))
				}
			}
			if gr.Kind != paged.State {
				continue
			}
			// The tokens before the drafts update the state in place,
			// each draft writes the state after it into its own pages.
			d := int(b.DraftStart[i+1] - b.DraftStart[i])
			if a := end - d; starts[i] < a {
				for _, p := range row(g, i) {
					s.dev[int64(p)*bs] = stateVal(g, keys[i][a-1])
				}
			}
			for j := max(1, starts[i]-(end-d)+1); j <= d; j++ {
				for _, p := range state(g, i, j) {
					s.dev[int64(p)*bs] = stateVal(g, keys[i][end-d+j-1])
				}
			}
		}
	}
	for _, cp := range cps {
		i := index[cp.Seq]
		if cp.Tokens == starts[i] {
			continue
		}
		for _, p := range cp.Pages {
			s.dev[int64(p)*bs] = stateVal(cp.Group, keys[i][cp.Tokens-1])
		}
	}
	// Attention reads: every position a query of the step reads holds the
	// KV of the sequence's own tokens, in its own group.
	for i, e := range ents {
		first, end := starts[i], starts[i]+e.NewTokens
		for g, gr := range groups {
			kind, span := gr.Kind, 0
			if kind == paged.Shared {
				kind = groups[gr.Target].Kind
				span = max(groups[gr.Target].Window, groups[gr.Target].Chunk)
			} else {
				span = max(gr.Window, gr.Chunk)
			}
			lo := 0
			switch kind {
			case paged.State:
				continue
			case paged.SlidingWindow:
				lo = max(0, first-span+1)
			case paged.ChunkedLocal:
				lo = first - first%span
			}
			r := row(g, i)
			src := g
			if gr.Kind == paged.Shared {
				src = gr.Target
			}
			for pos := lo; pos < end; pos++ {
				blk := r[pos/s.bs]
				if got, want := s.dev[int64(blk)*bs+int64(pos%s.bs)], val(src, keys[i][pos]); blk == 0 || got != want {
					t.Fatalf("%s: %v (step computes [%d, %d)) reads position %d of group %d (%v) in block %d: KV %x, not its own %x",
						s.name, e.ID, first, end, pos, g, gr.Kind, blk, got, want)
				}
			}
		}
	}
}

// checkTokens checks that every live sample holds its prompt and the
// tokens it was given, in order (the newest perhaps not yet appended, the
// tail not yet whole under chunked prefill).
func (w *world) checkTokens(s *srv) {
	for _, q := range s.reqs {
		r := q.r
		for i := range r.Samples() {
			id := r.Seq(i)
			if id == 0 {
				continue
			}
			toks, err := s.m.Tokens(id)
			if err != nil {
				w.t.Fatalf("%s: request %d sample %d: %v", s.name, r.ID(), i, err)
			}
			want := append(slices.Clone(q.prompt), q.hist[i]...)
			// Under chunked prefill the tail of a prompt (or of a
			// preempted sequence's tokens, recomputed) is still with the
			// scheduler.
			if len(toks) > len(want) || !slices.Equal(toks, want[:len(toks)]) || r.Outputs(i) != len(q.hist[i]) {
				w.t.Fatalf("%s: request %d sample %d holds %v, was given %v", s.name, r.ID(), i, toks, want)
			}
		}
	}
}

// feed drains the server's events into index a as they are, into index b
// as vLLM frames, and onto the ZeroMQ publisher; then index a must score
// every prompt as an index rebuilt from a snapshot does, and b never more.
func (w *world) feed(s *srv) {
	t := w.t
	s.evs = s.m.DrainEvents(s.evs[:0])
	if len(s.evs) == 0 {
		return
	}
	if err := w.a.Apply(s.name, s.evs); err != nil {
		t.Fatalf("%s: index a: %v", s.name, err)
	}
	var err error
	if s.frames, err = w.enc.AppendBatch(s.frames[:0], float64(w.now), s.evs); err != nil {
		t.Fatalf("%s: encoding %d events: %v", s.name, len(s.evs), err)
	}
	evs, err := s.stream.Decode(s.batchSeq, s.frames)
	s.batchSeq++
	if err != nil {
		t.Fatalf("%s: decoding our own frame: %v", s.name, err)
	}
	if err := w.b.Apply(s.name, evs); err != nil {
		t.Fatalf("%s: index b: %v", s.name, err)
	}
	if s.pub != nil {
		if _, err := s.pub.Publish(s.evs); err != nil {
			t.Fatalf("%s: Publish: %v", s.name, err)
		}
	}
	w.expectHits(s) // the probe, rebuilt from a snapshot now
	for f := range families {
		w.compare(s, w.sys[f])
	}
	for _, q := range s.reqs {
		w.compare(s, q.prompt)
	}
}

func (w *world) compare(s *srv, prompt []int32) {
	if len(prompt) < 2 {
		return
	}
	a, p, b := w.score(w.a, s, prompt, nil), w.score(w.probe, s, prompt, nil), w.score(w.b, s, prompt, nil)
	if a.Partial || b.Partial || a.Blocks != p.Blocks || a.Device != p.Device {
		w.t.Fatalf("%s: a prompt of %d tokens: the event-fed index scores %+v, one rebuilt from a snapshot %+v", s.name, len(prompt), a, p)
	}
	if b.Blocks > a.Blocks || b.Device > a.Device {
		w.t.Fatalf("%s: a prompt of %d tokens: the index fed vLLM frames scores %+v, over the exact %+v", s.name, len(prompt), b, a)
	}
	tally.compared++
	if b.Blocks < a.Blocks {
		tally.framesShort++
	}
	if s.cfg.HostBlocks == 0 && b.Blocks != a.Blocks {
		w.t.Fatalf("%s: a prompt of %d tokens, no host tier: the index fed vLLM frames scores %+v, the exact one %+v", s.name, len(prompt), b, a)
	}
}

func (w *world) startZMQ() {
	t := w.t
	ctx, cancel := context.WithCancel(context.Background())
	w.follow = cancel
	w.followErr = make(chan error, len(w.servers))
	for _, s := range w.servers {
		pub, err := zmq.NewPublisher(zmq.PublisherConfig{Endpoint: "tcp://127.0.0.1:0", ReplayEndpoint: "tcp://127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		s.pub = pub
		sub, err := zmq.NewSubscriber(zmq.SubscriberConfig{Endpoint: pub.Endpoint(), ReplayEndpoint: pub.ReplayEndpoint()})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		err = pub.AwaitSubscriber(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("%s: no subscriber: %v", s.name, err)
		}
		name := s.name
		go func() {
			err := zmq.Follow(ctx, sub, func(evs []paged.Event) error { return w.c.Apply(name, evs) })
			sub.Close()
			w.followErr <- err
		}()
	}
}

// stopZMQ waits until index c has every event each server published, then
// checks it scores as index b does, and closes the transport.
func (w *world) stopZMQ() {
	t := w.t
	if w.c == nil {
		return
	}
	defer func() {
		w.follow()
		for range w.servers {
			if err := <-w.followErr; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Follow: %v", err)
			}
		}
		for _, s := range w.servers {
			s.pub.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		bsts, err := w.b.Servers(nil)
		if err != nil {
			t.Fatal(err)
		}
		csts, err := w.c.Servers(nil)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for _, x := range bsts {
			i := slices.IndexFunc(csts, func(y fleet.ServerStatus) bool { return y.Name == x.Name })
			if x.Seq > 0 && (i < 0 || csts[i].Seq < x.Seq) {
				done = false
			}
		}
		if done {
			t.Logf("index c caught up over ZeroMQ: %d servers, event numbers %v", len(csts), func() (seqs []uint64) {
				for _, x := range csts {
					seqs = append(seqs, x.Seq)
				}
				return seqs
			}())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("index c is behind index b after 10s: %+v, %+v", csts, bsts)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range w.servers {
		for f := range families {
			b, c := w.score(w.b, s, w.sys[f], nil), w.score(w.c, s, w.sys[f], nil)
			if b != c {
				t.Fatalf("%s: system prompt %d: the index fed over ZeroMQ scores %+v, the one fed the frames directly %+v", s.name, f, c, b)
			}
		}
	}
}

// drain runs the servers until every request is done, then checks that
// nothing is left behind but cached content and pins.
func (w *world) drain() {
	for _, s := range w.servers {
		for steps := 0; s.s.Busy(); steps++ {
			if steps > 2000 {
				w.t.Fatalf("%s: no progress after 2000 steps", s.name)
			}
			w.now++
			s.m.Advance(w.now)
			w.step(s)
		}
		st := s.m.Stats()
		if st.Sequences != 0 || st.Tiers.HostUsed != 0 || st.UsedBlocks != s.m.PinStats().PinnedBlocks {
			w.t.Fatalf("%s: left behind: %d sequences, %d blocks used (%d pinned), %d host blocks", s.name, st.Sequences, st.UsedBlocks, s.m.PinStats().PinnedBlocks, st.Tiers.HostUsed)
		}
		// A weight update: the pins go, the cache is reset, and every
		// index sees it empty.
		held := s.m.PinStats().PinnedBlocks
		if err := s.m.ResetCache(); (err != nil) != (held > 0) || (err != nil && !errors.Is(err, paged.ErrCacheInUse)) {
			w.t.Fatalf("%s: ResetCache with %d blocks pinned: %v", s.name, held, err)
		}
		for _, p := range s.pins {
			if err := s.m.Unpin(p.id); err != nil {
				w.t.Fatal(err)
			}
		}
		s.pins = s.pins[:0]
		if err := s.m.ResetCache(); err != nil {
			w.t.Fatalf("%s: ResetCache: %v", s.name, err)
		}
		w.feed(s)
		for f := range families {
			if a, b := w.score(w.a, s, w.sys[f], nil), w.score(w.b, s, w.sys[f], nil); a.Blocks != 0 || b.Blocks != 0 {
				w.t.Fatalf("%s: after ResetCache the indexes score %+v and %+v", s.name, a, b)
			}
		}
	}
}

func runServers(t *rapid.T, withZMQ bool) {
	w := newWorld(t, withZMQ)
	defer w.stopZMQ()
	for range rapid.IntRange(20, 120).Draw(t, "steps") {
		w.now++
		for _, s := range w.servers {
			s.m.Advance(w.now)
		}
		for range rapid.IntRange(0, 2).Draw(t, "arrivals") {
			w.submit()
		}
		if rapid.IntRange(0, 15).Draw(t, "cancel") == 0 {
			s := w.servers[rapid.IntRange(0, len(w.servers)-1).Draw(t, "cancelServer")]
			if len(s.reqs) > 0 {
				i := rapid.IntRange(0, len(s.reqs)-1).Draw(t, "cancelReq")
				if err := s.s.Cancel(s.reqs[i].r); err != nil {
					t.Fatal(err)
				}
				s.reqs = slices.Delete(s.reqs, i, i+1)
			}
		}
		for _, s := range w.servers {
			w.step(s)
		}
	}
	w.drain()
	for _, s := range w.servers {
		st, ss := s.m.Stats(), s.s.Stats()
		tally.runs++
		tally.admissions += s.admitted
		tally.hits += s.hits
		tally.offloads += st.Tiers.Offloads
		tally.onboards += st.Tiers.Onboards
		tally.swapIns += st.Tiers.SwapInBlocks
		tally.preemptions += ss.Preemptions
		tally.forks += ss.Forks
		tally.aborted += ss.Aborted
		tally.pins += s.m.PinStats().Made
		tally.expired += s.m.PinStats().Expired
		tally.drafts += s.drafts
		tally.checkpoints += s.checkpoints
		tally.retainedHits += st.RetainedHits
	}
}

// tally sums what the runs did, so a run that exercises nothing shows.
var tally struct {
	runs, admissions, hits, drafts, checkpoints int
	offloads, onboards, swapIns, pins, expired  uint64
	retainedHits                                uint64
	// framesShort counts comparisons where the index fed vLLM frames
	// scored fewer blocks than the exact one (host-tier moves, which
	// vLLM's schema cannot carry); compared counts them all.
	framesShort, compared int
	// refused counts submissions refused for back-pressure.
	refused                     int
	preemptions, forks, aborted int64
}

var abortReasons = map[string]int{}

func logTally(t *testing.T) {
	t.Logf("%+v", tally)
	for k, v := range abortReasons {
		t.Logf("%d %s", v, k)
	}
}

// TestServerLoop is the fleet of servers above under rapid; -rapid.checks
// sets how many runs (100 by default, about 10 s).
func TestServerLoop(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) { runServers(t, false) })
	logTally(t)
}

// TestServerLoopZMQ runs a few fleets, drawn from fixed inputs, whose
// events also travel over ZeroMQ on 127.0.0.1.
func TestServerLoopZMQ(t *testing.T) {
	run := rapid.MakeFuzz(func(t *rapid.T) { runServers(t, true) })
	rng := rand.New(rand.NewPCG(19, 1))
	for i := range 3 {
		data := make([]byte, 1<<20)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { run(t, data) })
	}
}
