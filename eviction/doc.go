// Package eviction decides which evictable KV-cache blocks are given up first.
//
// A block is evictable when no sequence references it but it still holds
// cached content (a committed prefix-cache entry). The block manager in
// package paged inserts such blocks into a Policy when their last reference
// is released, removes them again when a prefix hit claims them back, and
// asks the policy for a victim only when it needs a block and the free list
// is empty (lazy eviction, as in vLLM v1). In vLLM's unified-free-queue mode
// it also inserts blocks without content; every policy tolerates that.
//
// # Policies
//
// Names and ByName give the factories by name; each is also exported:
//
//	lru       NewLRU       least recently released first (vLLM's free queue)
//	fifo      NewFIFO      oldest content first; hits do not matter
//	lfu       NewLFU       fewest hits first, ties least recently released (Shah, Mitra, Matani 2010)
//	clock     NewCLOCK     FIFO with a reference bit: second chance (Corbató 1968)
//	sieve     NewSIEVE     FIFO with a visited bit and a hand that stays put (Zhang et al., NSDI 2024)
//	s3fifo    NewS3FIFO    small, main and ghost FIFO queues (Yang et al., SOSP 2023)
//	arc       NewARC       self-tuning recency/frequency split with ghosts (Megiddo, Modha, FAST 2003)
//	slru      NewSLRU      probationary and protected LRU segments (Karedla, Love, Wherry 1994)
//	priority  NewPriority  levels 0-100 with expiry, LRU within a level, chains leaf first (TensorRT-LLM)
//	leaflru   NewLeafLRU   LRU over the leaves of the prefix tree first (this package's design)
//	chain     NewChain     lowest learned hit density first, by turn, turn size and last block (this package's design)
//
// # Optional interfaces
//
// Policies see block IDs, nothing else, through the five methods of
// Policy. Abilities beyond them are optional interfaces that the manager
// finds by type assertion:
//
//   - Accessor: Access is called on every prefix hit of a block, whether
//     the block is in the policy (then Remove follows) or held by others.
//   - Hinter: Hint is called once when a block's content is committed,
//     before its first Insert with that content, with the content's Key,
//     its Depth and Parent in the hash chain, and a retention Priority
//     with an optional expiry tick.
//   - Forgetter: Forget is called when a block's content is dropped while
//     the block is not in the policy (Remove comes first otherwise).
//   - Ticker: Advance forwards the caller's logical time (priority expiry).
//   - Retainer: Retain is called for each block a request with a retention
//     reuses through a prefix hit, with the request's level and expiry.
//
// Per-block history (hit counts, reference bits, queue membership) belongs
// to content: it restarts on Hint, on Forget and when the block leaves
// through Victim. A policy never called with Hint treats every Insert after
// a Victim as new content; ARC and S3-FIFO then have no ghost hits and
// LeafLRU no children; Chain is then LRU. Ghost entries are keyed by Hint.Key, never by block
// ID, because the block has been reused by the time a ghost matters.
//
// # Costs
//
// Every operation of every policy is O(1) or amortized O(1), the doc
// comment of each type says which, but for LeafLRU's handling of a block
// that gains its first child or loses its last out of release order
// (O(log n), a heap). State lives in flat slices indexed by block ID
// (intrusive index lists, bitmaps, binary heaps, a fixed-size
// open-addressing table for ghost keys), sized once by the Factory;
// nothing allocates after construction. The shared conformance test
// (policy_test.go) checks every policy against a model of the manager's
// protocol, its misuse panics, and zero allocations in steady state;
// audit10_model_test.go checks each policy's order against a slice model
// of its documentation (Chain and Priority: their invariants only).
//
// # Misuse
//
// Inserting a block that is already in the policy, removing one that is not,
// hinting or forgetting a block in the policy, or naming an ID outside
// [0, capacity) (in any method, Contains and Access included, or as a
// Hint.Parent other than allocator.NoBlock where LeafLRU or Chain reads
// it) is a bug in the caller. It panics with a message that starts
// "eviction: " and names the block, before anything has changed. So does a
// Hint.Priority outside [0, MaxPriority] given to Priority. A negative
// capacity is treated as 0; a capacity above MaxCapacity (2^24, the
// largest pool package allocator creates) panics, since every policy
// allocates its per-block state up front. LRU.TryInsert and TryRemove
// report the misuse of Insert and Remove (false, nothing changed) instead
// of panicking, so that they inline into a caller holding a *LRU.
//
// # Concurrency
//
// Policies are not safe for concurrent use; their owner synchronizes.
package eviction
