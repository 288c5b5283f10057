package paged

import (
	"errors"
	"fmt"
)

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
	// ErrCacheInUse: the cache cannot be reset while sequences or pins hold
	// blocks.
	ErrCacheInUse = errors.New("paged: cache in use")
	// ErrUncomputed: the operation needs KV that the step being built
	// has not computed yet. SwapOut returns it for a sequence admitted
	// or swapped in since the step's directives were last taken (see
	// Manager.SwapOut): preempt it by recompute (Preempt, or Unadmit to
	// take back its admission) instead.
	ErrUncomputed = errors.New("paged: KV not computed yet")
)

// spaceError is an ErrNoSpace from Admit or Append, formatted only when
// its message is read: a scheduler under memory pressure is refused
// thousands of times and branches on errors.Is alone, so building each
// message up front would cost more than the refusal itself. It is kept to
// 32 bytes (TestSpaceErrorSize), so that a slab of them (noSpace) is
// small: W1-H's replay is refused about 8,000 times, and in a fresh
// process every 4 KB of them is a page fault inside Admit.
type spaceError struct {
	id   SeqID
	need int
	// avail and watermark are at most the pool's blocks (MaxBlocks).
	avail, watermark int32
	op               spaceOp
}

// spaceOp names the call a spaceError refused.
type spaceOp uint8

const (
	opAdmit spaceOp = iota
	opAppend
	opFork
)

var spaceOps = [...]string{opAdmit: "Admit", opAppend: "Append to", opFork: "Fork"}

// noSpace returns the ErrNoSpace of op on id. The errors are taken from
// a slab of refusalSlab of them, made when the last is used up, rather
// than allocated one by one: each is a distinct value that no later
// refusal changes (a caller may keep it), and a slab lives as long as
// any of its errors does, at most refusalSlab-1 more than are kept. A
// scheduler under memory pressure is refused once a step or more (W1-H's
// replay about 8,000 times), and one allocation a refusal was most of
// the refusal's cost beside its lookup.
func (m *Manager) noSpace(op spaceOp, id SeqID, need, avail, watermark int) *spaceError {
	if len(m.refusals) == 0 {
		m.refusals = make([]spaceError, refusalSlab)
	}
	e := &m.refusals[0]
	m.refusals = m.refusals[1:]
	*e = spaceError{id: id, need: need, avail: int32(avail), watermark: int32(watermark), op: op}
	return e
}

// refusalSlab is how many refusals' errors one allocation makes: 64 of
// 32 bytes, the heap's 2,048-byte size class.
const refusalSlab = 64

func (e *spaceError) Error() string {
	msg := fmt.Sprintf("%v: %s %v: needs %d blocks, %d available", ErrNoSpace, spaceOps[e.op], e.id, e.need, e.avail)
	if e.watermark > 0 {
		msg += fmt.Sprintf(" (watermark %d)", e.watermark)
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrNoSpace) true.
func (e *spaceError) Unwrap() error { return ErrNoSpace }
