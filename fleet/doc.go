// Package fleet is a fleet-wide prefix index for routing requests to the
// inference server that already holds the longest prefix of their KV cache.
//
// Each server (a paged.Manager with events on, or a vLLM engine) reports
// KV events: blocks stored, removed, moved between device and host, the
// cache cleared. An Index applies them per server, in the server's order,
// into a Backend that maps each block hash to the servers holding it and
// on which tier. For a request's block hashes (in chain order), Lookup
// returns every server's Score: its run of consecutive leading blocks, the
// device blocks weighted more than host blocks. A Router combines the
// scores with load to pick a server; PrefixAware (optionally capped by
// load) and LeastLoaded are provided. The design follows llm-d's KV cache
// indexer: precise routing from engine events rather than from guesses.
//
// # Backends
//
// Memory (the default) is a bounded in-process map with its own eviction
// policy from package eviction (LRU by default); a block it forgets is
// under-reported, never wrong. Redis keeps the index in Redis through
// go-redis: one Lua call applies a batch of events atomically, one MGET
// answers a lookup, keys are namespaced by model. Both give the same
// answers for the same events (as long as Memory does not evict).
//
// # Order, gaps and staleness
//
// Events carry per-server sequence numbers from 1 without gaps. The index
// skips replays (numbers already taken) and treats a gap as lost events:
// it drops the server's entries, marks it partial and goes on applying
// the events after the gap, which are true; a partial server can only be
// under-reported. A server sending nothing for Config.TTL is expired the
// same way. If the backend loses its content (a Redis restart without
// persistence), every server becomes partial and the index rebuilds from
// the events that follow. Score.Partial reports all of this to the
// router: the index never serves a possibly stale answer silently. A
// partial server becomes complete again with AllBlocksCleared (its cache
// is empty, so the index is exact) or Index.Resync followed by a snapshot.
//
// # vLLM events
//
// The index takes paged.Event values from any source. Package
// fleet/kvevents decodes vLLM's msgpack KV event frames into them (and
// encodes a paged manager's events as vLLM does), and fleet/zmq carries
// them over vLLM's ZMQ publisher protocol, so one index serves a mixed
// fleet of vLLM pods and Go servers. Neither is linked by this package.
//
// # Concurrency
//
// Index is safe for concurrent use: one mutex serializes event application
// and lookups, so the event streams of many servers may be applied from
// their own goroutines. Backends are called under that mutex and need no
// locking; one backend serves one Index. Routers here are stateless values.
package fleet
