package paged

// Medium is where a block's content lives.
type Medium uint8

const (
	// Device is accelerator memory, the primary pool.
	Device Medium = iota
	// Host is host memory, the offload tier.
	Host
)

// String returns the medium as vLLM's KV events spell it ("GPU", "CPU").
func (m Medium) String() string {
	if m == Host {
		return "CPU"
	}
	return "GPU"
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// BlockStored reports a run of newly committed blocks of one chain.
	BlockStored EventKind = iota + 1
	// BlockRemoved reports blocks whose cached content was given up.
	BlockRemoved
	// AllBlocksCleared reports that the whole cache was reset.
	AllBlocksCleared
	// BlockMoved reports cached blocks that moved between tiers (offload to
	// the host, onboard back to the device); they stay in the index. A
	// move back to the device whose tokens the manager knows (a sequence
	// not made from hashes) also carries Parent, Tokens, BlockSize and
	// LoRA as a BlockStored of the same blocks would, so a consumer that
	// cannot follow moves (vLLM's event schema, package fleet/kvevents)
	// can store them again.
	BlockMoved
)

// String names the kind as vLLM does.
func (k EventKind) String() string {
	switch k {
	case BlockStored:
		return "BlockStored"
	case BlockRemoved:
		return "BlockRemoved"
	case AllBlocksCleared:
		return "AllBlocksCleared"
	case BlockMoved:
		return "BlockMoved"
	}
	return "EventKind(?)"
}

// Event is one KV-cache event, in the shape of vLLM's KV events plus tier
// moves. Slices point into the manager's event arena and stay valid until
// the next DrainEvents call; copy them to keep them longer.
type Event struct {
	// Seq numbers events from 1 without gaps at the source; a consumer that
	// sees a gap has lost events (the buffer overflowed) and must resync.
	Seq uint64
	// Kind is the event's type.
	Kind EventKind
	// Hashes are the blocks concerned, in chain order for BlockStored.
	Hashes []Hash
	// Parent is the hash of the block before Hashes[0] in its chain, valid
	// when HasParent (BlockStored, and BlockMoved with Tokens).
	Parent Hash
	// HasParent reports whether Parent is valid; false when Hashes[0] starts
	// its chain.
	HasParent bool
	// Tokens are the token IDs of the stored blocks, BlockSize per block
	// (BlockStored; BlockMoved to the device when known, else empty).
	Tokens []int32
	// BlockSize is the number of tokens per block (BlockStored, and
	// BlockMoved with Tokens).
	BlockSize int
	// LoRA is the adapter ID of the stored blocks, 0 for none.
	LoRA int32
	// Medium is where the blocks are (BlockStored, BlockRemoved) or where
	// they went (BlockMoved); Device for AllBlocksCleared, though the
	// reset empties every tier (vLLM's event names no medium).
	Medium Medium
	// From is where moved blocks came from (BlockMoved only).
	From Medium
	// Group is the KV cache group of the blocks (Config.Groups; always 0
	// for a model of one attention kind), as vLLM's group_idx. For a State
	// group each hash is a whole state checkpoint after the block of that
	// hash (see Checkpoint), stored, removed or moved: on the device while
	// every page of it is, else on the host.
	Group int
}
