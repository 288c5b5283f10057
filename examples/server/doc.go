// Command server is a continuous-batching server loop built on
// paged.Manager, small enough to copy into a real inference server.
//
// Requests arrive over time (replayed from the embedded Azure conversation
// trace with its timestamps compressed, or posted over HTTP). The step loop
// is package sched's Scheduler in vLLM's configuration; this command adds
// request IDs and cancel tokens, a bounded queue, the HTTP API, a fake
// model and the statistics. Each engine step gives every
// running sequence a slot for its newest token, preempting the newest
// sequences by recompute when the pool runs out; admits waiting requests
// first come first served after the manager's dry run (CanAdmit) says they
// fit, reusing cached prefixes; builds the step's kernel-ready batch (block
// tables, slot mapping, copy-on-write directives); and fakes the model,
// one token per sequence per step. Requests with n > 1 fork after their
// prompt's step into n samples that share every block until each writes
// its own token. The loop drains the manager's KV events and statistics.
//
// Usage:
//
//	go run ./examples/server [flags]
//	go run ./examples/server -http :8080 -requests 0
//
// The default run replays 250 requests and prints a summary; with -http it
// serves /metrics (Prometheus text), /stats (JSON), POST /requests,
// GET /requests/{id} and POST /requests/{id}/cancel until interrupted.
// The manager is made with a reserve (paged.Config.Reserve, see
// reserveFor) for -max-num-seqs + -max-queue sequences of -max-model-len
// tokens, so that the first requests take no page faults inside the step
// loop; -reserve=false turns it off.
//
// # Hybrid models
//
// -layout gives the model's KV cache groups (paged.Config.Groups), group
// 0 first: "full window:128" for gpt-oss, "full state:34 state:34
// state:34" for a Qwen3-Next-like model (ParseLayout). The loop then hands
// on the state checkpoints of every step (sched.Step.Checkpoints), the
// batch carries every group's tables, and /stats and /metrics add
// per-group figures; docs/server.md, "Hybrid models".
//
// # Holding up under abuse
//
// The HTTP API bounds what a client can make it hold: the admission queue
// (-max-queue; 429 with Retry-After when full), submission bodies by size
// (413), by time (408, the connection closed) and by number in flight
// (429), and connections by the timeouts of NewHTTPServer. Request IDs
// come from crypto/rand, and cancelling takes the cancel token that only
// the submitter received. Every error is JSON with a stable code, and
// every refused submission is counted by reason.
//
// # Concurrency
//
// A paged.Manager is single-owner. Here one goroutine (Server.Run) owns
// the Scheduler and its Manager and runs the step loop; HTTP handlers, the
// trace replay and the progress display talk to it only through a channel
// of functions that the loop runs between steps (Server.do). No lock is
// needed, and a caller waits at most one step.
package main
