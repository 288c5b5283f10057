package paged

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// DefaultBlockSize is the block size in tokens when Config.BlockSize is 0:
// 16, the PagedAttention paper's best size on ShareGPT and vLLM's default.
const DefaultBlockSize = 16

// Limits on a configuration. A manager allocates its per-block metadata up
// front (with the default LRU policy about 94 bytes per device block, and
// 102 more per host block, see TestMetadataPerBlock), so New refuses pools
// beyond MaxBlocks rather than let a typo take the process down with an
// out-of-memory crash; everything else grows with use and is bounded by
// what the caller gives.
const (
	// MaxBlocks bounds Config.NumBlocks and Config.HostBlocks: the
	// allocator's bound, 2^24 blocks, 256M tokens at the default block
	// size, about 1.5 GB of metadata for a device pool.
	MaxBlocks = allocator.MaxBlocks
	// MaxSeqLen bounds Config.MaxModelLen: 2^25 tokens (128 MB of token
	// IDs for the longest sequence).
	MaxSeqLen = 1 << 25
	// MaxEvents bounds Config.Events, the KV event buffer.
	MaxEvents = 1 << 20
	// DefaultMaxWaiting is Config.MaxWaiting when it is 0.
	DefaultMaxWaiting = 1 << 16
)

// Config configures a Manager. Zero values mean the documented defaults;
// New validates the rest and returns an error naming the field.
type Config struct {
	// BlockSize is the number of token slots per block. Default 16.
	BlockSize int
	// NumBlocks is the number of physical blocks in the device pool,
	// including block 0, which is reserved as the null block (padding and
	// released sliding-window entries point at it), so NumBlocks-1 blocks
	// are usable. Required, in [2, MaxBlocks].
	NumBlocks int
	// Watermark is the fraction of usable blocks that admitting a new
	// sequence must leave available, so running sequences can still grow
	// (vLLM v0 used 0.01), in blocks rounded up: 0.15 of 10 usable blocks
	// leaves 2 (vLLM v0 truncates). Appends ignore it. Default 0: no
	// headroom.
	Watermark float64
	// Policy builds the eviction policy for cached blocks. Default
	// eviction.NewLRU.
	Policy eviction.Factory
	// DisablePrefixCaching turns the prefix cache off: no hashing, no
	// lookups, released blocks go straight to the free list.
	DisablePrefixCaching bool
	// UnifiedFreeQueue puts every unreferenced block, cached or not, into
	// the eviction policy, in block-ID order at start: one queue, popped
	// from the head, as vLLM v1's free block queue. With LRU this
	// reproduces vLLM's allocation decisions exactly. By default uncached
	// free blocks are reused (LIFO) before any cached block is evicted,
	// which keeps more of the cache.
	UnifiedFreeQueue bool
	// Hasher computes block hashes. Default SHA256Hasher. A Hasher may keep
	// scratch state: managers used on different goroutines need their own.
	Hasher Hasher
	// HashMemo keeps, for every device block, the input and output of its
	// SHA-256 chain hash (its tokens, the hash before it and its own), so
	// that Add, Create and BlockHashes take the hashes of a prompt's
	// leading blocks from the blocks that hold them instead of hashing
	// them again: a block costs a comparison of its tokens and parent
	// hash instead of a SHA-256. Turn it on where prompts repeat long
	// cached prefixes whose blocks are still in the pool, typically
	// multi-turn chat at long contexts, where every turn resends the
	// whole conversation (adding and looking up a warm 131,072-token
	// prompt then costs 0.14x what a cold one does; docs/performance.md,
	// "Warm prompts without re-hashing"). It costs 4*BlockSize+69 bytes
	// per device block (133 at block size 16, more than the rest of a
	// block's metadata) and a record of them at every committed block
	// (about 8 ns; 10% more manager instructions on a replay of W1,
	// where no prompt repeats a cached one when it is added), so leave
	// it off where prompts rarely repeat. Hashes are bit-for-bit those
	// of SHA-256: an entry is compared on its whole input, never a
	// fingerprint, and only hashes the manager computed without extra
	// keys are recorded. Only the SHA-256 hasher uses it; it is ignored
	// for any other and without prefix caching. Default false.
	HashMemo bool
	// HashSeed seeds the root of every hash chain. Managers that must agree
	// on hashes (a fleet behind one prefix-aware router) use the same seed;
	// a secret seed keeps hashes unguessable. Default: empty, a fixed root.
	HashSeed []byte
	// Events is the capacity of the KV event buffer, at most MaxEvents.
	// Events beyond it are dropped and counted, never blocking. The buffer
	// grows with use up to it. Default 0: events off.
	Events int
	// MaxModelLen bounds the tokens of one sequence, at most MaxSeqLen;
	// longer prompts and appends are refused with ErrNever. A sequence
	// without a sliding window is also never longer than the pool holds,
	// (NumBlocks-1)*BlockSize tokens, whatever MaxModelLen says; a windowed
	// one holds only its window, so a larger MaxModelLen lets it grow past
	// the pool if the pool holds its window (SeqOptions.Window). Default:
	// what the pool holds, at most MaxSeqLen.
	MaxModelLen int
	// MaxWaiting bounds the sequences that hold no device blocks (added and
	// not admitted, preempted, or swapped out): Add, AddOwned, AddHashed
	// and AddFromHashes refuse a new sequence with ErrNoSpace while that
	// many wait, so a flood of requests meets back-pressure instead of
	// exhausting memory. Create, Preempt and SwapOut are never refused for
	// it. Default DefaultMaxWaiting.
	MaxWaiting int
	// Reserve is memory set aside at New for the sequences' records and
	// their hash and table buffers, so that a fresh process's first
	// requests do not take page faults inside Add and Admit (see
	// Reserve for what it costs). Default: none.
	Reserve Reserve

	// HostBlocks is the number of blocks of the host tier, in host memory:
	// SwapOut moves preempted sequences there, and evicted prefix-cache
	// blocks are offloaded there (see docs/tiers.md). Default 0: no host
	// tier.
	HostBlocks int
	// HostPolicy builds the eviction policy of offloaded blocks. Default
	// eviction.NewLRU. A policy that takes hints (eviction.Hinter) is
	// given each offloaded content's retention level and expiry, and one
	// that keeps time (eviction.Ticker) the manager's Advance.
	HostPolicy eviction.Factory
	// OffloadPriority is the lowest retention priority (SeqOptions.Retention,
	// else eviction.DefaultPriority) of content worth offloading when its
	// device block is evicted. Default 0: everything.
	OffloadPriority int
	// DisableOffload keeps the host tier for swapping only.
	DisableOffload bool

	// Groups are the KV cache groups of a hybrid model (see Group): every
	// group of a sequence has its own block table, drawn from the one
	// pool. Group 0 must be full attention; the others may be of any
	// kinds and sizes (windows of several sizes, chunked, state and
	// shared groups together: docs/hybrid.md, "Several kinds"), but with
	// UnifiedFreeQueue and prefix caching, as vLLM v1's hybrid
	// coordinator, one kind besides full attention, of one size. A Window
	// or Chunk is at most MaxSeqLen. At most 255 groups. Empty means one
	// full-attention group, all a model of one attention kind needs.
	Groups []Group
}

// withDefaults returns cfg with defaults filled in, or an error naming the
// first bad field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.BlockSize < 0 || cfg.BlockSize > 1<<20 {
		return cfg, fmt.Errorf("%w: Config.BlockSize %d must be in [1, 2^20]", ErrInvalid, cfg.BlockSize)
	}
	if cfg.NumBlocks < 2 || cfg.NumBlocks > MaxBlocks {
		return cfg, fmt.Errorf("%w: Config.NumBlocks %d must be in [2, MaxBlocks=%d] (block 0 is the null block)", ErrInvalid, cfg.NumBlocks, MaxBlocks)
	}
	if !(cfg.Watermark >= 0 && cfg.Watermark < 1) {
		return cfg, fmt.Errorf("%w: Config.Watermark %v must be in [0, 1)", ErrInvalid, cfg.Watermark)
	}
	if cfg.Policy == nil {
		cfg.Policy = eviction.NewLRU
	}
	if cfg.Hasher == nil {
		cfg.Hasher = NewSHA256Hasher()
	}
	if cfg.Events < 0 || cfg.Events > MaxEvents {
		return cfg, fmt.Errorf("%w: Config.Events %d must be in [0, MaxEvents=%d]", ErrInvalid, cfg.Events, MaxEvents)
	}
	if cfg.MaxModelLen < 0 || cfg.MaxModelLen > MaxSeqLen {
		return cfg, fmt.Errorf("%w: Config.MaxModelLen %d must be in [0, MaxSeqLen=%d]", ErrInvalid, cfg.MaxModelLen, MaxSeqLen)
	}
	if cfg.MaxModelLen == 0 {
		cfg.MaxModelLen = min(cfg.poolTokens(), MaxSeqLen)
	}
	if cfg.MaxWaiting < 0 {
		return cfg, fmt.Errorf("%w: Config.MaxWaiting %d must not be negative", ErrInvalid, cfg.MaxWaiting)
	}
	if cfg.MaxWaiting == 0 {
		cfg.MaxWaiting = DefaultMaxWaiting
	}
	if err := cfg.Reserve.check(); err != nil {
		return cfg, err
	}
	if err := checkGroups(&cfg); err != nil {
		return cfg, err
	}
	for i, g := range cfg.Groups {
		// No sequence is longer than MaxSeqLen, so a longer window or
		// chunk means nothing more, and near math.MaxInt the blocks
		// arithmetic on it would overflow.
		if g.Window > MaxSeqLen || g.Chunk > MaxSeqLen {
			return cfg, fmt.Errorf("%w: Config.Groups[%d] (%v) window or chunk %d exceeds MaxSeqLen=%d", ErrInvalid, i, g.Kind, max(g.Window, g.Chunk), MaxSeqLen)
		}
	}
	// The manager keeps its own copies: a caller reusing its buffers after
	// New changes nothing.
	cfg.Groups, cfg.HashSeed = slices.Clone(cfg.Groups), slices.Clone(cfg.HashSeed)
	return cfg.withTierDefaults()
}

// poolTokens is the number of tokens the usable blocks hold.
func (cfg Config) poolTokens() int {
	return (cfg.NumBlocks - 1) * cfg.BlockSize
}

// nullBlock is the reserved block every padded or released table entry names.
const nullBlock allocator.BlockID = 0
