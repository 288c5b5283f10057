package paged

import (
	"encoding/binary"
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// hashIndex maps a content hash to one block. It is an open-addressing
// table with linear probing over a fixed number of slots (at least twice
// the blocks that can hold content, so it never grows and never allocates
// after construction) and backward-shift deletion (no tombstones, so a long
// run of evictions and commits does not slow it down, as it does a Go map).
//
// A slot is one word: the block ID + 1 in the high half (0: empty) and the
// low 32 bits of the key's mixed hash in the low half. The low half is both
// a tag that rejects almost every mismatch without touching the key and
// the slot's home position, so a probe reads one array and a backward-shift
// delete never re-reads a key. The key itself is the hash the block holds,
// read from the owner's per-block hash array. REQUIRES: while id is in the
// index, hashes[id] holds the key it was inserted under.
//
// Keys carry a salt, the KV cache group (see Group): the same content
// cached for two groups is two entries. The salt is mixed into the tag
// (groupSalt(0) == 0, so a single-group manager pays nothing), and since
// two entries of one hash in different groups always differ in their tag,
// "tag equal and hash equal" still means "same key".
type hashIndex struct {
	slots  []uint64
	mask   uint64
	n      int
	hashes []Hash
}

func newHashIndex(blocks int, hashes []Hash) hashIndex {
	size := 16
	for size < 2*blocks {
		size *= 2
	}
	return hashIndex{slots: make([]uint64, size), mask: uint64(size - 1), hashes: hashes}
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

func slotID(s uint64) allocator.BlockID { return allocator.BlockID(s>>32) - 1 }

// groupSalt is the tag salt of group g's keys: an odd multiplier makes it
// one-to-one, and group 0's is 0.
func groupSalt(g int) uint32 { return uint32(g) * 0x9e3779b1 }

// find returns the slot holding (h, salt), or the empty slot where it
// would go, and the tag to store there.
func (x *hashIndex) find(h *Hash, salt uint32) (i uint64, tag uint32, ok bool) {
	tag = home(h) ^ salt
	for i = uint64(tag) & x.mask; ; i = (i + 1) & x.mask {
		s := x.slots[i]
		if s == 0 {
			return i, tag, false
		}
		if uint32(s) == tag && x.hashes[slotID(s)] == *h {
			return i, tag, true
		}
	}
}

func (x *hashIndex) get(h *Hash) (allocator.BlockID, bool) { return x.getIn(h, 0) }

func (x *hashIndex) getIn(h *Hash, salt uint32) (allocator.BlockID, bool) {
	i, _, ok := x.find(h, salt)
	if !ok {
		return allocator.NoBlock, false
	}
	return slotID(x.slots[i]), true
}

// getOrInsert returns the block h maps to, or maps h to id and reports
// false: one probe where a get and a set would take two.
func (x *hashIndex) getOrInsert(h *Hash, salt uint32, id allocator.BlockID) (allocator.BlockID, bool) {
	i, tag, ok := x.find(h, salt)
	if ok {
		return slotID(x.slots[i]), true
	}
	x.slots[i] = uint64(uint32(id)+1)<<32 | uint64(tag)
	x.n++
	return id, false
}

// set maps h to id, replacing any entry for h.
func (x *hashIndex) set(h *Hash, id allocator.BlockID) {
	i, tag, ok := x.find(h, 0)
	if !ok {
		x.n++
	}
	x.slots[i] = uint64(uint32(id)+1)<<32 | uint64(tag)
}

// del removes the entry for h, if any.
func (x *hashIndex) del(h *Hash) {
	i, _, ok := x.find(h, 0)
	if ok {
		x.delAt(i)
	}
}

// delAt empties slot i. Backward shift: later entries of the probe run move
// into the hole unless their home lies cyclically after the hole.
func (x *hashIndex) delAt(i uint64) {
	x.n--
	for j := (i + 1) & x.mask; x.slots[j] != 0; j = (j + 1) & x.mask {
		k := uint64(uint32(x.slots[j])) & x.mask
		if (j-k)&x.mask >= (j-i)&x.mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = 0
}

// replaceOrDel makes h, which maps to old, map to next instead, or
// removes it when next is NoBlock; an entry naming another block than old
// is left alone.
func (x *hashIndex) replaceOrDel(h *Hash, salt uint32, old, next allocator.BlockID) {
	i, tag, ok := x.find(h, salt)
	if !ok || slotID(x.slots[i]) != old {
		return
	}
	if next == allocator.NoBlock {
		x.delAt(i)
		return
	}
	x.slots[i] = uint64(uint32(next)+1)<<32 | uint64(tag)
}

func (x *hashIndex) len() int { return x.n }

// each calls fn for every entry; fn must not change the index.
func (x *hashIndex) each(fn func(h *Hash, id allocator.BlockID)) {
	for _, s := range x.slots {
		if s != 0 {
			id := slotID(s)
			fn(&x.hashes[id], id)
		}
	}
}

// clear empties the index.
func (x *hashIndex) clear() {
	clear(x.slots)
	x.n = 0
}
