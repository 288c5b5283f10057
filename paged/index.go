package paged

import (
	"encoding/binary"
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// hashIndex maps a content hash to one block. It is an open-addressing
// table with linear probing over a fixed number of slots (three times the
// blocks that can hold content, so it never grows and never allocates
// after construction) and backward-shift deletion (no tombstones, so a long
// run of evictions and commits does not slow it down, as it does a Go map).
// At a load of at most a third rather than a half (the power-of-two table
// of twice the blocks it was), probes, inserts and a delete's backward
// shift walk shorter runs, for 8 more bytes a block: the W1 and W1-H
// managers measured 3% and 4.5% faster, replays of both sizes alternated
// in one process (four times the blocks measured 7.5% on W1-H but
// breaks the 96-byte metadata budget; eight gained nothing more).
//
// A slot is one word: the block ID + 1 in the high half (0: empty) and the
// low 32 bits of the key's mixed hash in the low half. The low half is both
// a tag that rejects almost every mismatch without touching the key and,
// scaled to the table (pos), the slot's home position, so a probe reads
// one array and a backward-shift delete never re-reads a key. The key
// itself is the hash the block holds, read from the owner's per-block
// hash array. REQUIRES: while id is in the
// index, hashes[id] holds the key it was inserted under.
//
// Keys carry a salt, the KV cache group (see Group): the same content
// cached for two groups is two entries. The salt is mixed into the tag
// (groupSalt(0) == 0, so a single-group manager pays nothing), and since
// two entries of one hash in different groups always differ in their tag,
// "tag equal and hash equal" still means "same key".
type hashIndex struct {
	slots  []uint64
	size   uint64 // len(slots)
	n      int
	hashes []Hash

	// The device index (blockPool's) also keeps, per block, the duplicate
	// lists, each hash's circular list of the blocks holding it in
	// insertion order, and may defer its updates: see insert and flush.
	// REQUIRES: nothing reads the slots or meta while log is not empty;
	// every method that reads them flushes first, and code outside reads
	// meta only after such a method (or after settle).
	meta []blockLinks
	// log[:nlog] are the deferred updates; the last slot (log[lim]) filled
	// fills the log (lim 0: updates are applied at once).
	log  []indexOp
	nlog int
	lim  int
	dels int    // removals in log
	sink uint64 // keeps flush's touching loads alive
	// touch: flush touches the lines its updates need before applying
	// them; not for a table small enough to stay in the core's cache.
	touch bool
}

// blockLinks is what the device index keeps of one block, in one 16-byte
// entry (four to a cache line) rather than four arrays, so that
// committing or removing a block at a random address of a large pool
// touches one line of it, not four: its duplicate links (next, prev), the
// tag it was inserted with (so a removal finds the block's slot, the one
// holding exactly its ID and tag, without reading its 32-byte hash), and
// whether it heads its key's duplicates, the block the key's slot names
// and a lookup answers (a shortcut that guesses a block, blockPool.guess,
// checks it without probing, and a removal of a block that is not a head
// changes only the list).
type blockLinks struct {
	next, prev allocator.BlockID
	tag        uint32
	head       bool
}

// indexOp is a deferred update: block id was committed (inserted with
// tag, its salted key's, computed while the hash just written is in the
// cache) or, stored as ^id (negative), gave up its content (removed, found
// by its stored tag, which flush fills in). Eight bytes, so logging one is
// one store.
type indexOp struct {
	id  allocator.BlockID
	tag uint32
}

// maxDeferred bounds the log: enough updates for their cache misses to
// overlap (a core keeps a few dozen in flight), few enough to stay in the
// L1 cache while flush makes three passes over them.
const maxDeferred = 256

// flushChunk is how many updates flush touches before applying them.
const flushChunk = 32

// touchBlocks is the fewest blocks for which flush touches lines ahead:
// below it the table and the duplicate lists (40 bytes a block) stay in a
// core's L2 cache, whose latency the core hides without help, and the
// touching loops only add instructions (about 20 an update).
const touchBlocks = 1 << 15

func newHashIndex(blocks int, hashes []Hash) hashIndex {
	size := max(16, 3*blocks)
	return hashIndex{slots: make([]uint64, size), size: uint64(size), hashes: hashes}
}

// pos is the home slot of tag: the tag scaled to the table's size (a
// multiply and a shift rather than a division, since the size need not
// be a power of two).
func (x *hashIndex) pos(tag uint32) uint64 { return uint64(tag) * x.size >> 32 }

// next is the slot after i, wrapping around.
func (x *hashIndex) next(i uint64) uint64 {
	if i++; i == x.size {
		return 0
	}
	return i
}

// home mixes all 32 bytes of h: hashes that callers precompute (trace IDs,
// another engine's 64-bit hashes) need not be uniform in any one word.
func home(h *Hash) uint32 {
	a := binary.LittleEndian.Uint64(h[0:8])
	b := binary.LittleEndian.Uint64(h[8:16])
	c := binary.LittleEndian.Uint64(h[16:24])
	d := binary.LittleEndian.Uint64(h[24:32])
	hi, lo := bits.Mul64(a^0x9e3779b97f4a7c15, b^c^0xc2b2ae3d27d4eb4f)
	k := (hi ^ lo ^ d) * 0xff51afd7ed558ccd
	return uint32(k ^ k>>32)
}

// equal reports whether a and b are the same hash, in four word loads
// rather than a call to the runtime's memory comparison.
func equal(a, b *Hash) bool {
	x := binary.LittleEndian.Uint64(a[0:8]) ^ binary.LittleEndian.Uint64(b[0:8])
	x |= binary.LittleEndian.Uint64(a[8:16]) ^ binary.LittleEndian.Uint64(b[8:16])
	x |= binary.LittleEndian.Uint64(a[16:24]) ^ binary.LittleEndian.Uint64(b[16:24])
	x |= binary.LittleEndian.Uint64(a[24:32]) ^ binary.LittleEndian.Uint64(b[24:32])
	return x == 0
}

func slotID(s uint64) allocator.BlockID { return allocator.BlockID(s>>32) - 1 }

// groupSalt is the tag salt of group g's keys: an odd multiplier makes it
// one-to-one, and group 0's is 0.
func groupSalt(g int) uint32 { return uint32(g) * 0x9e3779b1 }

// find returns the slot holding (h, salt), or the empty slot where it
// would go, and the tag to store there.
func (x *hashIndex) find(h *Hash, salt uint32) (i uint64, tag uint32, ok bool) {
	tag = home(h) ^ salt
	i, ok = x.findTag(h, tag)
	return i, tag, ok
}

// findTag is find with the tag computed.
func (x *hashIndex) findTag(h *Hash, tag uint32) (i uint64, ok bool) {
	for i = x.pos(tag); ; i = x.next(i) {
		s := x.slots[i]
		if s == 0 {
			return i, false
		}
		if uint32(s) == tag && equal(&x.hashes[slotID(s)], h) {
			return i, true
		}
	}
}

// track makes x keep the duplicate lists of blocks [0, blocks) and,
// with deferred, defer its updates to the next read (see flush); without,
// each update is flushed as it is made.
func (x *hashIndex) track(blocks int, deferred bool) {
	x.meta = make([]blockLinks, blocks)
	x.log = make([]indexOp, 1)
	if deferred {
		x.log = make([]indexOp, maxDeferred)
	}
	x.lim = len(x.log) - 1
	x.touch = blocks >= touchBlocks
}

// settle applies the deferred updates, if any.
func (x *hashIndex) settle() {
	if x.nlog > 0 {
		x.flush()
	}
}

func (x *hashIndex) get(h *Hash) (allocator.BlockID, bool) { return x.getIn(h, 0) }

func (x *hashIndex) getIn(h *Hash, salt uint32) (allocator.BlockID, bool) {
	x.settle()
	i, _, ok := x.find(h, salt)
	if !ok {
		return allocator.NoBlock, false
	}
	return slotID(x.slots[i]), true
}

// set maps h to id, replacing any entry for h.
func (x *hashIndex) set(h *Hash, id allocator.BlockID) {
	x.settle()
	i, tag, ok := x.find(h, 0)
	if !ok {
		x.n++
	}
	x.slots[i] = uint64(uint32(id)+1)<<32 | uint64(tag)
}

// del removes the entry for h, if any.
func (x *hashIndex) del(h *Hash) {
	x.settle()
	i, _, ok := x.find(h, 0)
	if ok {
		x.delAt(i)
	}
}

// delAt empties slot i. Backward shift: later entries of the probe run move
// into the hole unless their home lies cyclically after the hole.
func (x *hashIndex) delAt(i uint64) {
	x.n--
	slots, size := x.slots, x.size
	for j := x.next(i); ; {
		s := slots[j]
		if s == 0 {
			break
		}
		// dist(home, j) >= dist(i, j), with size read once
		home, dh, di := uint64(uint32(s))*size>>32, j, j
		if j < home {
			dh += size
		}
		if j < i {
			di += size
		}
		if dh-home >= di-i {
			slots[i] = s
			i = j
		}
		if j++; j == size {
			j = 0
		}
	}
	slots[i] = 0
}

// insert records that block id, whose hashes[id] is set, holds its key,
// whose tag (home of the hash, salted) is tag: the index's entry if the key
// is new, else the last of the key's duplicates. The update is deferred,
// and insert reports whether it filled the log, which the caller then
// applies (flush; an index that does not defer is full at every update).
// Leaving the call to the caller keeps insert within the compiler's
// inlining budget; an update logged past a full log panics (index out of
// range).
func (x *hashIndex) insert(id allocator.BlockID, tag uint32) (full bool) {
	n := x.nlog
	x.log[n] = indexOp{id, tag}
	x.nlog = n + 1
	return n == x.lim
}

// remove takes block id out of the index and its duplicate list: the
// index entry passes to the next duplicate if id headed the list.
// hashes[id] is left as it is (nothing reads the hash of a block out of
// the index). Deferred and reported as insert is; until it is applied
// hashes[id] must not change, since the deferred updates before the
// removal may compare keys with it, so a deferring index is flushed
// before a block's hash is rewritten (blockPool.commit).
func (x *hashIndex) remove(id allocator.BlockID) (full bool) {
	n := x.nlog
	x.log[n] = indexOp{id: ^id}
	x.nlog = n + 1
	x.dels++
	return n == x.lim
}

// flush applies the deferred updates in the order they were made, so the
// index ends exactly as if each had been applied at once (the same slots,
// the same duplicate order). The updates of one engine step come
// together (every sequence filling a block, or evicting one), and each
// touches lines at random addresses of a large table: applying them one
// by one, each probe waits for its own cache miss. flush first touches,
// chunk by chunk, every removal's entry in meta (its tag comes from it),
// then every update's home slot: two short loops of loads that do not
// depend on each other, so their misses overlap (a loop of a chunk's
// updates fits the core's reorder window, one that also applied them would
// not). The updates themselves then find their lines in the cache (an
// insert only stores to its entry in meta, which waits for no miss). A
// removal's tag read for the touch is a guess (an insert of the same block
// earlier in the chunk changes it), so the removal reads it again.
//
// The common updates are applied in the loop itself: an insert of a key
// whose tag no slot of its run holds, and a removal of a block alone with
// its key, whose slot is emptied in place when the slot after it is empty
// (at the table's load of at most a third, most of them). The others call
// link, unlink or delAt. A call in the
// loop makes the compiler save and reload every value the loop keeps in a
// register, about as many instructions as the common cases take; so do
// the slices and the table's size read from x, which a store through one
// of them might change as far as the compiler knows, hence the locals.
func (x *hashIndex) flush() {
	log, meta, slots := x.log[:x.nlog], x.meta, x.slots
	size := uint64(len(slots))
	for len(log) > 0 {
		c := log[:min(flushChunk, len(log))]
		log = log[len(c):]
		if x.touch {
			var sink uint64
			for i := range c {
				if id := c[i].id; id < 0 {
					t := meta[^id].tag
					c[i].tag = t
					sink += uint64(t)
				}
			}
			for i := range c {
				sink += slots[uint64(c[i].tag)*size>>32]
			}
			x.sink += sink
		}
	apply:
		for _, op := range c {
			id := op.id
			if id >= 0 {
				// A new key goes to the first empty slot of its run; a
				// slot with the same tag may hold the same key (link).
				tag := op.tag
				i := uint64(tag) * size >> 32
				for s := slots[i]; s != 0; s = slots[i] {
					if uint32(s) == tag {
						x.link(id, tag)
						continue apply
					}
					if i++; i == size {
						i = 0
					}
				}
				slots[i] = uint64(uint32(id)+1)<<32 | uint64(tag)
				x.n++
				meta[id] = blockLinks{next: id, prev: id, tag: tag, head: true}
				continue
			}
			id = ^id
			b := &meta[id]
			if !b.head || b.next != id {
				x.unlink(id) // a duplicate list changes
				continue
			}
			// The head of no duplicates: its slot holds exactly its ID
			// and tag, at or after its home.
			b.head = false
			tag := b.tag
			want := uint64(uint32(id)+1)<<32 | uint64(tag)
			i := uint64(tag) * size >> 32
			for s := slots[i]; s != want; s = slots[i] {
				if s == 0 {
					panic("paged: index entry of a block heading its key is missing")
				}
				if i++; i == size {
					i = 0
				}
			}
			j := i + 1
			if j == size {
				j = 0
			}
			if slots[j] != 0 {
				x.delAt(i) // later entries may shift back
				continue
			}
			slots[i] = 0
			x.n--
		}
	}
	x.nlog, x.dels = 0, 0
}

// link inserts block id with tag: a new entry, or the tail of the
// duplicates of the block the key maps to.
func (x *hashIndex) link(id allocator.BlockID, tag uint32) {
	b := &x.meta[id]
	i, ok := x.findTag(&x.hashes[id], tag)
	if !ok {
		x.slots[i] = uint64(uint32(id)+1)<<32 | uint64(tag)
		x.n++
		*b = blockLinks{next: id, prev: id, tag: tag, head: true}
		return
	}
	head := slotID(x.slots[i])
	tail := x.meta[head].prev
	*b = blockLinks{next: head, prev: tail, tag: tag}
	x.meta[tail].next, x.meta[head].prev = id, id
}

// unlink removes block id; its hash stays. If id heads its key's
// duplicates, the key's slot holds exactly id and its tag (no other key's
// slot names id), and passes to the next duplicate or is emptied;
// otherwise no slot names id and only the list changes.
func (x *hashIndex) unlink(id allocator.BlockID) {
	meta := x.meta
	b := &meta[id]
	tag, next, wasHead := b.tag, b.next, b.head
	b.head = false
	if next == id {
		next = allocator.NoBlock
	} else {
		prev := b.prev
		meta[prev].next, meta[next].prev = next, prev
	}
	if !wasHead {
		return
	}
	if next != allocator.NoBlock {
		meta[next].head = true
	}
	slots, size := x.slots, x.size
	want := uint64(uint32(id)+1)<<32 | uint64(tag)
	for i := x.pos(tag); slots[i] != 0; {
		if slots[i] != want {
			if i++; i == size {
				i = 0
			}
			continue
		}
		if next == allocator.NoBlock {
			x.delAt(i)
		} else {
			slots[i] = uint64(uint32(next)+1)<<32 | uint64(tag)
		}
		break
	}
}

// dupNext and dupPrev are block id's neighbours in its key's duplicate
// list (id itself when it is the only block holding the key).
// REQUIRES: the index is settled (see meta).
func (x *hashIndex) dupNext(id allocator.BlockID) allocator.BlockID { return x.meta[id].next }

func (x *hashIndex) dupPrev(id allocator.BlockID) allocator.BlockID { return x.meta[id].prev }

func (x *hashIndex) len() int {
	x.settle()
	return x.n
}

// each calls fn for every entry; fn must not change the index.
func (x *hashIndex) each(fn func(h *Hash, id allocator.BlockID)) {
	x.settle()
	for _, s := range x.slots {
		if s != 0 {
			id := slotID(s)
			fn(&x.hashes[id], id)
		}
	}
}

// clear empties the index.
func (x *hashIndex) clear() {
	x.settle()
	clear(x.slots)
	x.n = 0
}
