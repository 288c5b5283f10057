package paged

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// hashIndex maps a content hash to one block. It is an open-addressing
// table of buckets, one 64-byte cache line each, over a fixed number of
// slots (three words for every block that can hold content, so it never
// grows and never allocates after construction). A bucket is seven slots
// and a control word: its entries fill its first slots in no particular
// order (a deletion moves the bucket's last entry into the hole), the
// control word counts them (low byte) and the entries whose home is this
// bucket or one before it but which live past it (the rest: "outbound",
// as in F14's tables), so a lookup stops at the first bucket of its probe
// that does not hold the key and sends none past it. A key lives in its
// home bucket unless that is full (about 2% of the buckets at the most
// cached blocks, a load of 8/21), so an insertion, lookup or deletion
// reads and writes one line, and a deletion moves at most one entry
// (no tombstones and no backward shift: linear probing over single
// slots, the table's layout until session 10, shifted a run back at
// about 40% of the deletions, a fifth of the index's time on W1-H).
//
// A slot is one word: the block ID + 1 in the high half (0: empty) and the
// low 32 bits of the key's mixed hash in the low half. The low half is both
// a tag that rejects almost every mismatch without touching the key and,
// scaled to the table (bucketOf), the entry's home bucket, so a probe
// reads one array and a deletion never re-reads a key. The key
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
	nb     uint64 // buckets: len(slots) / bucketSlots
	n      int
	hashes []Hash

	// The device index (blockPool's) also keeps, per block, the duplicate
	// lists, each hash's circular list of the blocks holding it in
	// insertion order, and may defer its updates: see insert and flush.
	// REQUIRES: nothing reads the slots or meta while log is not empty;
	// every method that reads them flushes first, and code outside reads
	// meta only after such a method (or after settle), but for
	// blockLinks.cached, which is never deferred.
	meta []blockLinks
	// log[:nlog] are the deferred updates; the last slot (log[lim]) filled
	// fills the log (lim 0: updates are applied at once).
	// REQUIRES: the log's inserts all come before its removals (an
	// index with removals logged is flushed before an insert is, as
	// blockPool.commit does), so flush applies them in two loops.
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
	// cached is blockPool's per-block flag, not the index's: the block's
	// content is committed (blockPool.hasContent). It sits here, in
	// padding the entry had, rather than in an array of its own, so that
	// an allocation that reads it for its victim brings in the line the
	// victim's deferred removal reads next, and a commit writes the line
	// its deferred insert writes. The pool sets it at once; the index
	// never writes it (its updates store the other fields one by one).
	cached bool
	// group is the KV cache group whose content the block holds
	// (blockPool.groupOf; 0 with one group), the pool's too, written with
	// cached: in the line a commit writes anyway, where a byte array of
	// its own cost a write miss a commit of a hybrid manager, and in the
	// line a guess reads for head. It outlives the content (an uncached
	// block keeps the group of what it held).
	group uint8
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

// bucketSlots is the words of a bucket, its entries then its control
// word; bucketCount masks the control word's count of entries, and one
// outbound entry adds bucketOut.
const (
	bucketSlots = 8
	bucketLen   = bucketSlots - 1
	bucketCount = 0xff
	bucketOut   = 1 << 8
)

func newHashIndex(blocks int, hashes []Hash) hashIndex {
	nb := max(2, (3*blocks+bucketSlots-1)/bucketSlots)
	return hashIndex{slots: make([]uint64, nb*bucketSlots), nb: uint64(nb), hashes: hashes}
}

// bucketOf is the first slot of tag's home bucket: the tag scaled to the
// number of buckets (a multiply and a shift rather than a division, since
// it need not be a power of two).
func (x *hashIndex) bucketOf(tag uint32) uint64 { return (uint64(tag) * x.nb >> 32) * bucketSlots }

// bucketAt is the bucket whose first slot is b, with one bounds check
// (slicing it out would make two): the table is whole buckets and b
// starts one, so the bucket lies inside it.
func bucketAt(slots []uint64, b uint64) *[bucketSlots]uint64 {
	return (*[bucketSlots]uint64)(unsafe.Pointer(&slots[b]))
}

// nextBucket is the first slot of the bucket after the one at b, wrapping
// around.
func (x *hashIndex) nextBucket(b uint64) uint64 {
	if b += bucketSlots; b == uint64(len(x.slots)) {
		return 0
	}
	return b
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

// find returns the slot holding (h, salt), or false, and the key's tag.
func (x *hashIndex) find(h *Hash, salt uint32) (i uint64, tag uint32, ok bool) {
	tag = home(h) ^ salt
	i, ok = x.findTag(h, tag)
	return i, tag, ok
}

// findTag is find with the tag computed: the slot holding (h, tag), or
// false.
// The probe also ends after every bucket: churn can leave each bucket
// counting an entry sent past it (filled once, emptied since), a cycle
// that no bucket of the probe ends.
func (x *hashIndex) findTag(h *Hash, tag uint32) (i uint64, ok bool) {
	b := x.bucketOf(tag)
	for range x.nb {
		bk := bucketAt(x.slots, b)
		c := bk[bucketLen]
		for j, s := range bk[:c&bucketCount] {
			if uint32(s) == tag && equal(&x.hashes[slotID(s)], h) {
				return b + uint64(j), true
			}
		}
		if c < bucketOut {
			return 0, false
		}
		b = x.nextBucket(b)
	}
	return 0, false
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
	if ok {
		x.slots[i] = uint64(uint32(id)+1)<<32 | uint64(tag)
		return
	}
	x.add(uint64(uint32(id)+1)<<32 | uint64(tag))
}

// add stores the entry s of a key not in the index: in the first bucket of
// its probe with room, counting it outbound in the full ones before.
func (x *hashIndex) add(s uint64) {
	slots := x.slots
	for b := x.bucketOf(uint32(s)); ; b = x.nextBucket(b) {
		c := slots[b+bucketLen]
		if n := c & bucketCount; n < bucketLen {
			slots[b+n] = s
			slots[b+bucketLen] = c + 1
			x.n++
			return
		}
		slots[b+bucketLen] = c + bucketOut
	}
}

// del removes the entry for h, if any.
func (x *hashIndex) del(h *Hash) {
	x.settle()
	i, _, ok := x.find(h, 0)
	if ok {
		x.delAt(i)
	}
}

// delAt empties slot i: the last entry of its bucket moves into it, and
// the buckets from the entry's home up to its own count it outbound no
// more.
func (x *hashIndex) delAt(i uint64) {
	x.n--
	slots := x.slots
	b := i &^ (bucketSlots - 1)
	for h := x.bucketOf(uint32(slots[i])); h != b; h = x.nextBucket(h) {
		slots[h+bucketLen] -= bucketOut
	}
	c := slots[b+bucketLen]
	last := b + c&bucketCount - 1
	slots[i] = slots[last]
	slots[last] = 0
	slots[b+bucketLen] = c - 1
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
// by one, each probe waits for its own cache miss. In a table of
// touchBlocks blocks or more, flush first touches, chunk by chunk, every
// removal's entry in meta (its tag comes from it), then every update's
// home bucket: two short loops of loads that do not depend on each other,
// so their misses overlap (a loop of a chunk's updates fits the core's
// reorder window, one that also applied them would not). The updates
// themselves then find their lines in the cache (an insert only stores to
// its entry in meta, which waits for no miss). A removal's tag read for
// the touch is a guess (an insert of the same block earlier in the chunk
// changes it), so the removal reads it again. A smaller table stays in
// the core's caches and is not cut into chunks.
//
// The inserts come first (see log) and are applied by one loop
// (inserts), the removals by another (removals), so no branch per update
// picks the kind. The common updates are applied in those loops' inner
// loops, which call nothing: an insert of a key whose tag no entry of its
// home bucket holds, when the bucket has room and sent no entry past it,
// and a removal of a block alone with its key that lives in its home
// bucket. The others leave the inner loop for link, unlink or delAt and
// come back. A call inside the loop the common updates take (as until
// session 14) makes the compiler save and reload the loop's values around
// it and reload them at every update, the common ones too: about ten
// instructions an update. The slices and the table's size are read from
// x into locals: a store through one of them might change x's fields as
// far as the compiler knows.
func (x *hashIndex) flush() {
	log := x.log[:x.nlog]
	ins := len(log) - x.dels // the inserts, first (see log)
	if !x.touch {
		// Chunks matter only for the touching loops: the inserts, then
		// the removals, is the log's order.
		x.inserts(log[:ins])
		x.removals(log[ins:])
		x.nlog, x.dels = 0, 0
		return
	}
	meta, slots := x.meta, x.slots
	nb := uint64(len(slots)) / bucketSlots
	for len(log) > 0 {
		c := log[:min(flushChunk, len(log))]
		log = log[len(c):]
		var sink uint64
		for i := range c {
			if id := c[i].id; id < 0 {
				t := meta[^id].tag
				c[i].tag = t
				sink += uint64(t)
			}
		}
		for i := range c {
			sink += slots[(uint64(c[i].tag)*nb>>32)*bucketSlots+bucketLen]
		}
		x.sink += sink
		k := min(ins, len(c))
		ins -= k
		x.inserts(c[:k])
		x.removals(c[k:])
	}
	x.nlog, x.dels = 0, 0
}

// inserts applies logged inserts (flush). The common one is applied in
// the inner loop, which calls nothing and keeps few values live, so that
// the compiler holds them in registers across it (a call in the loop made
// it save and reload every one of them at each update, about as many
// instructions as the update); the others leave it for link and come back.
func (x *hashIndex) inserts(ops []indexOp) {
	meta, base := x.meta, unsafe.Pointer(unsafe.SliceData(x.slots))
	nb := x.nb
	slow := 0 // the updates link applied (and counted)
	for i := 0; i < len(ops); i++ {
		for ; i < len(ops); i++ {
			id, tag := ops[i].id, ops[i].tag
			if id < 0 {
				panic("paged: index update log has an insert after a removal")
			}
			// A new key goes to its home bucket; an entry with the
			// same tag may hold the same key, and a full bucket or
			// one that sent entries on needs the general path (link).
			bk := homeBucket(base, tag, nb)
			cw := bk[bucketLen]
			n := cw & bucketCount
			// The empty slots are 0 and match only tag 0, which takes
			// the general path too; the compares, almost never true,
			// are branches the core predicts, unlike a loop over the
			// entries, whose exit it would miss. The last slot needs no
			// compare: a bucket that fills it is full, and an empty one
			// matches only tag 0.
			if cw >= bucketOut || n == bucketLen || tag == 0 ||
				uint32(bk[0]) == tag || uint32(bk[1]) == tag || uint32(bk[2]) == tag ||
				uint32(bk[3]) == tag || uint32(bk[4]) == tag || uint32(bk[5]) == tag {
				break
			}
			bk[n&(bucketSlots-1)] = uint64(uint32(id)+1)<<32 | uint64(tag)
			bk[bucketLen] = cw + 1
			m := &meta[id] // its cached flag is the pool's (see blockLinks)
			m.next, m.prev, m.tag, m.head = id, id, tag, true
		}
		if i < len(ops) {
			x.link(ops[i].id, ops[i].tag)
			slow++
		}
	}
	x.n += len(ops) - slow
}

// homeBucket is the bucket of tag's home in a table of nb buckets from
// base (bucketOf): tag*nb>>32 < nb, so it lies in the table, and no
// bounds check is needed.
func homeBucket(base unsafe.Pointer, tag uint32, nb uint64) *[bucketSlots]uint64 {
	return (*[bucketSlots]uint64)(unsafe.Add(base, (uint64(tag)*nb>>32)*(bucketSlots*8)))
}

// removals applies logged removals (flush), the common one in a loop
// that calls nothing, as inserts does.
func (x *hashIndex) removals(ops []indexOp) {
	meta, base := x.meta, unsafe.Pointer(unsafe.SliceData(x.slots))
	nb := x.nb
	slow := 0 // the updates unlink or delAt applied (and counted)
	for i := 0; i < len(ops); i++ {
		for ; i < len(ops); i++ {
			id := ^ops[i].id
			if id < 0 {
				panic("paged: index update log has an insert after a removal")
			}
			m := &meta[id]
			if !m.head || m.next != id {
				break // a duplicate list changes: unlink
			}
			// The head of no duplicates: a slot holds exactly its ID and
			// tag, in its home bucket unless that one sent entries on.
			want := uint64(uint32(id)+1)<<32 | uint64(m.tag)
			bk := homeBucket(base, m.tag, nb)
			// Which slot holds it (at most one does), by arithmetic
			// rather than a loop whose exit the core would miss.
			j := (is(bk[1], want) + 2*is(bk[2], want) + 3*is(bk[3], want) +
				4*is(bk[4], want) + 5*is(bk[5], want) + 6*is(bk[6], want)) & (bucketSlots - 1)
			if bk[j] != want {
				break // past its home bucket: slotOf and delAt
			}
			m.head = false
			cw := bk[bucketLen]
			last := (cw&bucketCount - 1) & (bucketSlots - 1)
			bk[j] = bk[last]
			bk[last] = 0
			bk[bucketLen] = cw - 1
		}
		if i < len(ops) {
			id := ^ops[i].id
			if m := &meta[id]; !m.head || m.next != id {
				x.unlink(id) // counts its own
			} else {
				m.head = false
				x.delAt(x.slotOf(uint64(uint32(id)+1)<<32 | uint64(m.tag)))
			}
			slow++
		}
	}
	x.n -= len(ops) - slow
}

// is is 1 if a == b, else 0, without a branch.
func is(a, b uint64) uint64 {
	if a == b {
		return 1
	}
	return 0
}

// slotOf returns the slot holding the entry s, which is in the index.
func (x *hashIndex) slotOf(s uint64) uint64 {
	for b := x.bucketOf(uint32(s)); ; b = x.nextBucket(b) {
		bk := bucketAt(x.slots, b)
		c := bk[bucketLen]
		for j, e := range bk[:c&bucketCount] {
			if e == s {
				return b + uint64(j)
			}
		}
		if c < bucketOut {
			panic("paged: index entry of a block heading its key is missing")
		}
	}
}

// link inserts block id with tag: a new entry, or the tail of the
// duplicates of the block the key maps to.
func (x *hashIndex) link(id allocator.BlockID, tag uint32) {
	b := &x.meta[id]
	i, ok := x.findTag(&x.hashes[id], tag)
	if !ok {
		x.add(uint64(uint32(id)+1)<<32 | uint64(tag))
		b.next, b.prev, b.tag, b.head = id, id, tag, true
		return
	}
	head := slotID(x.slots[i])
	tail := x.meta[head].prev
	b.next, b.prev, b.tag, b.head = head, tail, tag, false
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
	i := x.slotOf(uint64(uint32(id)+1)<<32 | uint64(tag))
	if next == allocator.NoBlock {
		x.delAt(i)
	} else {
		x.slots[i] = uint64(uint32(next)+1)<<32 | uint64(tag)
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
	for b := 0; b < len(x.slots); b += bucketSlots {
		for _, s := range x.slots[b:][:x.slots[b+bucketLen]&bucketCount] {
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
