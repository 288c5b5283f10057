package sched_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

var hostileInts = []int{-1, 0, 1, 2, 3, 5, math.MaxInt, math.MinInt, math.MaxInt32, min(math.MaxInt32+1, math.MaxInt), min(1<<40, math.MaxInt)}

func hi(r *rand.Rand) int { return hostileInts[r.IntN(len(hostileInts))] }

func hostileTokens(r *rand.Rand, n int) []int32 {
	if n < 0 {
		return nil
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.IntN(5))
		if r.IntN(30) == 0 {
			out[i] = []int32{-1, math.MinInt32, math.MaxInt32}[r.IntN(3)]
		}
	}
	return out
}

// TestAudit35HostileCalls drives schedulers (speculative decoding, beams,
// N samples, swap, chunked prefill) with random calls, many of them
// hostile: wrong counts, out-of-range samples and accepted counts, negative
// tokens, nil, foreign and zero Requests, calls out of order. No call may
// panic, every error wraps a sentinel, a refused call leaves the view
// (stats, load, queues, manager stats) as it was, DraftRoom's refusal
// means Propose refuses drafts too, and the manager checks after each call.
func TestAudit35HostileCalls(t *testing.T) {
	for seed := uint64(0); seed < 3000; seed++ {
		audit35Seed(t, seed)
		if t.Failed() {
			return
		}
	}
}

func audit35Seed(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 10 + r.IntN(30), HostBlocks: r.IntN(20)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sched.Config{MaxRunning: 1 + r.IntN(6), MaxBatchTokens: r.IntN(20), ChunkedPrefill: r.IntN(2) == 0, MaxDrafts: r.IntN(4), Policy: sched.Policy(r.IntN(2))}
	if m.Config().HostBlocks > 0 && r.IntN(2) == 0 {
		cfg.Preemption = sched.Swap
	}
	s, err := sched.New(m, cfg)
	if err != nil {
		return
	}
	other, _ := sched.New(m, sched.Config{MaxDrafts: 2})
	var reqs []*sched.Request
	if or, err := other.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 3}); err == nil {
		reqs = append(reqs, or)
	}
	reqs = append(reqs, nil, &sched.Request{})
	var st *sched.Step
	defer func() {
		if e := recover(); e != nil {
			t.Fatalf("seed %d: panic %v\n%s", seed, e, debug.Stack())
		}
	}()
	for it := 0; it < 200; it++ {
		before := viewOf(s)
		var err error
		name := ""
		switch r.IntN(10) {
		case 0:
			name = "Submit"
			o := sched.Options{MaxTokens: 1 + r.IntN(6), N: r.IntN(3), Priority: r.IntN(3)}
			if r.IntN(5) == 0 {
				o.BeamWidth, o.N = 2, 0
			}
			if r.IntN(10) == 0 {
				o.MaxTokens = hi(r)
			}
			var rq *sched.Request
			rq, err = s.Submit(hostileTokens(r, r.IntN(12)), o)
			if err == nil {
				reqs = append(reqs, rq)
			}
		case 1, 2:
			name = "Schedule"
			var s2 *sched.Step
			s2, err = s.Schedule()
			if err == nil {
				st = s2
			}
		case 3, 4:
			name = "Update"
			if st == nil {
				err = s.Update(hostileTokens(r, r.IntN(3)))
				break
			}
			n := st.Outputs
			if r.IntN(8) == 0 {
				n += r.IntN(3) - 1
			}
			toks := hostileTokens(r, n)
			if st.Drafts > 0 || r.IntN(6) == 0 {
				acc := make([]int, len(st.Scheduled))
				for i, sc := range st.Scheduled {
					acc[i] = r.IntN(len(sc.Drafts) + 1)
					if r.IntN(20) == 0 {
						acc[i] = hi(r)
					}
				}
				if r.IntN(15) == 0 {
					acc = acc[:len(acc)/2]
				}
				var parents []int
				if r.IntN(4) == 0 {
					parents = make([]int, max(n, 0))
					for i := range parents {
						parents[i] = r.IntN(3) - 1
					}
				}
				name = "UpdateSpeculative"
				err = s.UpdateSpeculative(toks, acc, parents)
			} else if r.IntN(3) == 0 {
				parents := make([]int, max(n, 0))
				for i := range parents {
					parents[i] = r.IntN(3) - 1
				}
				name = "UpdateBeams"
				err = s.UpdateBeams(toks, parents)
			} else {
				err = s.Update(toks)
			}
			if err == nil {
				st = nil
			}
		case 5, 6:
			name = "Propose"
			// Mostly the newest own requests, sample 0, so that
			// proposals succeed and hostile ones follow them.
			rq := reqs[r.IntN(len(reqs))]
			if r.IntN(4) != 0 {
				rq = reqs[max(len(reqs)-1-r.IntN(3), 0)]
			}
			smp := r.IntN(3)
			if r.IntN(2) == 0 {
				smp = 0
			}
			if r.IntN(5) == 0 {
				smp = hi(r)
			}
			room, derr := s.DraftRoom(rq, smp)
			if derr != nil && viewOf(s) != before {
				t.Fatalf("seed %d it %d: DraftRoom error %v changed the view", seed, it, derr)
			}
			n := r.IntN(5)
			if derr == nil && room < 0 {
				t.Fatalf("seed %d: negative room %d", seed, room)
			}
			err = s.Propose(rq, smp, hostileTokens(r, n))
			if derr != nil && err == nil && n > 0 {
				t.Errorf("seed %d it %d: DraftRoom failed (%v) but Propose of %d took them", seed, it, derr, n)
			}
		case 7:
			name = "Cancel"
			rq := reqs[r.IntN(len(reqs))]
			err = s.Cancel(rq)
		case 8:
			name = "BuildBatch"
			var b paged.Batch
			if r.IntN(4) == 0 {
				b.Stride = hi(r)
			}
			err = s.BuildBatch(&b)
		case 9:
			name = "accessors"
			rq := reqs[r.IntN(len(reqs))]
			if rq != nil {
				i := hi(r)
				_ = rq.Outputs(i)
				_ = rq.Seq(i)
				_ = rq.Err()
				_ = rq.State()
				_, _ = rq.Cached(), rq.Samples()
			}
			s.Next()
			s.Load()
			s.RunningSeqs(func(*sched.Request, int, paged.SeqID, int) {})
		}
		if err != nil {
			known := errors.Is(err, sched.ErrInvalid) || errors.Is(err, sched.ErrForeign) || errors.Is(err, sched.ErrDone) || errors.Is(err, sched.ErrNever) || errors.Is(err, paged.ErrNoSpace)
			if !known {
				t.Errorf("seed %d it %d %s: unknown error %v", seed, it, name, err)
			}
			if after := viewOf(s); after != before {
				t.Fatalf("seed %d it %d %s: error %v changed the view\nbefore %+v\nafter  %+v", seed, it, name, err, before, after)
			}
		}
		if cerr := m.Check(); cerr != nil {
			t.Fatalf("seed %d it %d %s: %v", seed, it, name, cerr)
		}
	}
}
