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
// Slots store only the block ID and a tag; the key itself is the hash the
// block holds, read from the owner's per-block hash array. REQUIRES: when
// set(h, id) is called, hashes[id] == *h, and it stays so until the entry
// is deleted or replaced.
type hashIndex struct {
	ids    []allocator.BlockID // NoBlock: empty
	tags   []uint32
	mask   uint64
	n      int
	hashes []Hash
}

func newHashIndex(blocks int, hashes []Hash) hashIndex {
	size := 16
	for size < 2*blocks {
		size *= 2
	}
	ids := make([]allocator.BlockID, size)
	for i := range ids {
		ids[i] = allocator.NoBlock
	}
	return hashIndex{ids: ids, tags: make([]uint32, size), mask: uint64(size - 1), hashes: hashes}
}

// home mixes all 32 bytes of h: hashes that callers precompute (trace IDs,
// another engine's 64-bit hashes) need not be uniform in any one word.
func home(h *Hash) uint64 {
	a := binary.LittleEndian.Uint64(h[0:8])
	b := binary.LittleEndian.Uint64(h[8:16])
	c := binary.LittleEndian.Uint64(h[16:24])
	d := binary.LittleEndian.Uint64(h[24:32])
	hi, lo := bits.Mul64(a^0x9e3779b97f4a7c15, b^c^0xc2b2ae3d27d4eb4f)
	return (hi ^ lo ^ d) * 0xff51afd7ed558ccd
}

func (x *hashIndex) find(h *Hash) (uint64, bool) {
	k := home(h)
	tag := uint32(k >> 32)
	for i := k & x.mask; ; i = (i + 1) & x.mask {
		id := x.ids[i]
		if id == allocator.NoBlock {
			return i, false
		}
		if x.tags[i] == tag && x.hashes[id] == *h {
			return i, true
		}
	}
}

func (x *hashIndex) get(h *Hash) (allocator.BlockID, bool) {
	i, ok := x.find(h)
	if !ok {
		return allocator.NoBlock, false
	}
	return x.ids[i], true
}

// set maps h to id, replacing any entry for h.
func (x *hashIndex) set(h *Hash, id allocator.BlockID) {
	i, ok := x.find(h)
	if !ok {
		x.n++
		x.tags[i] = uint32(home(h) >> 32)
	}
	x.ids[i] = id
}

// del removes the entry for h, if any.
func (x *hashIndex) del(h *Hash) {
	i, ok := x.find(h)
	if !ok {
		return
	}
	x.n--
	// Backward shift: pull later entries of the probe run into the hole
	// unless their home lies cyclically after the hole.
	for j := (i + 1) & x.mask; x.ids[j] != allocator.NoBlock; j = (j + 1) & x.mask {
		k := home(&x.hashes[x.ids[j]]) & x.mask
		if (j-k)&x.mask >= (j-i)&x.mask {
			x.ids[i], x.tags[i] = x.ids[j], x.tags[j]
			i = j
		}
	}
	x.ids[i] = allocator.NoBlock
}

func (x *hashIndex) len() int { return x.n }

// each calls fn for every entry; fn must not change the index.
func (x *hashIndex) each(fn func(h *Hash, id allocator.BlockID)) {
	for _, id := range x.ids {
		if id != allocator.NoBlock {
			fn(&x.hashes[id], id)
		}
	}
}

// clear empties the index.
func (x *hashIndex) clear() {
	for i := range x.ids {
		x.ids[i] = allocator.NoBlock
	}
	x.n = 0
}
