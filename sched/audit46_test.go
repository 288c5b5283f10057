package sched_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// a46Side is one of the two schedulers of a twin run (TestAudit46Twins):
// its manager, scheduler, the hook calls it made (trace, cleared at each
// step) and the requests submitted to it.
type a46Side struct {
	m     *paged.Manager
	s     *sched.Scheduler
	trace []string
	reqs  []*sched.Request
	// admitted: the sequences (by request and sample) admitted in the
	// step being scheduled (Scheduled hook), true for a swap-in; host:
	// those swapped out since their last admission.
	admitted, host map[[2]uint64]bool
	// swapInPreempted counts sequences preempted in the step that
	// swapped them in (with AdmitFirst, the documented cost).
	swapInPreempted int64
	// preempted since the last step's checks: by request and sample,
	// swapped or not.
	preempted map[[2]uint64]bool
	// alone are the preemptions (recorded at the hook) of a request while
	// no other request of the scheduler held device blocks.
	alone []string
	// inAdmitted are preemptions of a sequence admitted (or swapped in)
	// in the same step.
	inAdmitted []string
	aborted    map[uint64]bool
	// notEmpty are the aborts "does not fit an empty pool" made while the
	// pool held blocks parked until the step ends (free at the next):
	// the pool was not empty, the head may fit then (M902).
	notEmpty []string
	// stepAborts counts the Aborted hooks since the last Schedule began.
	stepAborts int
	// restarted are the beam searches restarted (by request ID) since
	// the last step.
	restarted map[uint64]bool
}

// a46Layouts are the layouts the twin runs draw: no groups, two full
// attention groups, a window, a chunked-local group, State groups, and
// the mixed layouts of the twin tests (twinLayouts).
var a46Layouts = [][]paged.Group{
	nil,
	{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}},
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}},
	{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 4}},
	{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}},
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 2}},
	twinLayouts[3],
	twinLayouts[4],
}

func newA46Side(t *rapid.T, mcfg paged.Config, cfg sched.Config) *a46Side {
	d := &a46Side{admitted: map[[2]uint64]bool{}, preempted: map[[2]uint64]bool{}, host: map[[2]uint64]bool{}, aborted: map[uint64]bool{}, restarted: map[uint64]bool{}}
	m, err := paged.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	d.m = m
	// running: a sequence other than sample i of r holds device blocks.
	running := func(r *sched.Request, i int) bool {
		for _, q := range d.reqs {
			if q.State().Done() {
				continue
			}
			for j := range q.Samples() {
				if q == r && j == i || q.Seq(j) == 0 {
					continue
				}
				if run, err := d.m.Running(q.Seq(j)); err == nil && run {
					return true
				}
			}
		}
		return false
	}
	cfg.Hooks = sched.Hooks{
		Phase: func(p sched.Phase) { d.trace = append(d.trace, "phase "+p.String()) },
		Scheduled: func(sc *sched.Scheduled) {
			d.trace = append(d.trace, "scheduled "+a46Entry(sc))
			if key := [2]uint64{sc.Request.ID(), uint64(sc.Sample)}; sc.Admitted {
				// Admitted by Admit, or swapped in (true).
				d.admitted[key] = d.host[key]
				delete(d.host, key)
			}
		},
		Preempted: func(r *sched.Request, i int, swapped bool) {
			d.trace = append(d.trace, fmt.Sprintf("preempted %d/%d %v", r.ID(), i, swapped))
			key := [2]uint64{r.ID(), uint64(i)}
			d.preempted[key] = swapped
			if swapped {
				d.host[key] = true
			}
			if !running(r, i) {
				d.alone = append(d.alone, fmt.Sprintf("request %d sample %d (swapped %v)", r.ID(), i, swapped))
			}
			if in, ok := d.admitted[key]; ok {
				d.inAdmitted = append(d.inAdmitted, fmt.Sprintf("request %d sample %d (swapped in %v, out %v)", r.ID(), i, in, swapped))
				if in {
					d.swapInPreempted++
				}
			}
		},
		Finished: func(r *sched.Request, i int) { d.trace = append(d.trace, fmt.Sprintf("finished %d/%d", r.ID(), i)) },
		Restarted: func(r *sched.Request) {
			d.trace = append(d.trace, fmt.Sprintf("restarted %d", r.ID()))
			d.restarted[r.ID()] = true
		},
		Aborted: func(r *sched.Request, err error) {
			d.trace = append(d.trace, fmt.Sprintf("aborted %d: %v", r.ID(), err))
			d.aborted[r.ID()] = true
			d.stepAborts++
			if p := d.m.Stats().ParkedBlocks; p > 0 && strings.Contains(err.Error(), "does not fit an empty pool") {
				d.notEmpty = append(d.notEmpty, fmt.Sprintf("request %d with %d blocks parked: %v", r.ID(), p, err))
			}
		},
	}
	s, err := sched.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.s = s
	return d
}

// a46Entry prints a step's entry with no address in it.
func a46Entry(sc *sched.Scheduled) string {
	return fmt.Sprintf("%d/%d seq %v [%d,+%d) cached %d outputs %d generated %d admitted %v prefill %v drafts %v",
		sc.Request.ID(), sc.Sample, sc.Seq, sc.Start, sc.NewTokens, sc.Cached, sc.Outputs, sc.Generated, sc.Admitted, sc.Prefill, sc.Drafts)
}

// a46Step prints a step, its batch (copies, swaps, tables, slots) and
// checkpoints.
func a46Step(st *sched.Step, b *paged.Batch) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "step %d outputs %d tokens %d drafts %d preempted %d checkpoints %v\n", st.Number, st.Outputs, st.Tokens, st.Drafts, st.Preempted, st.Checkpoints)
	for i := range st.Scheduled {
		sb.WriteString(a46Entry(&st.Scheduled[i]))
		sb.WriteByte('\n')
	}
	if b != nil {
		fmt.Fprintf(&sb, "seqs %v tables %v lens %v slots %v copies %v swaps %v groups %v %v\n", b.Seqs, b.Tables, b.SeqLens, b.Slots, b.Copies, b.Swaps, b.GroupTables, b.GroupSlots)
	}
	return sb.String()
}

// TestAudit46Twins runs two schedulers over two managers, built alike,
// fed the same submissions, cancels, drafts, tokens, verdicts and beam
// parents, on random workloads with every feature (chunked prefill, swap
// and recompute, N > 1, beam search, drafts, window, chunked-local and
// State groups, priorities, AdmitFirst, AdmitAfterPreemption): every
// step, its batch, its hooks in order, and the statistics of both must be
// identical (a decision that depends on map order or on addresses shows
// here). On one of them it checks the step's budget exactly, that a step
// with work and no pins schedules something, and that no position of a
// sequence is computed twice unless a recompute preemption (or restart)
// came between, each such token of a sample with outputs counted in
// Stats.ResumedTokens, that no sequence is preempted while no other
// holds device blocks, and, without AdmitFirst, that none admitted or
// swapped in is preempted in the same step once scheduled.
func TestAudit46Twins(t *testing.T) {
	var y a46Tally
	rapid.Check(t, func(t *rapid.T) {
		a46Run(t, &y)
	})
	t.Logf("twins: %+v", y)
}

// a46Tally sums what the twin runs did, so that a run of the property
// that exercises nothing shows: runs, steps, preemptions (swapped out,
// beam restarts, aborts), forks, drafts accepted, and the positions
// computed again after a recompute preemption.
type a46Tally struct {
	Runs, Steps, Preemptions, SwappedOut, Restarts, Aborted, Forks, DraftsAccepted, Recomputed int64
	// SwapInPreempted are the sequences preempted in the step that
	// swapped them in (AdmitFirst); EmptyAfterAbort the steps that ran
	// nothing after an abort, EmptyParked those of them that ended with
	// blocks parked (audit 49: the others' next step aborts).
	SwapInPreempted, EmptyAfterAbort, EmptyParked int64
}

// a46Debug logs every step of the twin runs (for a failing seed).
var a46Debug = false

func a46Run(t *rapid.T, y *a46Tally) {
	layout := a46Layouts[rapid.IntRange(0, len(a46Layouts)-1).Draw(t, "layout")]
	mcfg := paged.Config{
		BlockSize:            rapid.IntRange(1, 4).Draw(t, "bs"),
		NumBlocks:            rapid.IntRange(8, 24).Draw(t, "blocks"),
		DisablePrefixCaching: rapid.Bool().Draw(t, "noCache"),
		Watermark:            rapid.SampledFrom([]float64{0, 0, 0.2}).Draw(t, "watermark"),
		Groups:               layout,
	}
	if layout != nil {
		mcfg.DisableOffload = true
	}
	cfg := sched.Config{
		MaxRunning:             rapid.IntRange(1, 6).Draw(t, "maxRunning"),
		Policy:                 sched.Policy(rapid.IntRange(0, 1).Draw(t, "policy")),
		AdmitAfterPreemption:   rapid.Bool().Draw(t, "admitAfter"),
		CheckBeforeAdmit:       rapid.Bool().Draw(t, "check"),
		ChunkedPrefill:         rapid.Bool().Draw(t, "chunked"),
		AdmitFirst:             rapid.Bool().Draw(t, "admitFirst"),
		ResampleAfterRecompute: rapid.Bool().Draw(t, "resample"),
		MaxDrafts:              rapid.SampledFrom([]int{0, 0, 2, 4}).Draw(t, "maxDrafts"),
	}
	if rapid.Bool().Draw(t, "budget") {
		cfg.MaxBatchTokens = rapid.IntRange(2, 24).Draw(t, "maxBatchTokens")
	}
	if rapid.Bool().Draw(t, "swap") {
		cfg.Preemption = sched.Swap
		mcfg.HostBlocks = rapid.IntRange(1, 30).Draw(t, "hostBlocks")
	}
	a := newA46Side(t, mcfg, cfg)
	b := newA46Side(t, mcfg, cfg)
	cfg = a.s.Config()
	sides := []*a46Side{a, b}

	// hi: for each sequence of a, the positions computed so far
	// [0, hi); redo: a recompute preemption came since.
	hi := map[paged.SeqID]int{}
	redo := map[paged.SeqID]bool{}
	var recomputed int64
	emptied := false // the step before scheduled nothing
	// parkedEmpty: that step ended with blocks parked (audit 49).
	parkedEmpty := false
	next := int32(1000)
	actions := rapid.IntRange(5, 60).Draw(t, "actions")
	for act := 0; act < actions || a.s.Busy(); act++ {
		if act > actions+3000 {
			t.Fatal("no progress after 3000 steps")
		}
		kind := 0 // step
		if act < actions {
			kind = rapid.IntRange(0, 9).Draw(t, "action")
		}
		switch {
		case kind >= 7: // submit
			n := rapid.IntRange(1, 16).Draw(t, "promptLen")
			prompt := make([]int32, n)
			shared := rapid.IntRange(0, n).Draw(t, "shared")
			for i := range prompt {
				if i < shared {
					prompt[i] = int32(11 + i)
				} else {
					prompt[i] = int32(rapid.IntRange(0, 3).Draw(t, "tok"))
				}
			}
			opts := sched.Options{
				MaxTokens: rapid.IntRange(1, 12).Draw(t, "maxTokens"),
				N:         rapid.IntRange(0, 3).Draw(t, "n"),
				Priority:  rapid.IntRange(0, 3).Draw(t, "priority"),
			}
			if opts.N <= 1 && rapid.IntRange(0, 3).Draw(t, "beam") == 0 {
				opts.BeamWidth = rapid.IntRange(1, 3).Draw(t, "beamWidth")
			}
			if rapid.IntRange(0, 3).Draw(t, "stop") == 0 {
				opts.StopTokens = []int32{next + int32(rapid.IntRange(1, 20).Draw(t, "stopAt"))}
			}
			var errs [2]string
			for i, d := range sides {
				r, err := d.s.Submit(prompt, opts)
				errs[i] = fmt.Sprint(err)
				if err == nil {
					d.reqs = append(d.reqs, r)
				}
			}
			if errs[0] != errs[1] {
				t.Fatalf("Submit: %s and %s", errs[0], errs[1])
			}
		case kind == 6: // cancel
			var live []int
			for i, r := range a.reqs {
				if !r.State().Done() {
					live = append(live, i)
				}
			}
			if len(live) == 0 {
				continue
			}
			i := rapid.SampledFrom(live).Draw(t, "cancel")
			for _, d := range sides {
				if err := d.s.Cancel(d.reqs[i]); err != nil {
					t.Fatal(err)
				}
			}
		default: // step
			if !a.s.Busy() {
				continue
			}
			if cfg.MaxDrafts > 0 {
				for i, r := range a.reqs {
					for j := range r.Samples() {
						if r.State().Done() || r.Seq(j) == 0 || r.BeamWidth() > 0 || r.Outputs(j) == 0 || !rapid.Bool().Draw(t, "propose") {
							continue
						}
						drafts := make([]int32, rapid.IntRange(1, cfg.MaxDrafts).Draw(t, "drafts"))
						for k := range drafts {
							drafts[k] = next + int32(k) + 1
						}
						e0, e1 := a.s.Propose(r, j, drafts), b.s.Propose(b.reqs[i], j, drafts)
						if fmt.Sprint(e0) != fmt.Sprint(e1) {
							t.Fatalf("Propose: %v and %v", e0, e1)
						}
					}
				}
			}
			var out [2]string
			var steps [2]*sched.Step
			for i, d := range sides {
				d.trace = d.trace[:0]
				d.stepAborts = 0
				clear(d.admitted)
				st, err := d.s.Schedule()
				if err != nil {
					t.Fatal(err)
				}
				var batch paged.Batch
				if len(st.Scheduled) > 0 {
					if err := d.s.BuildBatch(&batch); err != nil {
						t.Fatal(err)
					}
				}
				steps[i] = st
				out[i] = a46Step(st, &batch) + strings.Join(d.trace, "\n")
			}
			if out[0] != out[1] {
				t.Fatalf("the twins' steps differ:\n%s\n----\n%s", out[0], out[1])
			}
			st := steps[0]
			if a46Debug {
				t.Logf("%s", out[0])
			}
			a46CheckBudget(t, a, st)
			a57CheckHeadWaits(t, a, st)
			if emptied && !parkedEmpty && a.stepAborts == 0 {
				t.Fatalf("step %d follows a step that scheduled nothing with no blocks parked and aborts nothing: the step before could have run what this one does", st.Number)
			}
			if len(st.Scheduled) == 0 && a.s.Busy() {
				// One step may (audit 49): it aborted a request whose
				// blocks a copy of the step parks until it ends
				// (paged.Copy), which the next step's admission finds
				// free; or it left a head that fits no empty pool, which
				// the next step aborts (checked above).
				if a.stepAborts == 0 || emptied {
					t.Fatalf("step %d schedules nothing, with %d running and %d waiting and nothing held beside the scheduler (%d aborted in it, the step before empty %v)", st.Number, a.s.Running(), a.s.Waiting(), a.stepAborts, emptied)
				}
				emptied = true
				parkedEmpty = a.m.Stats().ParkedBlocks > 0
				y.EmptyAfterAbort++
				if parkedEmpty {
					y.EmptyParked++
				}
			} else {
				emptied = false
			}
			if len(a.notEmpty) > 0 {
				t.Fatalf("step %d aborted %v", st.Number, a.notEmpty)
			}
			if len(a.alone) > 0 {
				t.Fatalf("step %d preempted %v, the only request running", st.Number, a.alone)
			}
			if len(a.inAdmitted) > 0 && !cfg.AdmitFirst {
				t.Fatalf("step %d preempted %v in the step that admitted it", st.Number, a.inAdmitted)
			}
			a.inAdmitted = a.inAdmitted[:0]
			// Recomputed positions: only after a recompute preemption.
			// (Since the last step's: Update may send a forking prompt
			// back by recompute.)
			for key, swapped := range a.preempted {
				if !swapped {
					if r := a.reqs[key[0]-1]; int(key[1]) < r.Samples() {
						redo[r.Seq(int(key[1]))] = true
					}
				}
			}
			clear(a.preempted)
			clear(b.preempted)
			for id := range a.restarted {
				if r := a.reqs[id-1]; !r.State().Done() {
					redo[r.Seq(0)] = true // its prompt, computed again
				}
			}
			clear(a.restarted)
			for _, sc := range st.Scheduled {
				h, seen := hi[sc.Seq]
				switch {
				case !seen:
				case sc.Start < h && !redo[sc.Seq]:
					t.Fatalf("step %d: request %d sample %d computes [%d, %d), though [0, %d) was computed and no recompute preemption came between", st.Number, sc.Request.ID(), sc.Sample, sc.Start, sc.Start+sc.NewTokens, h)
				case sc.Start < h && sc.Generated > 0:
					recomputed += int64(min(h, sc.Start+sc.NewTokens) - sc.Start)
				case sc.Start > h && !sc.Admitted:
					t.Fatalf("step %d: request %d sample %d computes [%d, %d), [%d, %d) skipped", st.Number, sc.Request.ID(), sc.Sample, sc.Start, sc.Start+sc.NewTokens, h, sc.Start)
				}
				hi[sc.Seq] = sc.Start + sc.NewTokens
				delete(redo, sc.Seq)
			}
			// The same tokens, verdicts and parents for both.
			tokens := make([]int32, 0, st.Outputs)
			parents := make([]int, 0, st.Outputs)
			accepted := make([]int, len(st.Scheduled))
			for i, sc := range st.Scheduled {
				if len(sc.Drafts) > 0 {
					accepted[i] = rapid.IntRange(0, len(sc.Drafts)).Draw(t, "accepted")
				}
				for j := range sc.Outputs {
					next++
					tokens = append(tokens, next)
					p := sc.Sample + j
					if sc.Request.BeamWidth() > 0 && sc.Request.Beams() > 0 {
						var beams []int
						for _, o := range st.Scheduled {
							if o.Request == sc.Request {
								beams = append(beams, o.Sample)
							}
						}
						p = rapid.SampledFrom(beams).Draw(t, "parent")
					}
					parents = append(parents, p)
				}
			}
			for i, d := range sides {
				d.trace = d.trace[:0]
				var err error
				if st.Drafts > 0 {
					err = d.s.UpdateSpeculative(tokens, accepted, parents)
				} else {
					err = d.s.UpdateBeams(tokens, parents)
				}
				if err != nil {
					t.Fatal(err)
				}
				out[i] = strings.Join(d.trace, "\n") + fmt.Sprintf("\n%+v\n%+v", d.s.Stats(), d.m.Stats())
			}
			if out[0] != out[1] {
				t.Fatalf("the twins' updates differ:\n%s\n----\n%s", out[0], out[1])
			}
			// What stays computed after the update: rejected drafts
			// are rolled back (the sampled token is appended
			// by the next step); a freed
			// sequence's handle may be given out again.
			for seq := range hi {
				if _, err := a.m.Len(seq); err != nil {
					delete(hi, seq)
					delete(redo, seq)
				}
			}
			for _, sc := range st.Scheduled {
				if n, err := a.m.Len(sc.Seq); err == nil {
					hi[sc.Seq] = min(hi[sc.Seq], n)
				}
			}
		}
	}
	ss := a.s.Stats()
	if recomputed > ss.ResumedTokens {
		t.Fatalf("%d positions of samples with outputs computed again, Stats.ResumedTokens %d", recomputed, ss.ResumedTokens)
	}
	y.Runs++
	y.Steps += ss.Steps
	y.Preemptions += ss.Preemptions
	y.SwappedOut += ss.SwappedOut
	y.Restarts += ss.Restarts
	y.Aborted += ss.Aborted
	y.Forks += ss.Forks
	y.DraftsAccepted += ss.DraftsAccepted
	y.Recomputed += recomputed
	y.SwapInPreempted += a.swapInPreempted
}

// a46CheckBudget checks a step's budget exactly: its tokens are the sum
// of its entries' (drafts included), within MaxBatchTokens, and at most
// MaxRunning sequences run.
func a46CheckBudget(t *rapid.T, d *a46Side, st *sched.Step) {
	cfg := d.s.Config()
	tokens, drafts := 0, 0
	for _, sc := range st.Scheduled {
		tokens += sc.NewTokens
		drafts += len(sc.Drafts)
		if len(sc.Drafts) > 0 && sc.NewTokens != 1+len(sc.Drafts) {
			t.Fatalf("step %d: request %d sample %d verifies %d drafts in %d tokens", st.Number, sc.Request.ID(), sc.Sample, len(sc.Drafts), sc.NewTokens)
		}
	}
	if tokens != st.Tokens || drafts != st.Drafts {
		t.Fatalf("step %d: entries of %d tokens and %d drafts, the step says %d and %d", st.Number, tokens, drafts, st.Tokens, st.Drafts)
	}
	if cfg.MaxBatchTokens > 0 && tokens > cfg.MaxBatchTokens {
		t.Fatalf("step %d computes %d tokens, budget %d", st.Number, tokens, cfg.MaxBatchTokens)
	}
	if len(st.Scheduled) > cfg.MaxRunning || d.s.Running() > cfg.MaxRunning {
		t.Fatalf("step %d: %d scheduled, %d running, limit %d", st.Number, len(st.Scheduled), d.s.Running(), cfg.MaxRunning)
	}
}

// TestAudit46SelfVictimLeavesTheRestRunning: under the Priority policy a
// running sequence that finds no block and is itself the victim (the
// lowest priority) gave up its blocks and ended the decode phase: the
// sequences after it in the running list, of higher priority, were not
// decoded in that step, though its blocks were now free (vLLM v1 breaks
// there too; under FCFS the victim is the newest, so nothing runs after
// it). Request 1 (priority 1, admitted first) and request 2 (priority 0)
// decode side by side in pools of 5 to 16 blocks of 2 tokens; whenever
// request 1's next token needs a block the pool does not have, it is the
// victim of its own decode. Request 2 is never a victim and must decode
// in every step from its admission until it finishes. The same with
// request 1 a beam search of 2 beams (restarted, as one group, when its
// beams are the victim; preemptGroup).
func TestAudit46SelfVictimLeavesTheRestRunning(t *testing.T) {
	selfVictims := [2]int{}
	for k := range 24 {
		nb, beams := 5+k%12, 2*(k/12) // (a beam search's beams are preempted together)
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb})
		var preempted []uint64
		restarted := false
		s, err := sched.New(m, sched.Config{Policy: sched.Priority, Hooks: sched.Hooks{
			Preempted: func(r *sched.Request, _ int, _ bool) { preempted = append(preempted, r.ID()) },
			Restarted: func(*sched.Request) { restarted = true },
		}})
		require.NoError(t, err)
		_, err = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 2*(nb-1) - 3, Priority: 1, BeamWidth: beams})
		require.NoError(t, err)
		var b *sched.Request
		tok := int32(100)
		for step := 1; s.Busy(); step++ {
			require.Less(t, step, 1000, "no progress")
			if step == 2 {
				b, err = s.Submit([]int32{5, 6, 7}, sched.Options{MaxTokens: nb - 3})
				require.NoError(t, err)
			}
			preempted = preempted[:0]
			st, err := s.Schedule()
			require.NoError(t, err)
			ran := slices.ContainsFunc(st.Scheduled, func(sc sched.Scheduled) bool { return sc.Request == b })
			if b != nil && !ran && b.State() == sched.Running {
				t.Fatalf("pool of %d blocks, %d beams, step %d: request 2 (priority 0) running but not decoded; preempted %v, %d scheduled", nb, beams, step, preempted, len(st.Scheduled))
			}
			require.NotContains(t, preempted, uint64(2), "pool of %d blocks, step %d", nb, step)
			if len(preempted) > 0 || restarted {
				selfVictims[k/12]++
			}
			restarted = false
			a46Update(t, s, st, &tok)
		}
		require.Equal(t, sched.Finished, b.State())
	}
	require.Positive(t, selfVictims[0])
	require.Positive(t, selfVictims[1])
}

// TestAudit46AbortLeavesRoomToAdmit: a step whose decode phase aborted a
// request that could not grow even alone in the pool (here a beam search,
// which Submit cannot refuse up front) counted the abort as a preemption,
// and a step that preempted skips the admission phase (without
// AdmitAfterPreemption, as vLLM does: the pool is short). But the aborted
// request was alone and left the pool empty: the step scheduled nothing
// while a request waited that fits. Blocks of 4, 4 usable blocks,
// MaxRunning 2: a 2-beam search whose beams extend themselves cannot
// grow past 8 tokens each; request 2 (one token) waits for the running
// limit. The step that aborts the search must admit request 2. With
// AdmitFirst the admission phase came before the abort, and the step ran
// nothing too: an abort in the decode phase now admits again after it.
func TestAudit46AbortLeavesRoomToAdmit(t *testing.T) {
	for k := range 4 {
		layout := [][]paged.Group{nil, {{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}}[k%2]
		admitFirst := k >= 2
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 1 + 4*max(1, len(layout)), Groups: layout})
		s, err := sched.New(m, sched.Config{MaxRunning: 2, AdmitFirst: admitFirst})
		require.NoError(t, err)
		beam, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 7, BeamWidth: 2})
		require.NoError(t, err)
		var b *sched.Request
		tok := int32(100)
		for step := 1; s.Busy(); step++ {
			require.Less(t, step, 100, "no progress")
			if step == 2 {
				b, err = s.Submit([]int32{5}, sched.Options{MaxTokens: 1})
				require.NoError(t, err)
			}
			st, err := s.Schedule()
			require.NoError(t, err)
			if beam.State() == sched.Aborted && b.State() == sched.Waiting {
				t.Fatalf("%d groups, AdmitFirst %v, step %d: the beam search aborted, %d scheduled, request 2 left waiting", len(layout), admitFirst, step, len(st.Scheduled))
			}
			a46Update(t, s, st, &tok)
		}
		require.Equal(t, sched.Aborted, beam.State())
		require.Equal(t, sched.Finished, b.State())
	}
}

var a46Dump *os.File

// a46Figures sums a grid of runs (TestAudit46Grid).
type a46Figures struct {
	Runs, Steps, EmptySteps, Preemptions, SwappedOut, Restarts, Aborted, Finished, PrefillTokens int64
}

// a46GridRun runs one workload of the grid: requests drawn from seed
// (prompt, outputs, priority, samples or beams, arrival step), submitted
// at their step, every output a fresh token, beams extending themselves.
// It returns the run's figures and its step trace.
func a46GridRun(t *testing.T, mcfg paged.Config, cfg sched.Config, seed uint64) (a46Figures, string) {
	m := newManager(t, mcfg)
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	type sub struct {
		at     int
		prompt []int32
		opts   sched.Options
	}
	rng := seed*6364136223846793005 + 1442695040888963407
	draw := func(n int) int { // a 64-bit LCG: the workload is the seed's alone
		rng = rng*6364136223846793005 + 1442695040888963407
		return int((rng >> 33) % uint64(n))
	}
	var subs []sub
	for i := range 6 {
		q := sub{at: 1 + draw(6), opts: sched.Options{MaxTokens: 1 + draw(10), Priority: draw(3)}}
		for j := range 1 + draw(8) {
			q.prompt = append(q.prompt, int32(10*i+j))
		}
		switch draw(4) {
		case 0:
			q.opts.BeamWidth = 2
		case 1:
			q.opts.N = 2
		}
		subs = append(subs, q)
	}
	var f a46Figures
	var trace strings.Builder
	tok := int32(1000)
	for step := 1; step <= 6 || s.Busy(); step++ {
		require.Less(t, step, 2000, "no progress")
		for _, q := range subs {
			if q.at == step {
				_, _ = s.Submit(q.prompt, q.opts) // refusals (ErrNever) are part of the grid
			}
		}
		if !s.Busy() {
			continue
		}
		st, err := s.Schedule()
		require.NoError(t, err)
		if len(st.Scheduled) == 0 && s.Busy() {
			f.EmptySteps++
		}
		fmt.Fprintf(&trace, "%d:", st.Number)
		for _, sc := range st.Scheduled {
			fmt.Fprintf(&trace, " %d/%d+%d", sc.Request.ID(), sc.Sample, sc.NewTokens)
		}
		trace.WriteByte('\n')
		a46Update(t, s, st, &tok)
	}
	ss := s.Stats()
	f.Runs, f.Steps, f.Preemptions, f.SwappedOut, f.Restarts, f.Aborted, f.Finished, f.PrefillTokens = 1, ss.Steps, ss.Preemptions, ss.SwappedOut, ss.Restarts, ss.Aborted, ss.Finished, ss.PrefillTokens
	return f, trace.String()
}

// TestAudit46Grid runs a grid of workloads (FCFS and Priority, AdmitFirst
// and AdmitAfterPreemption on and off, recompute and swap, three layouts,
// pools of 8 to 20 blocks, 5 workloads of 6 requests with beams and
// samples arriving over the first steps: 1,680 runs) and checks that no
// step with work schedules nothing (the two audit 46 defects made such
// steps). It logs the grid's figures (docs/testing.md, audit 46).
func TestAudit46Grid(t *testing.T) {
	if p := os.Getenv("A46DUMP"); p != "" {
		a46Dump, _ = os.Create(p)
	}
	var sum a46Figures
	var traces strings.Builder
	layouts := [][]paged.Group{nil, {{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}, {{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}}
	for k := range 2 * 2 * 2 * 2 {
		cfg := sched.Config{Policy: sched.Policy(k & 1), AdmitFirst: k&2 != 0, AdmitAfterPreemption: k&4 != 0, MaxRunning: 4}
		for li, layout := range layouts {
			for nb := 8; nb <= 20; nb += 2 {
				mcfg := paged.Config{BlockSize: 2, NumBlocks: nb, Groups: layout, DisableOffload: layout != nil}
				if k&8 != 0 {
					cfg.Preemption, mcfg.HostBlocks = sched.Swap, 8
				}
				for seed := range uint64(5) {
					f, tr := a46GridRun(t, mcfg, cfg, seed)
					if f.EmptySteps > 0 {
						t.Errorf("config %d, layout %d, %d blocks, workload %d: %d steps with work scheduled nothing", k, li, nb, seed, f.EmptySteps)
					}
					sum.Runs++
					sum.Steps += f.Steps
					sum.EmptySteps += f.EmptySteps
					sum.Preemptions += f.Preemptions
					sum.SwappedOut += f.SwappedOut
					sum.Restarts += f.Restarts
					sum.Aborted += f.Aborted
					sum.Finished += f.Finished
					sum.PrefillTokens += f.PrefillTokens
					traces.WriteString(tr)
					if a46Dump != nil {
						fmt.Fprintf(a46Dump, "%d %d %d %d %d %d %d %d %d\n", k, li, nb, seed, f.Steps, f.Preemptions, f.PrefillTokens, f.EmptySteps, f.SwappedOut)
					}
				}
			}
		}
	}
	t.Logf("grid: %+v; traces %x", sum, sha256.Sum256([]byte(traces.String())))
}

// a46Update ends a step of s: every output a fresh token after tok, then
// the manager's invariants.
func a46Update(t testing.TB, s *sched.Scheduler, st *sched.Step, tok *int32) {
	t.Helper()
	out := make([]int32, st.Outputs)
	for i := range out {
		*tok++
		out[i] = *tok
	}
	require.NoError(t, s.Update(out))
	require.NoError(t, s.Manager().Check())
}

// TestAudit46SwapInLeavesTheForksPages: a swap-in took the state pages
// set aside for the forks of a prompt admitted in the same step (forkRoom
// holds admissions to them, swapIn did not look), so the step's fork
// check (forkVictims) preempted it again, by recompute since it arrived
// in the step: its KV brought back from the host was lost and computed
// again. Blocks of 4, full attention and a State group of one page, 4
// usable blocks, Priority, Swap: request 1 (priority 1) is swapped out
// at step 3 by request 2's growth; at step 4 request 3 (priority 0, 2
// samples) is admitted and request 1, next in the queue, fits beside it
// only in the page its fork needs. Now request 1 waits for the fork and
// is swapped in later (step 7), nothing computed twice.
func TestAudit46SwapInLeavesTheForksPages(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 8, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	var step int
	var admitted []uint64
	s, err := sched.New(m, a46InStepCheck(t, sched.Config{Policy: sched.Priority, Preemption: sched.Swap}, &step, &admitted))
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 6, Priority: 1})
	require.NoError(t, err)
	tok := int32(100)
	for step = 1; s.Busy(); step++ {
		require.Less(t, step, 100, "no progress")
		switch step {
		case 2:
			_, err = s.Submit([]int32{11, 12, 13, 14}, sched.Options{MaxTokens: 2})
			require.NoError(t, err)
		case 4:
			_, err = s.Submit([]int32{21, 22, 23, 24}, sched.Options{MaxTokens: 2, N: 2})
			require.NoError(t, err)
		}
		admitted = admitted[:0]
		st, err := s.Schedule()
		require.NoError(t, err)
		a46Update(t, s, st, &tok)
	}
	require.Equal(t, sched.Finished, a.State())
	st := s.Stats()
	// Request 1 swapped out at step 3, request 3's sample 1 at step 5:
	// no recompute.
	require.EqualValues(t, 2, st.Preemptions)
	require.EqualValues(t, 2, st.SwappedOut)
	require.EqualValues(t, 2+4+4, st.PrefillTokens, "each prompt computed once")
}

// TestAudit46DraftsGiveWayToForks: the step's fork check (forkVictims)
// preempted victims for the state pages of the forks its completing
// prompts make, while drafts of the step held pages: drafts give way
// before any sequence is preempted in the decode phase, not there. Blocks
// of 4, full attention and a State group of one page, 5 usable blocks,
// Priority, Swap. Request 2 (priority 1) is swapped out at step 2 by
// request 1's growth; at step 3 request 3 (priority 0, 2 samples) is
// admitted, and request 2 is swapped in beside it with the page set
// aside for the fork to spare, then takes it for the state of its
// proposed draft. The fork check preempted request 2, by recompute since
// it arrived in the step (its prompt and outputs computed again at step
// 5); now the draft is dropped instead.
func TestAudit46DraftsGiveWayToForks(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 6, HostBlocks: 8, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	var step int
	var admitted []uint64
	s, err := sched.New(m, a46InStepCheck(t, sched.Config{Policy: sched.Priority, Preemption: sched.Swap, MaxDrafts: 2}, &step, &admitted))
	require.NoError(t, err)
	_, err = s.Submit([]int32{11, 12, 13, 14, 15, 16, 17, 18}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{1}, sched.Options{MaxTokens: 6, Priority: 1})
	require.NoError(t, err)
	tok := int32(100)
	drafted := false
	for step = 1; s.Busy(); step++ {
		require.Less(t, step, 100, "no progress")
		if step == 3 {
			_, err = s.Submit([]int32{21, 22, 23, 24}, sched.Options{MaxTokens: 2, N: 2})
			require.NoError(t, err)
			require.NoError(t, s.Propose(b, 0, []int32{7}))
		}
		admitted = admitted[:0]
		st, err := s.Schedule()
		require.NoError(t, err)
		drafted = drafted || st.Drafts > 0
		out := make([]int32, st.Outputs)
		for i := range out {
			tok++
			out[i] = tok
		}
		require.NoError(t, s.UpdateSpeculative(out, make([]int, len(st.Scheduled)), nil))
		require.NoError(t, m.Check())
	}
	require.Equal(t, sched.Finished, b.State())
	st := s.Stats()
	require.EqualValues(t, 8+1+4, st.PrefillTokens, "each prompt computed once")
	require.Zero(t, st.ResumedTokens)
	require.EqualValues(t, 1, st.DraftsDropped, "the draft gave way")
	require.False(t, drafted, "the step verifies no draft")
}

// a46InStepCheck is cfg with hooks that record the requests admitted (or
// swapped in) in the step being scheduled, which admitted lists (the
// caller clears it before each Schedule), and fail the test when one of
// them is preempted in it (at the caller's step).
func a46InStepCheck(t *testing.T, cfg sched.Config, step *int, admitted *[]uint64) sched.Config {
	cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
		if sc.Admitted {
			*admitted = append(*admitted, sc.Request.ID())
		}
	}
	cfg.Hooks.Preempted = func(r *sched.Request, i int, swapped bool) {
		if slices.Contains(*admitted, r.ID()) {
			t.Fatalf("step %d: request %d sample %d preempted (swapped %v) in the step that swapped it in", *step, r.ID(), i, swapped)
		}
	}
	return cfg
}
