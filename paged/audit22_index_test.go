package paged

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestHashIndexRapid is a model test of the device index (insert, remove,
// getIn, flush, the duplicate lists) against a map from key to its
// blocks in insertion order, with adversarial keys: their tags fall in one
// to three home buckets (the table's last and first among them, so runs
// cross the wrap), several keys share one tag with different hashes (the
// tag check passes and the hash check must reject), one hash is cached
// under several tags, tag 0 (the empty slot's) occurs, and the table may
// be driven to one free slot (more IDs than the pool sizes it for).
// Pools of 1 and 2 blocks and sizes that are not powers of two are drawn.
// An index deferring its updates (touching lines ahead or not) runs next
// to one applying them at once; the two must settle to the same slots and
// lists, and the bucket counts must match the entries after every check.
// drawIndexSize draws a pool of 1 to maxBlocks blocks and the block IDs
// the test uses: the pool's, or every slot of its table but one. probe
// is an index of that size, for its bucket count and home buckets.
func drawIndexSize(rt *rapid.T, maxBlocks int) (blocks, ids int, probe hashIndex) {
	blocks = rapid.IntRange(1, maxBlocks).Draw(rt, "blocks")
	probe = newHashIndex(blocks, nil)
	ids = blocks
	if rapid.Bool().Draw(rt, "nearFull") {
		// Every slot but one may hold an entry.
		ids = int(probe.nb)*bucketLen - 1
	}
	return blocks, ids, probe
}

func TestHashIndexRapid(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		blocks, ids, probe := drawIndexSize(rt, 40)
		touch := rapid.Bool().Draw(rt, "touch")
		now, later := newIndexSide(blocks, ids, false, touch), newIndexSide(blocks, ids, true, touch)

		// The keys: tags in a few home buckets, hashes from a small set.
		last := int(probe.nb) - 1
		homes := []int{last}
		for range rapid.IntRange(0, 2).Draw(rt, "extraHomes") {
			homes = append(homes, rapid.SampledFrom([]int{0, 0, last - 1, 1, last / 2}).Draw(rt, "home"))
		}
		type key struct {
			h    Hash
			salt uint32
		}
		nkeys := rapid.IntRange(1, 30).Draw(rt, "keys")
		nhash := rapid.IntRange(1, 8).Draw(rt, "hashes")
		var tags []uint32
		keys := make([]key, 0, nkeys)
		for range nkeys {
			var tag uint32
			switch {
			case len(tags) > 0 && rapid.IntRange(0, 3).Draw(rt, "shareTag") == 0:
				tag = tags[rapid.IntRange(0, len(tags)-1).Draw(rt, "tagOf")]
			case rapid.IntRange(0, 9).Draw(rt, "zeroTag") == 0:
				tag = 0
			default:
				b := homes[rapid.IntRange(0, len(homes)-1).Draw(rt, "homeOf")]
				tag = tagIn(&probe, b, rapid.Uint32Range(0, 1000).Draw(rt, "tagOffset"))
			}
			tags = append(tags, tag)
			var h Hash
			binary.LittleEndian.PutUint64(h[3:], uint64(rapid.IntRange(0, nhash-1).Draw(rt, "hash")))
			k := key{h, home(&h) ^ tag}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}

		model := map[key][]allocator.BlockID{}
		of := make([]int, ids) // the key index of a cached block, -1 if none
		for i := range of {
			of[i] = -1
		}
		check := func(step int) {
			later.x.settle()
			if err := bucketsConsistent(&now.x); err != nil {
				rt.Fatalf("step %d, at once: %v", step, err)
			}
			if err := bucketsConsistent(&later.x); err != nil {
				rt.Fatalf("step %d, deferred: %v", step, err)
			}
			if !slices.Equal(now.x.slots, later.x.slots) || now.x.n != later.x.n {
				rt.Fatalf("step %d: the settled index differs from the one updated at once", step)
			}
			n := 0
			for _, s := range []*indexSide{now, later} {
				for _, list := range model {
					if len(list) == 0 {
						continue
					}
					b := list[0]
					for j, want := range list {
						if b != want {
							rt.Fatalf("step %d: duplicate %d of %v is block %d", step, j, list, b)
						}
						if s.x.meta[b].head != (j == 0) {
							rt.Fatalf("step %d: duplicate %d of %v heads it: %v", step, j, list, s.x.meta[b].head)
						}
						b = s.x.dupNext(b)
					}
					if b != list[0] {
						rt.Fatalf("step %d: the duplicates %v do not close", step, list)
					}
				}
			}
			for _, list := range model {
				if len(list) > 0 {
					n++
				}
			}
			if now.x.len() != n || later.x.len() != n {
				rt.Fatalf("step %d: entries %d at once, %d deferred; model %d", step, now.x.len(), later.x.len(), n)
			}
		}

		steps := rapid.IntRange(100, 600).Draw(rt, "steps")
		for step := range steps {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 4: // commit a free block
				id := allocator.BlockID(rapid.IntRange(0, ids-1).Draw(rt, "id"))
				if of[id] >= 0 {
					continue
				}
				ki := rapid.IntRange(0, len(keys)-1).Draw(rt, "key")
				k := keys[ki]
				if later.x.dels > 0 {
					later.x.flush() // as blockPool.commit does
				}
				now.hashes[id], later.hashes[id] = k.h, k.h
				tag := home(&k.h) ^ k.salt
				now.x.apply(now.x.insert(id, tag))
				later.x.apply(later.x.insert(id, tag))
				model[k] = append(model[k], id)
				of[id] = ki
			case op < 7: // uncache a cached block (often a head)
				var cached []allocator.BlockID
				for id, ki := range of {
					if ki >= 0 {
						cached = append(cached, allocator.BlockID(id))
					}
				}
				if len(cached) == 0 {
					continue
				}
				id := rapid.SampledFrom(cached).Draw(rt, "victim")
				k := keys[of[id]]
				now.x.apply(now.x.remove(id))
				later.x.apply(later.x.remove(id))
				model[k] = slices.DeleteFunc(model[k], func(b allocator.BlockID) bool { return b == id })
				of[id] = -1
			case op < 9: // look a key up, or a hash never cached
				k := keys[rapid.IntRange(0, len(keys)-1).Draw(rt, "key")]
				if rapid.IntRange(0, 4).Draw(rt, "absent") == 0 {
					k.h[0] ^= 0xff // same tag, a hash never used
				}
				want := model[k]
				for _, s := range []*indexSide{now, later} {
					got, ok := s.x.getIn(&k.h, k.salt)
					if ok != (len(want) > 0) || (ok && got != want[0]) {
						rt.Fatalf("step %d: getIn = %d, %v; model %v", step, got, ok, want)
					}
				}
			default:
				check(step)
			}
		}
		check(steps)
	})
}

// tagIn returns a tag whose home bucket in x is b, off from the bucket's
// first tag by at most off (wrapped into the bucket's range).
func tagIn(x *hashIndex, b int, off uint32) uint32 {
	lo := (uint64(b)<<32 + x.nb - 1) / x.nb
	hi := (uint64(b+1)<<32 + x.nb - 1) / x.nb // first tag of the next bucket
	t := uint32(lo + uint64(off)%(hi-lo))
	if x.bucketOf(t) != uint64(b)*bucketSlots {
		panic(fmt.Sprintf("tagIn: tag %#x is not in bucket %d", t, b))
	}
	return t
}

// bucketsConsistent is checkBuckets for rapid: each bucket's entries fill
// its first slots and it counts them, its outbound count is the entries
// whose probe passes it, no entry is unreachable (a probe from its home
// reaches it without passing a bucket that sends nothing on), and the
// index counts its entries.
func bucketsConsistent(x *hashIndex) error {
	out := make([]uint64, x.nb)
	entries := 0
	for b := uint64(0); b < uint64(len(x.slots)); b += bucketSlots {
		c := x.slots[b+bucketLen]
		n := c & bucketCount
		if n > bucketLen {
			return fmt.Errorf("bucket %d counts %d entries", b/bucketSlots, n)
		}
		for j := range uint64(bucketLen) {
			if s := x.slots[b+j]; (s != 0) != (j < n) || (s != 0 && s>>32 == 0) {
				return fmt.Errorf("bucket %d: slot %d is %#x with %d entries", b/bucketSlots, j, s, n)
			}
		}
		for _, s := range x.slots[b:][:n] {
			entries++
			for h := x.bucketOf(uint32(s)); h != b; h = x.nextBucket(h) {
				out[h/bucketSlots]++
			}
		}
	}
	for b := range x.nb {
		if got := x.slots[b*bucketSlots+bucketLen] / bucketOut; got != out[b] {
			return fmt.Errorf("bucket %d counts %d outbound entries, %d pass it", b, got, out[b])
		}
	}
	if entries != x.n {
		return fmt.Errorf("the buckets hold %d entries, the index counts %d", entries, x.n)
	}
	return nil
}

// TestHashIndexSetDelRapid is the model test of the undeferred API the
// host tier uses (set, which replaces, del, get, each, clear) against a
// map, with hashes whose home buckets are one to three of the table's,
// the last among them, up to one free slot.
func TestHashIndexSetDelRapid(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		blocks, ids, probe := drawIndexSize(rt, 30)
		hashes := make([]Hash, ids)
		x := newHashIndex(blocks, hashes)
		last := uint64(probe.nb) - 1
		homes := []uint64{last}
		for range rapid.IntRange(0, 2).Draw(rt, "extraHomes") {
			homes = append(homes, rapid.SampledFrom([]uint64{0, last / 2, 1}).Draw(rt, "home")%probe.nb)
		}
		npool := rapid.IntRange(1, ids+3).Draw(rt, "pool")
		var pool []Hash
		for i := uint64(0); len(pool) < npool; i++ {
			var h Hash
			binary.LittleEndian.PutUint64(h[20:], i)
			if slices.Contains(homes, x.bucketOf(home(&h))/bucketSlots) {
				pool = append(pool, h)
			}
		}
		model := map[Hash]allocator.BlockID{}
		holder := map[allocator.BlockID]Hash{}
		for step := range rapid.IntRange(50, 300).Draw(rt, "steps") {
			h := rapid.SampledFrom(pool).Draw(rt, "hash")
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 5: // set, onto a block holding nothing (as put does)
				old, replacing := model[h]
				var free []allocator.BlockID
				for id := range allocator.BlockID(ids) {
					if _, held := holder[id]; !held || (replacing && id == old) {
						free = append(free, id)
					}
				}
				if len(free) == 0 {
					continue
				}
				id := rapid.SampledFrom(free).Draw(rt, "id")
				if replacing {
					delete(holder, old) // set replaces: old lets go of h
				}
				hashes[id] = h
				x.set(&hashes[id], id)
				model[h] = id
				holder[id] = h
			case op < 8:
				if id, ok := model[h]; ok {
					x.del(&hashes[id])
					delete(model, h)
					delete(holder, id)
					hashes[id] = Hash{}
				} else {
					x.del(&h) // absent: changes nothing
				}
			case op < 9:
				got, ok := x.get(&h)
				want, has := model[h]
				if ok != has || (ok && got != want) {
					rt.Fatalf("step %d: get = %d, %v; model %d, %v", step, got, ok, want, has)
				}
			default:
				if rapid.IntRange(0, 9).Draw(rt, "clear") == 0 {
					x.clear()
					clear(model)
					clear(holder)
				}
			}
			if err := bucketsConsistent(&x); err != nil {
				rt.Fatalf("step %d: %v", step, err)
			}
			seen := 0
			x.each(func(h *Hash, id allocator.BlockID) {
				if want, ok := model[*h]; !ok || want != id {
					rt.Fatalf("step %d: each lists block %d, model %d, %v", step, id, want, ok)
				}
				seen++
			})
			if seen != len(model) || x.len() != len(model) {
				rt.Fatalf("step %d: each lists %d, len %d; model %d", step, seen, x.len(), len(model))
			}
		}
	})
}

// TestHashIndexFlushRefusesInsertAfterRemoval checks flush's guard of the
// log's order: an insert logged after a removal (which blockPool.commit
// prevents by flushing first) panics rather than being applied before
// the removal, wherever in the log and its chunks it lies, with the
// guard's message (not a stray index panic).
func TestHashIndexFlushRefusesInsertAfterRemoval(t *testing.T) {
	for _, at := range []int{1, flushChunk - 1, flushChunk, flushChunk + 1, 100} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			const blocks = 200
			hashes := make([]Hash, blocks)
			x := newHashIndex(blocks, hashes)
			x.track(blocks, true)
			for id := range allocator.BlockID(blocks) {
				binary.LittleEndian.PutUint64(hashes[id][:], uint64(id))
			}
			for id := range allocator.BlockID(at + 1) {
				x.apply(x.insert(id, home(&hashes[id])))
			}
			x.flush()
			for id := range allocator.BlockID(at) {
				x.apply(x.remove(id))
			}
			x.apply(x.insert(allocator.BlockID(at+1), home(&hashes[at+1])))
			defer func() {
				if r := recover(); r != "paged: index update log has an insert after a removal" {
					t.Fatalf("flush of an insert logged after a removal: recovered %v", r)
				}
			}()
			x.flush()
		})
	}
}
