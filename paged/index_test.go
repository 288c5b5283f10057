package paged

import (
	"math/rand/v2"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestHashIndexAgainstMap drives the index and a Go map with the same
// random inserts, replacements and deletions, with hashes that collide in
// their leading bytes, and compares them after every step.
func TestHashIndexAgainstMap(t *testing.T) {
	const blocks = 64
	hashes := make([]Hash, blocks)
	x := newHashIndex(blocks, hashes)
	model := map[Hash]allocator.BlockID{}
	owner := map[allocator.BlockID]Hash{}
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		id := allocator.BlockID(r.IntN(blocks))
		if h, ok := owner[id]; ok {
			if model[h] == id {
				if r.IntN(2) == 0 {
					x.del(&h)
				} else {
					x.replaceOrDel(&h, 0, id, allocator.NoBlock)
				}
				delete(model, h)
			} else {
				// Not the entry of its hash: a conditional delete must
				// leave the entry alone.
				x.replaceOrDel(&h, 0, id, allocator.NoBlock)
			}
			delete(owner, id)
		} else {
			var h Hash
			h[31] = byte(r.IntN(200)) // only the last byte varies
			if _, taken := model[h]; taken && r.IntN(2) == 0 {
				continue
			}
			if old, taken := model[h]; taken {
				delete(owner, old)
			}
			hashes[id] = h
			if old, taken := model[h]; !taken && r.IntN(2) == 0 {
				if got, dup := x.getOrInsert(&h, 0, id); dup || got != id {
					t.Fatalf("step %d: getOrInsert of a new hash = %d, %v", step, got, dup)
				}
			} else if taken && r.IntN(2) == 0 {
				if got, dup := x.getOrInsert(&h, 0, id); !dup || got != old {
					t.Fatalf("step %d: getOrInsert of a present hash = %d, %v; want %d", step, got, dup, old)
				}
				x.replaceOrDel(&h, 0, old, id)
			} else {
				x.set(&h, id)
			}
			model[h] = id
			owner[id] = h
		}
		if x.len() != len(model) {
			t.Fatalf("step %d: index has %d entries, model %d", step, x.len(), len(model))
		}
		for h, want := range model {
			if got, ok := x.get(&h); !ok || got != want {
				t.Fatalf("step %d: get = %d, %v; want %d", step, got, ok, want)
			}
		}
	}
	var missing Hash
	missing[0] = 1
	if _, ok := x.get(&missing); ok {
		t.Fatal("found a hash never inserted")
	}
}
