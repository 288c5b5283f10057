package sched

import "errors"

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
	// once; when only running tells (KV cache groups, beams, a watermark),
	// Schedule aborts the request and Request.Err and Hooks.Aborted carry
	// it, while Schedule itself returns no error.
	ErrNever = errors.New("sched: request can never run")
	// ErrDone: the request has already finished, been cancelled or been
	// aborted.
	ErrDone = errors.New("sched: request already done")
	// ErrForeign: the request belongs to another scheduler.
	ErrForeign = errors.New("sched: request of another scheduler")
)
