package eviction

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// Policy orders the evictable blocks of one pool.
type Policy interface {
	// Insert adds a block that has just become evictable.
	Insert(id allocator.BlockID)
	// Remove takes a block out again because it was referenced anew (a
	// prefix hit) or its content was given up by other means.
	Remove(id allocator.BlockID)
	// Victim removes and returns the block to give up next; false when the
	// policy holds no block.
	Victim() (allocator.BlockID, bool)
	// Len returns the number of blocks in the policy.
	Len() int
	// Contains reports whether the block is in the policy. The manager's
	// invariant check needs it; it is O(1) in every policy here.
	Contains(id allocator.BlockID) bool
}

// Factory builds a policy for block IDs in [0, capacity). The paged
// manager calls it once with the size of its pool. A negative capacity is
// taken as 0; one above MaxCapacity panics (see MaxCapacity).
type Factory func(capacity int) Policy

// MaxCapacity is the largest capacity a policy constructor accepts: the
// largest pool allocator.New creates (allocator.MaxBlocks). Policies
// allocate their per-block state up front, up to about 160 bytes a block
// (Chain; the others under 80), so a larger capacity could only come from a
// caller that skipped that validation; the constructors panic on it rather
// than exhaust memory.
const MaxCapacity = allocator.MaxBlocks

// Accessor is implemented by policies that learn from use. The manager calls
// Access on every prefix-cache hit of a block, whether the block sits in the
// policy at that moment (then Remove follows) or is held by other sequences,
// and on every block a pin takes (paged's Manager.Pin): a pinned prefix is
// one a server said it will use again, so it counts as a use.
type Accessor interface {
	Access(id allocator.BlockID)
}

// Forgetter is implemented by policies that keep history about a block's
// content outside the set of evictable blocks. The manager calls Forget when
// the cached content of a block that is not in the policy is dropped (the
// block is about to be overwritten or freed), so the history does not carry
// over to unrelated content. Content given up through Victim needs no call.
type Forgetter interface {
	Forget(id allocator.BlockID)
}

// misuse panics on a call that breaks the protocol between manager and
// policy: a bug in the caller, never bad user input.
func misuse(policy, op string, id allocator.BlockID, why string) {
	panic(fmt.Sprintf("eviction: %s.%s of block %d: %s", policy, op, id, why))
}

const (
	inPolicy    = "already in the policy"
	notInPolicy = "not in the policy"
)

// Hint is what the block manager knows about a block's cached content when
// it commits it to the prefix index.
type Hint struct {
	// Key identifies the content (the leading bytes of its chain hash). It
	// survives the block's reuse, so policies with ghost entries (ARC,
	// S3-FIFO) key their history by it rather than by block ID.
	Key uint64
	// Depth is the block's position in its hash chain: 0 for a prompt's
	// first block.
	Depth int32
	// Parent is the block that held the previous block of the chain when
	// this one was committed, or allocator.NoBlock for a chain's first
	// block. The parent may since have been evicted and reused: a policy
	// that tracks children must check that the parent still holds the
	// content it had (see the Key it was hinted with).
	Parent allocator.BlockID
	// Priority is the retention level, 0 (give up first) to 100, in the
	// manner of TensorRT-LLM; DefaultPriority when the caller set none.
	Priority int
	// Expires is the logical tick at which Priority reverts to
	// DefaultPriority; 0 for never.
	Expires int64
}

// DefaultPriority is the retention level of blocks whose sequence asked for
// none: 35, as in TensorRT-LLM.
const DefaultPriority = 35

// Hinter is implemented by policies that use the structure of the cache.
// The manager calls Hint once each time a block's content is committed,
// before the block is first inserted with that content.
type Hinter interface {
	Hint(id allocator.BlockID, h Hint)
}

// Ticker is implemented by policies that use logical time (priority
// expiry). The manager forwards the caller's Manager.Advance to it; time
// never comes from a wall clock.
type Ticker interface {
	Advance(now int64)
}
