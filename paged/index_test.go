package paged

import (
	"math/rand/v2"
	"slices"
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
			if old, taken := model[h]; taken && r.IntN(2) == 0 {
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

// TestHashIndexDeferred drives an index that applies its updates at once
// and one that defers them with the same random commits and removals of
// blocks (few distinct hashes, two salts, so duplicate lists grow and
// shrink), reading both at random moments, and checks that the deferring
// one always answers the same and, once settled, is the same: the same
// slots, duplicate lists and hashes.
func TestHashIndexDeferred(t *testing.T) {
	const blocks = 300 // more than maxDeferred, so the log also fills
	type side struct {
		x          hashIndex
		hashes     []Hash
		next, prev []allocator.BlockID
	}
	mk := func(deferred bool) *side {
		s := &side{hashes: make([]Hash, blocks), next: make([]allocator.BlockID, blocks), prev: make([]allocator.BlockID, blocks)}
		s.x = newHashIndex(blocks, s.hashes)
		s.x.track(s.next, s.prev, deferred)
		return s
	}
	now, later := mk(false), mk(true)
	cached := make([]bool, blocks)
	salt := make([]uint32, blocks)
	r := rand.New(rand.NewPCG(3, 4))
	deferredSome := false
	for step := range 50000 {
		id := allocator.BlockID(r.IntN(blocks))
		if cached[id] {
			now.x.remove(id, salt[id])
			later.x.remove(id, salt[id])
			cached[id] = false
		} else {
			var h Hash
			h[0] = byte(r.IntN(40))
			salt[id] = groupSalt(r.IntN(2))
			if later.x.dels > 0 {
				later.x.flush() // as blockPool.commit does
			}
			now.hashes[id], later.hashes[id] = h, h
			now.x.insert(id, salt[id])
			later.x.insert(id, salt[id])
			cached[id] = true
		}
		deferredSome = deferredSome || len(later.x.log) > 1
		switch r.IntN(20) {
		case 0:
			var h Hash
			h[0] = byte(r.IntN(40))
			g := groupSalt(r.IntN(2))
			a, aok := now.x.getIn(&h, g)
			b, bok := later.x.getIn(&h, g)
			if a != b || aok != bok {
				t.Fatalf("step %d: getIn = %d, %v deferred, %d, %v at once", step, b, bok, a, aok)
			}
		case 1:
			later.x.settle()
			if !slices.Equal(now.x.slots, later.x.slots) || now.x.n != later.x.n || !slices.Equal(now.hashes, later.hashes) {
				t.Fatalf("step %d: the settled index differs from the one updated at once", step)
			}
			for b := range blocks {
				if cached[b] && (now.next[b] != later.next[b] || now.prev[b] != later.prev[b]) {
					t.Fatalf("step %d: block %d's duplicate links differ", step, b)
				}
			}
		}
	}
	if !deferredSome {
		t.Fatal("no update was ever deferred")
	}
}
