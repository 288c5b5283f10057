// Package eviction decides which evictable KV-cache blocks are given up first.
//
// A block is evictable when no sequence references it but it still holds
// cached content (a committed prefix-cache entry). The block manager in
// package paged inserts such blocks into a Policy, removes them again when a
// prefix hit claims them back, and asks the policy for a victim only when it
// needs a block and the free list is empty (lazy eviction, as in vLLM v1).
//
// Policies see block IDs, nothing else. Abilities beyond the four methods of
// Policy are optional interfaces that the manager finds by type assertion:
// Accessor (told about every prefix hit) and Forgetter (told when a
// block's cached content is dropped while the block was not in the policy).
//
// Every policy in this package is O(1) per operation, keeps its state in
// flat slices indexed by block ID, allocates nothing after construction,
// and passes the shared conformance test in policy_test.go.
//
// # Misuse
//
// Inserting a block that is already in the policy, removing one that is not,
// or naming an ID outside [0, capacity) is a bug in the caller and panics
// with the block ID in the message.
//
// # Concurrency
//
// Policies are not safe for concurrent use; their owner synchronizes.
package eviction
