package fleet

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"

	"github.com/pagedkv/pagedkv/paged"
)

// table maps block hashes to Memory slots: open addressing with linear
// probing at most half full, backward-shift deletion (no tombstones), each
// entry carrying its 64-bit seeded hash so a probe rarely touches the slot
// arrays. The Go map it replaces spent most of a lookup hashing and
// comparing 32-byte keys; this one compares 8 bytes, then the full hash
// once. The hash mixes all four words of a block hash with a random
// per-table key (a multiply-fold, as wyhash does), so hashes that are not
// uniform in any one word (trace IDs, vLLM's 64-bit hashes) spread, and
// hash values chosen to collide in one table do not in another.
type table struct {
	k0, k1 uint64
	e      []tableEntry
	mask   int
}

type tableEntry struct {
	h    uint64
	slot int32 // slot+1; 0 marks an empty entry
}

func newTable(capacity int) table {
	n := int(tableLen(capacity)) // the callers' memory bounds keep it within int
	seed := maphash.MakeSeed()
	k0 := maphash.Comparable(seed, 0) | 1
	k1 := maphash.Comparable(seed, 1) | 1
	return table{k0: k0, k1: k1, e: make([]tableEntry, n), mask: n - 1}
}

// tableLen is the number of entries newTable(capacity) makes: a power
// of two of at least twice the capacity (in 64 bits, so that the
// estimates that bound a capacity see it whole where int is 32 bits).
func tableLen(capacity int) int64 {
	n := int64(1)
	for n < 2*int64(capacity) {
		n <<= 1
	}
	return n
}

// tableBytes is what newTable(capacity) allocates: tableLen's 16-byte
// entries (12 bytes where a uint64 aligns to 4: then an upper bound).
func tableBytes(capacity int) int64 {
	return tableLen(capacity) * 16
}

func (t *table) sum(h *paged.Hash) uint64 {
	a := binary.LittleEndian.Uint64(h[0:8])
	b := binary.LittleEndian.Uint64(h[8:16])
	c := binary.LittleEndian.Uint64(h[16:24])
	d := binary.LittleEndian.Uint64(h[24:32])
	hi1, lo1 := bits.Mul64(a^t.k0, b^t.k1)
	hi2, lo2 := bits.Mul64(c^t.k1, d^t.k0^hi1)
	return hi2 ^ lo2 ^ lo1
}

// same reports whether two hashes are equal, word by word (inlined, no
// call to the runtime's memequal).
func same(x, y *paged.Hash) bool {
	return binary.LittleEndian.Uint64(x[0:8]) == binary.LittleEndian.Uint64(y[0:8]) &&
		binary.LittleEndian.Uint64(x[8:16]) == binary.LittleEndian.Uint64(y[8:16]) &&
		binary.LittleEndian.Uint64(x[16:24]) == binary.LittleEndian.Uint64(y[16:24]) &&
		binary.LittleEndian.Uint64(x[24:32]) == binary.LittleEndian.Uint64(y[24:32])
}

// find returns the slot holding h; hashes is the slot -> hash array.
func (t *table) find(h *paged.Hash, hashes []paged.Hash) (int32, bool) {
	x := t.sum(h)
	for i := int(x) & t.mask; ; i = (i + 1) & t.mask {
		e := t.e[i]
		if e.slot == 0 {
			return 0, false
		}
		if e.h == x && same(&hashes[e.slot-1], h) {
			return e.slot - 1, true
		}
	}
}

// insert adds h at slot; h must be absent.
func (t *table) insert(h *paged.Hash, slot int32) {
	x := t.sum(h)
	i := int(x) & t.mask
	for t.e[i].slot != 0 {
		i = (i + 1) & t.mask
	}
	t.e[i] = tableEntry{h: x, slot: slot + 1}
}

// remove deletes h, which must be present at slot, and shifts the entries
// after it back so every probe sequence stays unbroken.
func (t *table) remove(h *paged.Hash, slot int32) {
	i := int(t.sum(h)) & t.mask
	for t.e[i].slot != slot+1 {
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; t.e[j].slot != 0; j = (j + 1) & t.mask {
		home := int(t.e[j].h) & t.mask
		// Move e[j] into the hole at i unless its home lies cyclically in
		// (i, j]: then it is already as close to home as it can be.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.e[i] = t.e[j]
			i = j
		}
	}
	t.e[i] = tableEntry{}
}
