// Package allocator owns the physical blocks of one KV-cache memory pool.
//
// A Pool hands out dense int32 block IDs, counts references to them and keeps
// the free list. It knows nothing about tokens, hashes or sequences: that is
// the job of package paged, which builds block tables on top of a Pool.
//
// Every block is in exactly one of four states:
//
//   - reserved: one of the first Config.Reserved IDs, never handed out (the
//     paged manager reserves block 0 as the null block used for padding);
//   - free: on the free list, reference count 0, content meaningless;
//   - cached: reference count 0 but its content is still wanted (a prefix
//     cache entry); the owner of the cache decides when it is given up;
//   - held: reference count 1 or more.
//
// Conservation holds at all times and Check verifies it: reserved + free +
// cached + held == total.
//
// # Limits
//
// New refuses a Config.NumBlocks above MaxBlocks (2^24) with ErrInvalid,
// since it allocates the metadata of every block up front. Every error
// (ErrInvalid, ErrNoSpace) leaves the pool unchanged.
//
// # Costs
//
// Every operation is O(1) except AppendAlloc and CountCached, which are
// O(n) in the blocks they hand out or count, and Check, which is
// O(total). Nothing allocates after New but Check and the errors of
// AppendAlloc (a refusal wraps its sentinel with the counts).
//
// # Ownership
//
// A reference is owned by whoever received it from Alloc, AppendAlloc, Ref
// or Claim, and is given back exactly once with Release or ReleaseToCache.
// Misuse of references is a bug in the caller, not bad input, so it panics
// with the block ID in the message:
//
//   - REQUIRES: Release, ReleaseToCache and Ref take a held block;
//   - REQUIRES: Claim and Evict take a cached block;
//   - REQUIRES: Ref leaves fewer than 2^31 references on a block;
//   - REQUIRES: every ID is in [Reserved, Total) (for RefCount, IsFree
//     and IsCached, and every block of CountCached's range, in [0, Total);
//     these hot accessors panic with an error value, not a string, whose
//     message reads the same way).
//
// TryReleaseToCache, TryClaim and TryRef report such misuse (false,
// nothing changed) instead of panicking: without the panic's call they
// inline, for a caller whose own invariants make misuse a broken
// invariant it checks off the hot path (the paged manager calls the
// checked form when one reports false, and that panics).
//
// The zero Pool behaves as a pool of no blocks: Alloc returns ErrNoSpace
// and every ID is out of range.
//
// # Concurrency
//
// A Pool is not safe for concurrent use. The owner (usually the paged
// manager, itself owned by one scheduler goroutine) synchronizes.
package allocator
