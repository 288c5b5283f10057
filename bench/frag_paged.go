package bench

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// simulatePaged runs the paged model of the study through sched.Scheduler
// over the library's own manager, prefix caching off (the study measures
// allocation, not reuse): the budget is KVTokens/BlockSize usable blocks,
// taken on demand. The scheduler is configured as the engine of simulate,
// so every memory model sees the same loop: strict FCFS admission first
// (AdmitFirst, with the manager's dry run), then one token for every
// request admitted earlier, preempting the newest by recompute when no
// block is left (the token it was about to write is sampled again after
// the recompute, as simulate's requests keep only their KV length); then
// the classification; then finished requests free their blocks.
//
// A trace request of p prompt tokens that ends at f tokens is a scheduler
// request of MaxTokens f-p+1: its prompt step samples a token, each
// decode writes one and samples the next, and the last one sampled never
// gets a slot, so its KV ends at f tokens.
func simulatePaged(reqs []Request, bs int, cfg FragConfig) (FragResult, error) {
	res := FragResult{Requests: len(reqs)}
	if bs < 1 || bs > cfg.KVTokens {
		return res, fmt.Errorf("%w: block size %d must be in [1, KV tokens %d]", ErrFragInvalid, bs, cfg.KVTokens)
	}
	fl, order, err := flights(reqs, cfg, &res)
	if err != nil {
		return res, err
	}
	m, err := paged.New(paged.Config{
		BlockSize:            bs,
		NumBlocks:            cfg.KVTokens/bs + 1, // block 0 is the null block
		DisablePrefixCaching: true,
		// One above the longest request: MaxTokens counts the last
		// sampled token, which never gets a slot.
		MaxModelLen: cfg.MaxLen + 1,
	})
	if err != nil {
		return res, fmt.Errorf("bench: frag: %w", err)
	}
	// Requests enter the scheduler in queue order, only as many as one
	// step could admit (studyFeed).
	feed := studyFeed{m: m, bs: bs, arrived: len(fl)}
	if cfg.Arrivals {
		feed.arrived = 0
	}
	done := 0
	var aborted error
	s, err := sched.New(m, sched.Config{
		MaxRunning:             cfg.KVTokens, // no limit: every running request holds a slot
		AdmitFirst:             true,
		ResampleAfterRecompute: true,
		CheckBeforeAdmit:       true,
		Hooks: sched.Hooks{
			Scheduled: func(sc *sched.Scheduled) {
				if sc.Admitted {
					feed.queued -= sc.Start + sc.NewTokens
				}
			},
			Preempted: func(r *sched.Request, i int, _ bool) {
				n, _ := m.Len(r.Seq(i))
				feed.queued += n
			},
			Finished: func(*sched.Request, int) { done++ },
			// A request that can never finish ends the study, as Submit's
			// refusal does: the figures are of every request.
			Aborted: func(_ *sched.Request, err error) { aborted = err },
		},
	})
	if err != nil {
		return res, fmt.Errorf("bench: frag: %w", err)
	}
	zeros := make([]int32, cfg.MaxLen) // token values are irrelevant without prefix caching
	finals := make([]int, 0, len(fl))  // by scheduler request ID - 1
	submit := func(i int) (int, error) {
		p := &fl[order[i]]
		if _, err := s.Submit(zeros[:p.prompt], sched.Options{MaxTokens: p.final - p.prompt + 1}); err != nil {
			if errors.Is(err, sched.ErrNever) {
				return 0, fmt.Errorf("%w: request %d of %d tokens in %d blocks of %d: %w", ErrNeverFits, p.index, p.final, cfg.KVTokens/bs, bs, err)
			}
			return 0, err
		}
		finals = append(finals, p.final)
		return p.prompt, nil
	}
	tokens := make([]int32, 0, 64)
	var sum fragSums
	unusable := cfg.KVTokens % bs
	for step := 0; feed.next < len(fl) || s.Busy(); step++ {
		if cfg.Arrivals {
			for feed.arrived < len(fl) && fl[order[feed.arrived]].arrival <= step {
				feed.arrived++
			}
			if !s.Busy() && feed.next == feed.arrived {
				// Idle until the next arrival: skipped, not counted.
				step = fl[order[feed.arrived]].arrival - 1
				continue
			}
		}
		if err := feed.fill(submit); err != nil {
			return res, err
		}
		st, err := s.Schedule()
		if err != nil {
			return res, fmt.Errorf("bench: frag: %w", err)
		}
		if aborted != nil {
			return res, fmt.Errorf("%w: %w", ErrNeverFits, aborted)
		}

		// Classify after decoding and before freeing: a finishing request
		// is counted at its full length once. The manager's tables are
		// what is held, not what the engine expects.
		slots := FragSlots{Step: step, Running: s.Running(), Budget: cfg.KVTokens}
		held := 0
		var ferr error
		s.RunningSeqs(func(r *sched.Request, _ int, seq paged.SeqID, n int) {
			t, err := m.Table(seq)
			if err != nil {
				ferr = err
				return
			}
			held += len(t) * bs
			slots.hold(len(t)*bs, n, finals[r.ID()-1])
		})
		if ferr != nil {
			return res, fmt.Errorf("bench: frag: %w", ferr)
		}
		free := feed.free()
		blocked := false
		if r, i, ok := s.Next(); ok {
			n, err := m.Len(r.Seq(i))
			if err != nil {
				return res, fmt.Errorf("bench: frag: %w", err)
			}
			a, err := m.CanAdmit(r.Seq(i))
			if err != nil {
				return res, fmt.Errorf("bench: frag: %w", err)
			}
			blocked = free >= (n+bs-1)/bs*bs && a != paged.AdmitOK
		}
		slots.settle(held, free, unusable, blocked)
		if cfg.OnStep != nil {
			cfg.OnStep(slots)
		}
		sum.add(slots)
		res.Steps++

		tokens = slices.Grow(tokens[:0], st.Outputs)[:st.Outputs]
		done = 0
		if err := s.Update(tokens); err != nil {
			return res, fmt.Errorf("bench: frag: %w", err)
		}
		if done > 0 && cfg.Progress != nil {
			cfg.Progress(done)
		}
	}
	if err := m.Check(); err != nil {
		return res, err
	}
	if st := m.Stats(); st.UsedBlocks != 0 || st.Sequences != 0 {
		return res, fmt.Errorf("bench: frag: %d blocks and %d sequences left after the trace drained", st.UsedBlocks, st.Sequences)
	}
	ss := s.Stats()
	res.Preemptions = int(ss.Preemptions)
	sum.decoded = ss.DecodeTokens
	sum.shares(&res, cfg.KVTokens)
	return res, nil
}

// studyFeed submits a study's requests to its scheduler in queue order,
// only as many as one step could admit: each admission takes at least its
// tokens in free slots, so a queue holding more tokens than are free is
// never emptied by one step, and the rest need not exist yet (their
// prompts would be held by the manager). The study's hooks keep queued,
// the tokens the queued sequences hold, up to date as the scheduler admits
// and preempts.
type studyFeed struct {
	m      *paged.Manager
	bs     int
	queued int
	// next is the next request to submit; arrived bounds them.
	next, arrived int
}

// free returns the token slots of the free blocks.
func (f *studyFeed) free() int {
	st := f.m.Stats()
	return (st.FreeBlocks + st.CachedBlocks) * f.bs
}

// fill submits requests next to arrived-1 while the queue holds no more
// tokens than are free; submit(i) submits request i and returns the
// tokens it queues.
func (f *studyFeed) fill(submit func(i int) (int, error)) error {
	free := f.free() // Submit takes no block
	for f.next < f.arrived && f.queued <= free {
		n, err := submit(f.next)
		if err != nil {
			return err
		}
		f.queued += n
		f.next++
	}
	return nil
}
