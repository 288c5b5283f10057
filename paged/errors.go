package paged

import "errors"

// Sentinel errors. Every error the manager returns wraps one of these with
// context; branch on them with errors.Is. An operation that returns an error
// has changed nothing.
var (
	// ErrInvalid: an argument or configuration field is out of range.
	ErrInvalid = errors.New("paged: invalid argument")
	// ErrNoSpace: not enough blocks now; the request may fit later, after
	// other sequences finish or are preempted ("later").
	ErrNoSpace = errors.New("paged: not enough free blocks")
	// ErrNever: the request can never fit in this pool ("never").
	ErrNever = errors.New("paged: request can never fit")
	// ErrUnknownSequence: the SeqID was never issued or its sequence was
	// freed.
	ErrUnknownSequence = errors.New("paged: unknown or freed sequence")
	// ErrSequenceState: the sequence exists but is not in a state that
	// allows the operation (for example appending to a preempted sequence's
	// blocks, or admitting a running one).
	ErrSequenceState = errors.New("paged: sequence in wrong state")
	// ErrCacheInUse: the cache cannot be reset while sequences hold blocks.
	ErrCacheInUse = errors.New("paged: cache in use")
)
