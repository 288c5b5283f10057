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
// manager calls it once with the size of its pool.
type Factory func(capacity int) Policy

// Accessor is implemented by policies that learn from use. The manager calls
// Access on every prefix-cache hit of a block, whether the block sits in the
// policy at that moment (then Remove follows) or is held by other sequences.
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

func misuse(policy, op string, id allocator.BlockID) {
	panic(fmt.Sprintf("eviction: %s.%s of block %d: %s", policy, op, id, map[string]string{
		"Insert": "already in the policy",
		"Remove": "not in the policy",
	}[op]))
}
