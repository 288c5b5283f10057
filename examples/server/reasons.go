package main

import (
	"errors"
	"os"
)

// Reason is why a submission was refused. Every refusal is counted under
// one reason, whether the scheduler or the HTTP layer refused it.
type Reason uint8

// The reasons a submission is refused; their names are the error codes
// of the HTTP API and the reason label of the rejection counter.
const (
	ReasonInvalid      Reason = iota // malformed body or field values
	ReasonTooLong                    // longer than the model length or the pool
	ReasonQueueFull                  // the admission queue is full
	ReasonOverloaded                 // too many submission bodies being read at once
	ReasonBodyTooLarge               // body over the size limit
	ReasonBodyTimeout                // body not received in time
	ReasonClosed                     // the step loop has stopped
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonInvalid:      "invalid_request",
	ReasonTooLong:      "too_long",
	ReasonQueueFull:    "queue_full",
	ReasonOverloaded:   "overloaded",
	ReasonBodyTooLarge: "body_too_large",
	ReasonBodyTimeout:  "body_timeout",
	ReasonClosed:       "unavailable",
}

// String returns the reason's stable name, the API's error code.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Errors of the HTTP layer, for the refusals the scheduler never sees.
var (
	// ErrBodyTooLarge: the request body exceeds the size limit.
	ErrBodyTooLarge = errors.New("server: request body too large")
	// ErrBodyTimeout: the request body did not arrive in time.
	ErrBodyTimeout = errors.New("server: request body not received in time")
	// ErrOverloaded: too many submissions are being read at once.
	ErrOverloaded = errors.New("server: too many submissions in flight")
)

// reasonOf maps a refused submission's error to its reason.
func reasonOf(err error) Reason {
	switch {
	case errors.Is(err, ErrTooLong):
		return ReasonTooLong
	case errors.Is(err, ErrQueueFull):
		return ReasonQueueFull
	case errors.Is(err, ErrOverloaded):
		return ReasonOverloaded
	case errors.Is(err, ErrBodyTooLarge):
		return ReasonBodyTooLarge
	case errors.Is(err, ErrBodyTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonBodyTimeout
	case errors.Is(err, ErrClosed):
		return ReasonClosed
	}
	return ReasonInvalid
}
