package paged

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestHashIndexLookupEndsWhenEveryBucketSentOn checks that a lookup of an
// absent key ends when every bucket of the table counts an entry sent past
// it: each bucket in turn is filled past its room by keys homed there and
// then emptied of all but the one that overflowed into the next bucket,
// which leaves a table far from full (one entry a bucket) whose probe
// never meets a bucket that sent nothing on. Hashes a caller supplies can
// be chosen this way; churn on a small pool can also reach it.
func TestHashIndexLookupEndsWhenEveryBucketSentOn(t *testing.T) {
	const blocks = 16
	hashes := make([]Hash, blocks)
	x := newHashIndex(blocks, hashes)
	next := uint64(0)
	homed := func(b uint64) Hash { // a new hash whose home bucket is b
		for ; ; next++ {
			var h Hash
			binary.LittleEndian.PutUint64(h[8:], next)
			if x.bucketOf(home(&h)) == b*bucketSlots {
				next++
				return h
			}
		}
	}
	used := make([]bool, blocks)
	free := func() allocator.BlockID {
		for id, u := range used {
			if !u {
				used[id] = true
				return allocator.BlockID(id)
			}
		}
		t.Fatal("no free block")
		return 0
	}
	for b := range x.nb {
		var ids []allocator.BlockID
		for range bucketLen + 1 {
			id := free()
			hashes[id] = homed(b)
			x.set(&hashes[id], id)
			ids = append(ids, id)
		}
		for _, id := range ids[:bucketLen] {
			x.del(&hashes[id])
			used[id] = false
		}
	}
	if err := bucketsConsistent(&x); err != nil {
		t.Fatal(err)
	}
	if x.len() != int(x.nb) {
		t.Fatalf("%d entries, want one a bucket (%d)", x.len(), x.nb)
	}
	done := make(chan bool, 1)
	go func() {
		var absent Hash
		absent[0] = 1
		_, ok := x.get(&absent)
		done <- ok
	}()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("found a hash never inserted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lookup of an absent key probes forever when every bucket counts an outbound entry")
	}
}
