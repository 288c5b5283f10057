package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// W1's manager time is measured on the manager alone, as the reference
// replay measures vLLM's (a timer around each manager call, nothing else):
// the replay through the scheduler records every manager call the
// scheduler makes, in order, and a second manager is then given exactly
// those calls by a loop that does nothing else, its phases timed as the
// scheduler's are. Each call must answer as it did the first time and the
// two managers must end with equal statistics, so the calls timed are the
// calls W1 makes.

// w1OpKind is one manager call of a step, or a phase boundary.
type w1OpKind uint8

const (
	opDecode     w1OpKind = iota // phase: decode
	opAppend                     // Append(req, arg) succeeds
	opAppendFull                 // Append(req, arg) fails with ErrNoSpace
	opPreempt                    // Preempt(req)
	opAppendWait                 // Append(req, arg) to a preempted request
	opAdmitPhase                 // phase: admission
	opAdmit                      // Admit(req) succeeds with arg cached tokens
	opAdmitFull                  // Admit(req) fails with ErrNoSpace
	opTake                       // TakeCheckpoints and TakeCopies; admission ends
	opOutput                     // phase: output (after EndStep: the step ran)
	opFree                       // Free(req)
	opDone                       // phase ends
)

// w1Op is 8 bytes, the kind in the top byte of kr and the request's index
// in the rest: W1 records about a million calls, which the timed replay
// reads as a stream, so a smaller record leaves more of the caches to the
// manager.
type w1Op struct {
	arg int32
	kr  uint32
}

// w1MaxRequests bounds the requests a recording can name.
const w1MaxRequests = 1 << 24

func (op w1Op) kind() w1OpKind { return w1OpKind(op.kr >> 24) }

func (op w1Op) req() int32 { return int32(op.kr & (w1MaxRequests - 1)) }

func (op *w1Op) setKind(k w1OpKind) { op.kr = uint32(k)<<24 | op.kr&(w1MaxRequests-1) }

// w1Recorder rebuilds the manager calls of sched.Scheduler's step from its
// hooks. With W1's configuration (FCFS, one sample, no token budget, no
// chunked prefill, recompute preemption of the newest, admission after a
// preemption) the step is: each running request, in admission order,
// appends its pending token; an append that fails preempts the newest
// running request (which keeps its pending token, appended to its waiting
// sequence) and is retried, unless the request preempted itself; then the
// head of the waiting queue is admitted while the running limit allows,
// until an Admit fails; the step's checkpoints and copies are taken;
// Update ends the step (EndStep) and frees the finished requests. The replay
// checks every answer, so a step that differs from this fails loudly
// instead of timing other calls. A nil recorder records nothing.
type w1Recorder struct {
	ops  []w1Op
	reqs []*sched.Request
	// run mirrors the scheduler's running list (request indices in
	// admission order) and next is the first of it not yet decoded in the
	// step.
	run  []int32
	next int
	err  error
}

// pending is the token request i was given last, and appends next, when
// it has k outputs: the driver makes output k of request i as
// (i*31+k)%32000+1.
func pending(i int32, k int) int32 { return int32((int(i)*31+k-1)%32000 + 1) }

// pendingOf is pending for request i as the scheduler has it now.
func (r *w1Recorder) pendingOf(i int32) int32 { return pending(i, r.reqs[i].Outputs(0)) }

func (r *w1Recorder) add(kind w1OpKind, req, arg int32) {
	if r == nil {
		return
	}
	r.ops = append(r.ops, w1Op{arg: arg, kr: uint32(kind)<<24 | uint32(req)})
}

func (r *w1Recorder) phase(p sched.Phase) {
	if r == nil {
		return
	}
	switch p {
	case sched.PhaseDecode:
		r.next = 0
		r.add(opDecode, 0, 0)
	case sched.PhaseAdmit:
		r.add(opAdmitPhase, 0, 0)
	case sched.PhaseOutput:
		r.add(opOutput, 0, 0)
	case sched.PhaseDone:
		r.add(opDone, 0, 0)
	}
}

// scheduled records the Append or Admit that scheduled request i.
func (r *w1Recorder) scheduled(sc *sched.Scheduled) {
	if r == nil {
		return
	}
	i := int32(sc.Request.ID() - 1)
	if sc.Admitted {
		r.add(opAdmit, i, int32(sc.Cached))
		r.run = append(r.run, i)
		return
	}
	if r.next >= len(r.run) || r.run[r.next] != i {
		r.fail("request %d decoded out of admission order", i)
		return
	}
	r.add(opAppend, i, pending(i, sc.Generated))
	r.next++
}

// preempted records the failed Append that forced the preemption of
// request i, the preemption and the pending token kept.
func (r *w1Recorder) preempted(i int32) {
	if r == nil {
		return
	}
	if r.next >= len(r.run) || r.run[len(r.run)-1] != i {
		r.fail("request %d preempted while not the newest running", i)
		return
	}
	cur := r.run[r.next]
	r.add(opAppendFull, cur, r.pendingOf(cur))
	r.add(opPreempt, i, 0)
	r.add(opAppendWait, i, r.pendingOf(i))
	r.run = r.run[:len(r.run)-1]
}

// scheduledEnd records the Admit that ended admission, if one did: the
// head still waits and the running limit did not stop it.
func (r *w1Recorder) scheduledEnd(s *sched.Scheduler, maxRunning int) {
	if r == nil {
		return
	}
	if h, _, ok := s.Next(); ok && s.Running() < maxRunning {
		r.add(opAdmitFull, int32(h.ID()-1), 0)
	}
}

func (r *w1Recorder) finished(i int32) {
	if r == nil {
		return
	}
	r.add(opFree, i, 0)
	for k, j := range r.run {
		if j == i {
			r.run = append(r.run[:k], r.run[k+1:]...)
			if k < r.next {
				r.next--
			}
			return
		}
	}
	r.fail("finished request %d was not running", i)
}

func (r *w1Recorder) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("bench: W1 replay: "+format, args...)
	}
}

// w1Tamper, set by tests, changes the recording before the replay.
var w1Tamper func(ops []w1Op)

// w1Replays, set by benchmarks, is given a function that replays the
// recording on a new manager, for timing the manager alone.
var w1Replays func(replay func() (W1Result, error))

// replayW1 gives a new manager of mcfg the recorded calls and fills res's
// manager timings. want is the first manager's final statistics; st the
// scheduler's, whose call counts the recording must match.
func replayW1(mcfg paged.Config, cfg W1Config, trace []Request, rec *w1Recorder, want paged.Stats, st sched.Stats, res *W1Result) error {
	if rec.err != nil {
		return rec.err
	}
	if w1Tamper != nil {
		w1Tamper(rec.ops)
	}
	var appends, admits int64
	for _, op := range rec.ops {
		switch op.kind() {
		case opAppend, opAppendFull:
			appends++
		case opAdmit, opAdmitFull:
			admits++
		}
	}
	if appends != st.AppendCalls || admits != st.AdmitCalls {
		return fmt.Errorf("bench: W1 replay: recorded %d appends and %d admits, the scheduler made %d and %d", appends, admits, st.AppendCalls, st.AdmitCalls)
	}
	m, err := paged.New(mcfg)
	if err != nil {
		return err
	}
	ids := make([]paged.SeqID, cfg.Requests)
	for i := range ids {
		// Each prompt is made in its own slice with room for the
		// request's outputs, outside the timed call, and handed over
		// (AddOwned): the manager keeps it instead of copying it. The
		// reference driver likewise makes each prompt's list before the
		// timed Request, which keeps that list but also copies it (its
		// token list), a copy this timed call does not make. The
		// scheduler's Submit, in the replay through the scheduler, copies
		// (Add).
		ctx, gen := w1Lens(trace, i, cfg.MaxModelLen)
		prompt, _ := w1Prompt(make([]int32, 0, ctx+gen), trace, i, cfg.MaxModelLen)
		kv := len(prompt) + gen - 1
		t0 := time.Now()
		if len(mcfg.Groups) <= 1 {
			m.CanAdmitTokens(kv) // Submit's check
		}
		id, err := m.AddOwned(prompt, &paged.SeqOptions{MaxTokens: len(prompt) + gen})
		res.NsInit += int64(time.Since(t0))
		if err != nil {
			return fmt.Errorf("bench: W1 replay: request %d: %w", i, err)
		}
		ids[i] = id
	}
	var copies []paged.Copy
	var ckpts []paged.Checkpoint
	var t time.Time
	ops := rec.ops
	for k := 0; k < len(ops); k++ {
		// The decode appends, most of the calls, come in runs (a step's
		// running requests), each given by appendRun: the loop runs
		// inside the timed phases, so its own cost is kept small.
		var ok bool
		if k, ok = appendRun(m, ids, ops, k); !ok {
			return errReplayCall(k, ops[k])
		}
		if k == len(ops) {
			break
		}
		op := ops[k]
		id := ids[op.req()]
		bad := false
		switch op.kind() {
		case opAppendWait:
			bad = m.Append(id, op.arg) != nil
		case opAppendFull:
			bad = !errors.Is(m.Append(id, op.arg), paged.ErrNoSpace)
		case opPreempt:
			bad = m.Preempt(id) != nil
		case opAdmit:
			cached, err := m.Admit(id)
			bad = err != nil || cached != int(op.arg)
		case opAdmitFull:
			_, err := m.Admit(id)
			bad = !errors.Is(err, paged.ErrNoSpace)
		case opFree:
			bad = m.Free(id) != nil
		case opDecode:
			t = time.Now()
		case opOutput:
			// The step ran: sched's Update tells the manager so
			// (EndStep) before its output phase. Taking the copies
			// ended the step too, but this second call is not idle:
			// the pages of a checkpoint handed out in the step stay
			// held until the manager's step count passes the step
			// (with a State group, the next admissions would find
			// them held).
			t = time.Now()
			m.EndStep()
		case opAdmitPhase:
			now := time.Now()
			res.NsAllocDecode += int64(now.Sub(t))
			t = now
		case opTake:
			// In the order the replay through the scheduler takes
			// them: Schedule takes the checkpoints, the driver then
			// the copies (and no checkpoint is left).
			ckpts = m.TakeCheckpoints(ckpts[:0])
			copies = m.TakeCopies(copies[:0])
			res.NsAdmit += int64(time.Since(t))
		case opDone:
			res.NsFree += int64(time.Since(t))
		}
		if bad {
			return errReplayCall(k, op)
		}
	}
	if got := m.Stats(); got != want {
		return fmt.Errorf("bench: W1 replay: the manager ends with %+v, the scheduler's with %+v", got, want)
	}
	return nil
}

// appendRun gives m the successful decode appends (opAppend) of ops from
// k on and returns the index of the first other call (len(ops) if none),
// or, with false, that of an append that failed. It is a function of its
// own, not inlined, so that across each Append only its few values are
// live: in replayW1's loop, which keeps the replay's other values
// (the directives' buffers, the phase's start, ...) in registers, the
// compiler stored eight of them before each call and loaded them again
// after it (Go's calls preserve no register), about twenty instructions
// of the replay's own inside the timed phases for each append.
//
//go:noinline
func appendRun(m *paged.Manager, ids []paged.SeqID, ops []w1Op, k int) (int, bool) {
	for ; k < len(ops); k++ {
		op := ops[k]
		if op.kind() != opAppend {
			break
		}
		if m.Append(ids[op.req()], op.arg) != nil {
			return k, false
		}
	}
	return k, true
}

// errReplayCall reports that call k of the recording answered otherwise
// in the replay.
func errReplayCall(k int, op w1Op) error {
	return fmt.Errorf("bench: W1 replay: call %d (kind %d, request %d) answered otherwise than through the scheduler", k, op.kind(), op.req())
}
