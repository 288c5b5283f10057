package main

import (
	"context"
	"maps"
	"sync/atomic"
	"time"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Scheduler configures the step loop and its manager.
	Scheduler SchedulerConfig
	// StepTime is the fake model's latency per step: the loop waits this
	// long after each step, answering calls meanwhile. 0: no wait.
	StepTime time.Duration
	// MaxSteps stops the loop after this many steps. 0: no limit.
	MaxSteps uint64
	// Manual turns the loop's own stepping off: steps run only through
	// Step. Tests use it to stay deterministic.
	Manual bool
	// HTTP configures Handler.
	HTTP HTTPConfig
}

// Server runs a Scheduler on one goroutine (Run) and lets any number of
// goroutines talk to it over a channel: each method sends a function that
// the loop runs between steps, and waits for it. Only the loop's goroutine
// ever touches the Scheduler and its paged.Manager, which therefore need
// no lock; a caller waits at most one step.
type Server struct {
	cfg     ServerConfig
	ran     atomic.Bool // set by the first Run
	sched   *Scheduler
	calls   chan func(*Scheduler)
	stopped chan struct{}
	final   Snapshot // written by Run before it closes stopped

	// rejected counts the submissions refused before they reached the
	// scheduler (by the HTTP layer, or because the loop had stopped);
	// Stats adds them to the scheduler's own.
	rejected [numReasons]atomic.Uint64
	// bodies holds one token per submission body being read (see
	// HTTPConfig.MaxConcurrentBodies).
	bodies chan struct{}
}

// NewServer returns a server whose loop is not running yet; call Run.
func NewServer(cfg ServerConfig) (*Server, error) {
	sc, err := NewScheduler(cfg.Scheduler)
	if err != nil {
		return nil, err
	}
	h, err := cfg.HTTP.withDefaults(sc.m.Config().MaxModelLen)
	if err != nil {
		return nil, err
	}
	cfg.HTTP = h
	return &Server{cfg: cfg, sched: sc, calls: make(chan func(*Scheduler)), stopped: make(chan struct{}),
		bodies: make(chan struct{}, h.MaxConcurrentBodies)}, nil
}

// Run is the step loop. It owns the scheduler until it returns, when ctx
// is done or after MaxSteps steps; later calls fail with ErrClosed, except
// Stats, which then returns the final statistics. A server runs one loop
// once: a second Run, during the first or after it, returns at once.
func (s *Server) Run(ctx context.Context) {
	if !s.ran.CompareAndSwap(false, true) {
		return
	}
	sc := s.sched
	defer func() {
		s.final = sc.Snapshot()
		close(s.stopped)
	}()
	var timer *time.Timer
	for {
		if s.cfg.Manual || !sc.Busy() {
			// Nothing to step: sleep until a call arrives.
			select {
			case <-ctx.Done():
				return
			case f := <-s.calls:
				f(sc)
			}
			if s.limitReached() {
				return
			}
			continue
		}
		// Serve the calls already queued, then step.
		for served := true; served; {
			select {
			case f := <-s.calls:
				f(sc)
			default:
				served = false
			}
		}
		if ctx.Err() != nil {
			return
		}
		sc.Step()
		if s.limitReached() {
			return
		}
		if s.cfg.StepTime <= 0 {
			continue
		}
		// The fake model's latency: keep answering calls meanwhile.
		if timer == nil {
			timer = time.NewTimer(s.cfg.StepTime)
		} else {
			timer.Reset(s.cfg.StepTime)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-s.calls:
				f(sc)
			case <-timer.C:
				break wait
			}
		}
	}
}

func (s *Server) limitReached() bool {
	return s.cfg.MaxSteps > 0 && s.sched.c.steps >= s.cfg.MaxSteps
}

// do runs f on the loop's goroutine and waits for it. The loop runs every
// function it receives at once, so once sent, f completes.
func (s *Server) do(ctx context.Context, f func(*Scheduler)) error {
	done := make(chan struct{})
	select {
	case s.calls <- func(sc *Scheduler) { defer close(done); f(sc) }:
	case <-s.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// Submit queues a request and returns its status as of the submission,
// with its cancel token: the only copy the server hands out.
func (s *Server) Submit(ctx context.Context, spec Spec) (st Status, err error) {
	e := s.do(ctx, func(sc *Scheduler) {
		var t Ticket
		if t, err = sc.Submit(spec); err == nil {
			st, err = sc.Status(t.ID)
			st.CancelToken = t.CancelToken
		}
	})
	if e == ErrClosed {
		s.reject(ReasonClosed)
	}
	if e != nil {
		return Status{}, e
	}
	return st, err
}

// reject counts a submission refused outside the scheduler.
func (s *Server) reject(r Reason) { s.rejected[r].Add(1) }

// Cancel ends a request, frees its blocks and returns its final status;
// token must be the cancel token Submit returned.
func (s *Server) Cancel(ctx context.Context, id ReqID, token string) (st Status, err error) {
	e := s.do(ctx, func(sc *Scheduler) {
		if err = sc.Cancel(id, token); err == nil {
			st, err = sc.Status(id)
		}
	})
	if e != nil {
		return Status{}, e
	}
	return st, err
}

// Status describes a request.
func (s *Server) Status(ctx context.Context, id ReqID) (st Status, err error) {
	if e := s.do(ctx, func(sc *Scheduler) { st, err = sc.Status(id) }); e != nil {
		return Status{}, e
	}
	return st, err
}

// Stats returns the current statistics, or the final ones once Run has
// returned; the rejections of the HTTP layer are included either way.
func (s *Server) Stats(ctx context.Context) (Snapshot, error) {
	var sn Snapshot
	err := s.do(ctx, func(sc *Scheduler) { sn = sc.Snapshot() })
	switch err {
	case ErrClosed:
		sn = s.final
		// The final snapshot is shared; the counts added below are not.
		sn.Requests.RejectedBy = maps.Clone(sn.Requests.RejectedBy)
	case nil:
	default:
		return Snapshot{}, err
	}
	for r := range s.rejected {
		sn.Requests.addRejected(Reason(r), s.rejected[r].Load())
	}
	return sn, nil
}

// Step runs n steps now, for servers in Manual mode: fewer if the
// scheduler runs dry or MaxSteps is reached (the loop then stops, as a
// stepping one does).
func (s *Server) Step(ctx context.Context, n int) error {
	return s.do(ctx, func(sc *Scheduler) {
		for range n {
			if s.limitReached() || !sc.Step() {
				return
			}
		}
	})
}

// Idle waits until no request is waiting or running.
func (s *Server) Idle(ctx context.Context) error {
	var ch <-chan struct{}
	if err := s.do(ctx, func(sc *Scheduler) { ch = sc.IdleChan() }); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-s.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (s *Server) Done() <-chan struct{} { return s.stopped }
