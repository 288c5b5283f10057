package allocator

import (
	"errors"
	"fmt"
	"math"
)

// BlockID names one physical block of a pool. IDs are dense: a pool of n
// blocks uses 0..n-1, so per-block metadata lives in flat slices.
type BlockID int32

// NoBlock is the BlockID that names no block.
const NoBlock BlockID = -1

// ErrNoSpace is returned when a request for blocks cannot be met from the
// free list. Nothing has changed when it is returned.
var ErrNoSpace = errors.New("allocator: no free block")

// ErrInvalid is returned for a configuration or argument that is out of
// range. Nothing has changed when it is returned.
var ErrInvalid = errors.New("allocator: invalid argument")

// MaxBlocks is the largest Config.NumBlocks New accepts: 2^24 blocks, about
// 200 MB of pool metadata (12 bytes per block: the count and state, padded
// to 8, and a free-list entry; all allocated by New). It
// is far above any real pool (an 80 GiB device holds a few hundred
// thousand 16-token blocks even of a small model) and keeps a mistyped
// size from exhausting memory. Use larger blocks for more tokens.
const MaxBlocks = 1 << 24

// Order says which free block is handed out next.
type Order uint8

const (
	// LIFO hands out the most recently freed block first. It is the default:
	// a block freed a moment ago is the one most likely still warm in the
	// server's own caches, and the free list behaves as a stack.
	LIFO Order = iota
	// FIFO hands out the block that has been free longest, starting from
	// the lowest ID: the order vLLM's free queue uses for blocks without
	// cached content.
	FIFO
)

// Config configures a Pool. The zero value of each field but NumBlocks
// means its documented default.
type Config struct {
	// NumBlocks is the number of physical blocks, reserved ones included.
	// Required: at least Reserved+1 and at most MaxBlocks.
	NumBlocks int
	// Reserved is the number of leading block IDs that are never handed
	// out. Default 0.
	Reserved int
	// Order is the reuse order of free blocks. Default LIFO.
	Order Order
}

type state uint8

// block is one block's bookkeeping.
type block struct {
	refs  int32
	state state
}

const (
	stateFree state = iota
	stateCached
	stateHeld
	stateReserved
)

// Pool is one memory pool of fixed-size blocks. The zero value is not
// usable; create pools with New.
type Pool struct {
	// blocks holds each block's reference count next to its state, so
	// the hot paths that check one and change the other touch one cache
	// line per block, not two.
	blocks []block

	// The free list is a ring over ring[head : head+nfree] (mod len).
	// LIFO pops the tail, FIFO pops the head; both push at the tail.
	ring  []BlockID
	head  int
	nfree int

	reserved int
	order    Order

	// allocs counts the blocks that became held, releases those that
	// stopped being held, so the held blocks number allocs-releases and
	// the cached ones what the free, held and reserved blocks leave: each
	// state change updates one counter (see Held and Cached).
	allocs   uint64
	releases uint64
}

// New returns a pool with every block but the reserved ones free. With FIFO
// order blocks are first handed out in ascending ID order; with LIFO too.
func New(cfg Config) (*Pool, error) {
	if cfg.NumBlocks <= 0 || cfg.NumBlocks > MaxBlocks {
		return nil, fmt.Errorf("%w: Config.NumBlocks %d must be in [1, MaxBlocks=%d]", ErrInvalid, cfg.NumBlocks, MaxBlocks)
	}
	if cfg.Reserved < 0 || cfg.Reserved >= cfg.NumBlocks {
		return nil, fmt.Errorf("%w: Config.Reserved %d must be in [0, NumBlocks=%d)", ErrInvalid, cfg.Reserved, cfg.NumBlocks)
	}
	if cfg.Order != LIFO && cfg.Order != FIFO {
		return nil, fmt.Errorf("%w: Config.Order %d is neither LIFO nor FIFO", ErrInvalid, cfg.Order)
	}
	n := cfg.NumBlocks
	p := &Pool{
		blocks:   make([]block, n),
		ring:     make([]BlockID, n),
		reserved: cfg.Reserved,
		order:    cfg.Order,
	}
	// Every block's record is written once here, so the kernel maps its
	// pages at construction (as the ring's, filled below), not at the
	// first allocation that reaches each page.
	for i := range p.blocks {
		p.blocks[i] = block{}
	}
	for i := range cfg.Reserved {
		p.blocks[i].state = stateReserved
	}
	free := n - cfg.Reserved
	for i := range free {
		if cfg.Order == LIFO {
			// The stack pops from the tail: put the lowest ID there.
			p.ring[i] = BlockID(n - 1 - i)
		} else {
			p.ring[i] = BlockID(cfg.Reserved + i)
		}
	}
	p.nfree = free
	return p, nil
}

// Total returns the number of blocks, reserved ones included.
func (p *Pool) Total() int { return len(p.blocks) }

// Reserved returns the number of reserved blocks.
func (p *Pool) Reserved() int { return p.reserved }

// Usable returns the number of blocks that can ever be handed out.
func (p *Pool) Usable() int { return len(p.blocks) - p.reserved }

// Free returns the number of blocks on the free list.
func (p *Pool) Free() int { return p.nfree }

// Cached returns the number of blocks with no reference whose content is
// kept (see ReleaseToCache).
func (p *Pool) Cached() int { return len(p.blocks) - p.reserved - p.nfree - p.Held() }

// Held returns the number of blocks with at least one reference.
func (p *Pool) Held() int { return int(p.allocs - p.releases) }

// Valid reports whether id names a block that can be handed out.
func (p *Pool) Valid(id BlockID) bool { return int(id) >= p.reserved && int(id) < len(p.blocks) }

// RefCount returns the number of references to id (0 for free, cached and
// reserved blocks). REQUIRES: id in [0, Total).
func (p *Pool) RefCount(id BlockID) int32 {
	// The read-only accessors sit on the manager's hot paths and must
	// inline: the range check replaces the slice's own bounds check, and
	// panicking with a small value rather than calling a formatter keeps
	// them cheap (the message is built only if the panic is printed).
	if bs, i := p.blocks, int(id); uint(i) < uint(len(bs)) {
		return bs[i].refs
	}
	panic(rangeError{int(id), len(p.blocks)})
}

// IsFree reports whether id is on the free list. REQUIRES: id in [0, Total).
func (p *Pool) IsFree(id BlockID) bool {
	if bs, i := p.blocks, int(id); uint(i) < uint(len(bs)) {
		return bs[i].state == stateFree
	}
	panic(rangeError{int(id), len(p.blocks)})
}

// IsCached reports whether id is unreferenced with its content kept.
// REQUIRES: id in [0, Total).
func (p *Pool) IsCached(id BlockID) bool {
	if bs, i := p.blocks, int(id); uint(i) < uint(len(bs)) {
		return bs[i].state == stateCached
	}
	panic(rangeError{int(id), len(p.blocks)})
}

// CountCached returns how many of the n blocks from id on are cached
// (unreferenced with their content kept): IsCached over a run of blocks,
// in one pass without a range check per block, for a caller counting the
// evictable blocks of a long run of prefix hits. REQUIRES: n >= 0 and
// [id, id+n) within [0, Total).
func (p *Pool) CountCached(id BlockID, n int) int {
	if i := int(id); i < 0 || n < 0 || i > len(p.blocks)-n {
		if i >= 0 && n > 0 {
			// The range's last block, outside the pool; in int, where
			// a BlockID would wrap to one inside it, and saturating.
			i += min(n-1, math.MaxInt-i)
		}
		panic(rangeError{i, len(p.blocks)})
	}
	bs := p.blocks[id:][:n]
	// Past the reserved blocks (the leading IDs), bit 0 of a state is set
	// for a cached block only (checked below), so the count adds that
	// bit, sixteen blocks at a time: a compare per block costs twice as
	// much.
	if r := p.reserved - int(id); r > 0 {
		bs = bs[min(r, len(bs)):]
	}
	c := 0
	for ; len(bs) >= 16; bs = bs[16:] {
		b := (*[16]block)(bs)
		c += int(b[0].state&1 + b[1].state&1 + b[2].state&1 + b[3].state&1 +
			b[4].state&1 + b[5].state&1 + b[6].state&1 + b[7].state&1 +
			b[8].state&1 + b[9].state&1 + b[10].state&1 + b[11].state&1 +
			b[12].state&1 + b[13].state&1 + b[14].state&1 + b[15].state&1)
	}
	for i := range bs {
		c += int(bs[i].state & 1)
	}
	return c
}

// CountCached's bit: this fails to compile unless bit 0 of a state is set
// for stateCached and clear for stateFree and stateHeld.
const _ = uint8(stateCached&1 - stateFree&1 - stateHeld&1 - 1)

// Alloc takes one block off the free list with one reference. It returns
// ErrNoSpace when the free list is empty.
func (p *Pool) Alloc() (BlockID, error) {
	if p.nfree == 0 {
		return NoBlock, ErrNoSpace
	}
	id := p.pop()
	p.take(id)
	return id, nil
}

// AppendAlloc takes n blocks off the free list, each with one reference,
// and appends them to dst. It is all-or-nothing: when fewer than n blocks
// are free it returns dst unchanged and ErrNoSpace.
func (p *Pool) AppendAlloc(dst []BlockID, n int) ([]BlockID, error) {
	if n < 0 {
		return dst, fmt.Errorf("%w: negative block count %d", ErrInvalid, n)
	}
	if n > p.nfree {
		return dst, fmt.Errorf("%w: want %d blocks, %d free", ErrNoSpace, n, p.nfree)
	}
	for range n {
		id := p.pop()
		p.take(id)
		dst = append(dst, id)
	}
	return dst, nil
}

// Ref adds a reference to a held block.
func (p *Pool) Ref(id BlockID) {
	if !p.TryRef(id) {
		panic(p.misuse(opRef, id))
	}
}

// TryRef is Ref as TryClaim is Claim: it reports false, changing nothing,
// where Ref would panic (id out of range, not held, or at 2^31-1
// references), and inlines.
func (p *Pool) TryRef(id BlockID) bool {
	bs, i := p.blocks, int(id)
	if uint(i) >= uint(len(bs)) || bs[i].state != stateHeld || bs[i].refs == math.MaxInt32 {
		return false
	}
	bs[i].refs++
	return true
}

// Release drops one reference to a held block. When it was the last one the
// block goes back on the free list and Release returns true.
func (p *Pool) Release(id BlockID) bool {
	if !p.drop(id) {
		return false
	}
	p.blocks[id].state = stateFree
	p.push(id)
	return true
}

// ReleaseToCache drops one reference to a held block. When it was the last
// one the block becomes cached: unreferenced, not free, its content kept
// until Claim or Evict. It returns true in that case.
func (p *Pool) ReleaseToCache(id BlockID) bool {
	last, ok := p.TryReleaseToCache(id)
	if !ok {
		panic(p.misuse(opRelease, id))
	}
	return last
}

// TryReleaseToCache is ReleaseToCache for a caller that keeps its own
// protocol checks off the hot path: ok is false, and nothing changes,
// where ReleaseToCache would panic (id out of range or not held), and last
// is ReleaseToCache's result. Without the panic's call it fits the
// compiler's inlining budget, so the caller pays no call:
//
//	last, ok := pool.TryReleaseToCache(id)
//	if !ok {
//		pool.ReleaseToCache(id) // panics with the reason
//	}
func (p *Pool) TryReleaseToCache(id BlockID) (last, ok bool) {
	// drop's check and decrement, restated: sharing them through an
	// inlined helper measured 2.3M more instructions per W1 replay (the
	// state is then stored through a second bounds-checked index).
	bs, i := p.blocks, int(id)
	if uint(i) >= uint(len(bs)) || bs[i].state != stateHeld {
		return false, false
	}
	b := &bs[i]
	if b.refs--; b.refs > 0 {
		return false, true
	}
	b.state = stateCached
	p.releases++
	return true, true
}

// Claim gives a cached block one reference again: a prefix-cache hit on it,
// or its reuse for new content after its old content was given up.
func (p *Pool) Claim(id BlockID) {
	if !p.TryClaim(id) {
		panic(p.misuse(opClaim, id))
	}
}

// TryClaim is Claim as TryReleaseToCache is ReleaseToCache: it reports
// false, changing nothing, where Claim would panic (id out of range or not
// cached), and inlines.
func (p *Pool) TryClaim(id BlockID) bool {
	bs, i := p.blocks, int(id)
	if uint(i) >= uint(len(bs)) || bs[i].state != stateCached {
		return false
	}
	p.take(id)
	return true
}

// Evict moves a cached block to the free list, giving up its content.
func (p *Pool) Evict(id BlockID) {
	bs, i := p.blocks, int(id)
	if uint(i) >= uint(len(bs)) || bs[i].state != stateCached {
		panic(p.misuse(opEvict, id))
	}
	bs[i].state = stateFree
	p.push(id)
}

// Stats is a snapshot of a pool's occupancy and lifetime counters.
type Stats struct {
	// Total is the number of blocks, reserved ones included; Reserved, Free, Cached and Held
	// count blocks never handed out, on the free list, unreferenced with content kept, and
	// with at least one reference. The four sum to Total.
	Total, Reserved, Free, Cached, Held int
	// Allocs counts references created by Alloc, AppendAlloc and Claim;
	// Releases counts blocks whose last reference was dropped.
	Allocs, Releases uint64
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	return Stats{
		Total: len(p.blocks), Reserved: p.reserved, Free: p.nfree, Cached: p.Cached(), Held: p.Held(),
		Allocs: p.allocs, Releases: p.releases,
	}
}

// Check verifies conservation and the integrity of the free list. It is
// O(total) and meant for tests and debugging.
func (p *Pool) Check() error {
	var free, cached, held, reserved int
	for i := range p.blocks {
		s, refs := p.blocks[i].state, p.blocks[i].refs
		switch s {
		case stateFree:
			free++
		case stateCached:
			cached++
		case stateHeld:
			held++
		case stateReserved:
			reserved++
		}
		if (s == stateHeld) != (refs > 0) || refs < 0 {
			return fmt.Errorf("allocator: block %d in state %d has count %d", i, s, refs)
		}
	}
	if reserved != p.reserved || free != p.nfree || cached != p.Cached() || held != p.Held() || p.releases > p.allocs {
		return fmt.Errorf("allocator: counters free=%d cached=%d held=%d reserved=%d (allocs %d, releases %d), states say %d %d %d %d",
			p.nfree, p.Cached(), p.Held(), p.reserved, p.allocs, p.releases, free, cached, held, reserved)
	}
	if free+cached+held+reserved != len(p.blocks) {
		return fmt.Errorf("allocator: conservation broken: %d+%d+%d+%d != %d", free, cached, held, reserved, len(p.blocks))
	}
	seen := make([]bool, len(p.blocks))
	for i := range p.nfree {
		id := p.ring[(p.head+i)%len(p.ring)]
		if !p.Valid(id) || p.blocks[id].state != stateFree || seen[id] {
			return fmt.Errorf("allocator: free list entry %d is block %d, not free or listed twice", i, id)
		}
		seen[id] = true
	}
	return nil
}

// op names a state-changing operation for misuse.
type op uint8

const (
	opRef op = iota
	opRelease
	opClaim
	opEvict
)

// misuse returns the panic value for op on block id, which is out of
// range or not in the state op requires. The state-changing operations
// test both at once, in one comparison per condition (a reserved block is
// never held or cached, so the state test also rejects it), and call this
// only to panic: it is kept out of line so that they inline.
//
//go:noinline
func (p *Pool) misuse(o op, id BlockID) string {
	if !p.Valid(id) {
		return fmt.Sprintf("allocator: block %d out of range [%d, %d)", id, p.reserved, len(p.blocks))
	}
	switch o {
	case opRef:
		if p.blocks[id].state != stateHeld {
			return fmt.Sprintf("allocator: Ref of block %d, which has no reference", id)
		}
		return fmt.Sprintf("allocator: Ref of block %d, which already has 2^31-1 references", id)
	case opRelease:
		return fmt.Sprintf("allocator: release of block %d, which has no reference (double release)", id)
	case opClaim:
		return fmt.Sprintf("allocator: Claim of block %d, which is not cached", id)
	default:
		return fmt.Sprintf("allocator: Evict of block %d, which is not cached", id)
	}
}

// rangeError is the panic value of a read-only accessor given an ID
// outside [0, Total).
type rangeError struct {
	id    int
	total int
}

func (e rangeError) Error() string {
	return fmt.Sprintf("allocator: block %d out of range [0, %d)", e.id, e.total)
}

func (p *Pool) take(id BlockID) {
	p.blocks[id] = block{refs: 1, state: stateHeld}
	p.allocs++
}

// drop removes one reference and reports whether it was the last.
func (p *Pool) drop(id BlockID) bool {
	bs, i := p.blocks, int(id)
	if uint(i) >= uint(len(bs)) || bs[i].state != stateHeld {
		panic(p.misuse(opRelease, id))
	}
	b := &bs[i]
	b.refs--
	if b.refs > 0 {
		return false
	}
	p.releases++
	return true
}

func (p *Pool) push(id BlockID) {
	i := p.head + p.nfree
	if i >= len(p.ring) {
		i -= len(p.ring)
	}
	p.ring[i] = id
	p.nfree++
}

func (p *Pool) pop() BlockID {
	p.nfree--
	if p.order == FIFO {
		id := p.ring[p.head]
		p.head++
		if p.head == len(p.ring) {
			p.head = 0
		}
		return id
	}
	i := p.head + p.nfree
	if i >= len(p.ring) {
		i -= len(p.ring)
	}
	return p.ring[i]
}
