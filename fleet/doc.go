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
// scores with load to pick a server: CostAware weighs the prefill a
// server's cache saves against the prompt tokens queued there and the
// sequences its prefill would stall, all in tokens of prefill;
// PrefixAware (optionally capped by load) and LeastLoaded are the
// baselines. The design follows llm-d's KV cache indexer: precise routing
// from engine events rather than from guesses. A Pending record adds the
// router's own knowledge, the prompts it sent that the events have not
// reported yet, so that a burst sharing a new prefix follows its first
// request; it lives in the router's memory, not in the backend.
//
// # Backends
//
// A Backend holds the entries, the server registry and every server's
// stream state (last sequence number, partial flag, last heartbeat).
// Memory (the default) is a bounded in-process table with its own
// eviction policy from package eviction (LRU by default); a block it
// forgets is under-reported, never wrong. Package fleet/redisindex keeps
// all of it in Redis, shared by every router attached to the same model:
// each write is one atomic script that checks the server's state first
// (compare-and-set), so several routers may even apply the same streams
// and each event is applied once. Both give the same answers for the same
// events (as long as Memory does not evict). This package itself links
// only the standard library and pagedkv's own packages.
//
// # Order, gaps and staleness
//
// Events carry per-server sequence numbers from 1 without gaps. The index
// skips replays (numbers already taken) and treats a gap as lost events:
// it drops the server's entries, marks it partial and goes on applying
// the events after the gap, which are true; a partial server can only be
// under-reported. A server sending nothing for Config.TTL is expired the
// same way. If the backend loses its content (a Redis restart without
// persistence), the index attaches again and every server comes back
// partial. Score.Partial reports all of this to the router: the index
// never serves a possibly stale answer silently. A partial server becomes
// exact again with AllBlocksCleared (its cache is empty) or with
// Index.Resync and the server's paged.Snapshot.
//
// # Server lifecycle
//
// A server is registered under its name the first time the index hears
// of it (Register, Apply, Heartbeat, Resync) and gets a ServerID, its bit
// in the holder sets; there are Config.MaxServers IDs. Names change in a
// real fleet (a Kubernetes pod gets a new name on every restart), so IDs
// are reclaimed: Unregister frees a server's ID at once (for an operator
// or a pod-deletion hook), and a new name that finds every ID in use
// takes a free one, or else the ID of the server silent longest past
// Config.TTL. ErrTooManyServers means every ID belongs to a live server.
// The backend drops the old server's entries and gives the ID to the new
// name in one atomic step (Backend.Rename), so no lookup, by this router
// or another on the same Redis, ever scores the old server's blocks under
// the new name. Each hand-over raises the ID's StreamState.Life; a write
// prepared for the old name (its late events, racing with the hand-over
// on another router) fails on the backend's compare-and-set and is never
// applied to the new owner: the old name is registered again as a new
// server, under another ID if one is free, and partial unless its events
// start at number 1. A router that routed to the old name a moment ago
// may still do so until its next Lookup, which reloads the names. A
// Pending record keys claims by ServerID: call Pending.ForgetServer when
// an ID changes hands, or the old server's claims count for the new owner
// until their PendingConfig.TTL.
//
// Silence is measured on the monotonic clock when this Index wrote the
// server's last stamp, so a step of the wall clock neither expires a
// server early nor keeps it late; a stamp written by another router can
// only be compared in wall-clock time, so routers sharing a Redis need
// clocks that agree (NTP) to well within the TTL.
//
// # vLLM events
//
// The index takes paged.Event values from any source. Package
// fleet/kvevents decodes vLLM's msgpack KV event frames into them (and
// encodes a paged manager's events as vLLM does), and fleet/zmq carries
// them over vLLM's ZMQ publisher protocol, so one index serves a mixed
// fleet of vLLM pods and Go servers. Neither is linked by this package.
//
// # Hybrid models
//
// A hybrid model's layers form KV cache groups of several kinds (full
// attention, sliding window, chunked local, linear-attention state,
// shared), and a server reuses a prefix of L tokens only when every
// group holds what a hit at L needs (docs/hybrid.md): the full-attention
// blocks of [0, L), a window group's last blocks before L, a chunked
// group's blocks of L's chunk, a state checkpoint at exactly L. The index
// keeps entries per (block hash, group) (GroupKey; paged.Event.Group,
// vLLM's group_idx), and a server whose layout it knows (Index.SetLayout,
// LayoutOf a paged.Config, or built from a vLLM model's kv_cache_groups)
// is scored the longest prefix it can actually hit: the fixed point of
// the groups' rules that paged's lookup computes, so Score.Blocks is the
// hit the server's admission gives (checked against paged managers of
// random layouts by fleettest.CheckHybridScores). A paged manager reports
// each whole state checkpoint as one block of its state group, named by
// the hash of the block it follows. Events of a group the layout lacks
// are refused. Without a layout a server is scored by group 0's run of
// leading blocks (before layouts, a block held by any group counted):
// exact for a model of one kind, an upper bound of the hit for a hybrid
// one whose group 0 is full attention (a paged manager
// with a full-attention and a 4-token sliding-window group, after some
// evictions, is scored 3 leading blocks of a prompt it hits 0 tokens of;
// see the SetLayout example).
//
// Score.Affinity keeps group 0's run beside the exact hit: where a hybrid
// server holds a prefix family's blocks but cannot hit them yet (no
// checkpoint, window blocks evicted), a request sent there rebuilds what
// its family's next request hits. CostAware and PrefixAware add that
// gain to the exact hit (affinity.go explains the rule), which keeps
// families together where exact scores alone, all zero, would spread
// them by load; it is zero for servers of one group. Pending.Claim
// records what a routed request leaves a hybrid server: with a state
// group, a hit at its branch point only.
//
// # Concurrency
//
// Index is safe for concurrent use: one mutex serializes event application
// and lookups, so the event streams of many servers may be applied from
// their own goroutines. Backends are called under that mutex; a Memory
// serves one Index, a redisindex.Backend value serves one Index and any
// number of them (in any processes) may share one Redis model. Routers
// here are values; CostAware with a Rand is as safe as its Rand. Pending
// has its own mutex.
package fleet
