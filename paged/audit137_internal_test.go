package paged

import (
	"encoding/binary"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// The ninetieth round of mutation testing (docs/testing.md): the hash
// index of cached blocks (index.go).

// TestAudit137HomeMixesEveryWord: home spreads hashes that differ in one
// 8-byte word only, whichever word it is (hashes a caller supplies, such
// as another engine's 64-bit hashes, need not vary in any one word): 64
// such hashes have 64 different homes, in more than half of a 64-bucket
// table's buckets. A word left out of the mix would give them all one
// home bucket, which takes seven, sends the rest on, and makes every
// lookup of them probe a run of full buckets.
func TestAudit137HomeMixesEveryWord(t *testing.T) {
	x := newHashIndex(64*bucketSlots/3, nil)
	if x.nb != 64 {
		t.Fatalf("%d buckets, want 64", x.nb)
	}
	for w := range 4 {
		tags := map[uint32]bool{}
		buckets := map[uint64]bool{}
		for v := range uint64(64) {
			var h Hash
			binary.LittleEndian.PutUint64(h[8*w:], v)
			tags[home(&h)] = true
			buckets[x.bucketOf(home(&h))] = true
		}
		if len(tags) != 64 || len(buckets) <= 32 {
			t.Errorf("word %d: 64 hashes have %d homes in %d buckets of %d", w, len(tags), len(buckets), x.nb)
		}
	}
}

// TestAudit137DeferredLenCountsLoggedUpdates: len applies the logged
// updates first, as every other read of a deferring index does: it
// counts the keys committed and removed since the last flush.
func TestAudit137DeferredLenCountsLoggedUpdates(t *testing.T) {
	d := newIndexSide(16, 16, true, false)
	for id := range allocator.BlockID(5) {
		d.hashes[id][0] = byte(id + 1)
		d.x.apply(d.x.insert(id, home(&d.hashes[id])))
	}
	if d.x.nlog != 5 {
		t.Fatalf("%d updates logged, want 5", d.x.nlog)
	}
	if n := d.x.len(); n != 5 {
		t.Fatalf("len after 5 logged inserts = %d", n)
	}
	d.x.apply(d.x.remove(2))
	if n := d.x.len(); n != 4 {
		t.Fatalf("len after a logged removal = %d", n)
	}
}
