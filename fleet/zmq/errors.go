package zmq

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (or
// the transport's own error) with context; branch on them with errors.Is.
var (
	// ErrInvalid: a configuration field is missing or out of range.
	ErrInvalid = errors.New("zmq: invalid argument")
	// ErrMalformed: a message does not have vLLM's framing (three frames,
	// an 8-byte sequence number). The message is skipped.
	ErrMalformed = errors.New("zmq: malformed message")
	// ErrClosed: the publisher or subscriber was closed.
	ErrClosed = errors.New("zmq: closed")
)
