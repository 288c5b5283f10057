package sched

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the scheduler returns wraps one of these
// (or, for a broken manager, the manager's own) with context; branch on
// them with errors.Is. A call that returns an error has changed nothing.
var (
	// ErrInvalid: an argument or configuration field is out of range, or a
	// call is out of order (Update without a scheduled step).
	ErrInvalid = errors.New("sched: invalid argument")
	// ErrNever: the request can never run here: it is longer than the
	// manager's MaxModelLen, its longest sequence needs more blocks than the
	// pool has, or it needs more tokens in one step than MaxBatchTokens
	// allows without chunked prefill. Submit returns it when it can tell at
	// once (Scheduler.Submit); when only running tells (blocks held beside
	// the scheduler, beams, the cache a window or chunked-local group
	// meets), Schedule aborts the request and Request.Err and
	// Hooks.Aborted carry it, while Schedule itself returns no error.
	ErrNever = errors.New("sched: request can never run")
	// ErrDone: the request has already finished, been cancelled or been
	// aborted.
	ErrDone = errors.New("sched: request already done")
	// ErrForeign: the request belongs to another scheduler.
	ErrForeign = errors.New("sched: request of another scheduler")
)

// passed is a refusal of the manager that the scheduler passes on: it
// wraps both the scheduler's sentinel and the manager's error, so
// errors.Is finds either, and reads "sched: <context>: <the manager's
// error>", each package's prefix and the sentinel's words once (not
// "sched: invalid argument: paged: invalid argument: ...").
type passed struct {
	sentinel error
	context  string
	err      error
}

// pass wraps err, a manager's refusal that means sentinel to the
// scheduler's caller, with context.
func pass(sentinel, err error, format string, args ...any) error {
	return &passed{sentinel: sentinel, context: fmt.Sprintf(format, args...), err: err}
}

func (e *passed) Error() string { return "sched: " + e.context + ": " + e.err.Error() }

// Unwrap returns the scheduler's sentinel and the manager's error.
func (e *passed) Unwrap() []error { return []error{e.sentinel, e.err} }
