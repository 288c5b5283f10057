package kvevents

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these with
// context; branch on them with errors.Is.
var (
	// ErrMalformed: a KV event frame does not follow vLLM's schema. The
	// whole frame is rejected; nothing of it is returned.
	ErrMalformed = errors.New("kvevents: malformed kv event frame")
	// ErrInvalid: an argument or configuration field is out of range, or
	// an event cannot be expressed in vLLM's schema.
	ErrInvalid = errors.New("kvevents: invalid argument")
)
