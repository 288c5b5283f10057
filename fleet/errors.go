package fleet

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (or a
// backend's own error) with context; branch on them with errors.Is.
var (
	// ErrInvalid: an argument or configuration field is out of range.
	ErrInvalid = errors.New("fleet: invalid argument")
	// ErrMalformed: a vLLM KV event frame does not follow the published
	// schema. The whole frame is rejected; nothing of it is applied.
	ErrMalformed = errors.New("fleet: malformed kv event frame")
	// ErrTooManyServers: a new server name would exceed Config.MaxServers
	// while every server ID belongs to a live server (one neither
	// unregistered nor silent past the TTL).
	ErrTooManyServers = errors.New("fleet: too many servers")
	// ErrUnknownServer: Index.Unregister was given a name no server is
	// registered under (never registered, unregistered already, or its ID
	// given to another name after it expired).
	ErrUnknownServer = errors.New("fleet: unknown server")
	// ErrIndexLost: the backend lost its content behind the index's back
	// (a Redis restart without persistence, a flush). Backends return it;
	// the Index handles it by starting over and marking every server
	// partial, so callers of Index normally never see it.
	ErrIndexLost = errors.New("fleet: index content lost")
	// ErrConflict: a backend's Update found the server's stream state
	// changed by another router since the caller read it. Backends return
	// it; the Index decides again from the new state, so callers of Index
	// see it only when the state changed under each of 32 attempts in a
	// row; it may be made again (events already taken are then replays).
	ErrConflict = errors.New("fleet: stream state changed concurrently")
)
