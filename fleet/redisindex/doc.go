// Package redisindex is the Redis backend of a fleet.Index: the prefix
// index, the server registry and every server's stream state in Redis (or
// Valkey), through github.com/redis/go-redis/v9, so several routers in
// several processes share one index and agree on which servers are
// partial.
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	back, err := redisindex.New(client, redisindex.Config{})
//	index, err := fleet.New(fleet.Config{Model: "llama-3-8b", Backend: back})
//
// Attaching never deletes: a router that starts joins the index other
// routers built (Backend.Delete removes a model's keys on purpose). Every
// write is one Lua script call that checks the index's epoch and the
// server's stream state before it changes anything, so the streams may be
// applied by one router or by all of them. When Redis loses its data
// (restart without persistence, flush) the epoch is gone: the routers
// make or join a new index under a new epoch, every server is partial,
// and each server's paged.Snapshot given to fleet.Index.Resync rebuilds
// it exactly.
//
// Redis must keep every key until the index deletes it or its KeyTTL
// expires: run it with maxmemory-policy noeviction (the default). A policy
// that evicts keys under memory pressure (allkeys-*, or volatile-* with
// KeyTTL set) may drop a server's state or block set while its block keys
// stay, and the index may then report blocks a server no longer holds.
//
// The index's keys follow one layout, named by the constant Layout and
// stored with the index: a router whose version lays keys out differently
// refuses to join (fleet.ErrInvalid) instead of misreading the entries.
// Layout 3 keys blocks by (hash, KV cache group) (fleet.GroupKey) and
// keeps each server's fleet.Layout (fleet.Index.SetLayout), shared by
// every router; indexes of earlier layouts are refused (Backend.Delete
// them, and the servers' entries come back as they resync).
//
// Server IDs are reclaimed (fleet.Index.Unregister, reuse of expired
// servers' IDs; see package fleet): one script drops the old server's
// block bits, moves the ID to the new name and sets its state, if the
// state is still the one the router decided from, so every router sees
// the hand-over at once and a write for the old name racing with it
// fails. Silence is compared in wall-clock time across routers: keep
// their clocks in agreement.
//
// # Concurrency
//
// A Backend belongs to one fleet.Index (which serializes its calls); the
// client may be shared.
package redisindex
