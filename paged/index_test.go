package paged

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestHashIndexAgainstMap drives the index and a Go map with the same
// random inserts, replacements and deletions, with hashes that collide in
// their leading bytes, and compares them after every step.
//
// With crowded, the hashes are drawn from 30 whose home buckets are the
// table's last two and its first, so buckets fill and send entries on.
func TestHashIndexAgainstMap(t *testing.T) {
	for _, crowded := range []bool{false, true} {
		t.Run(fmt.Sprintf("crowded=%v", crowded), func(t *testing.T) { testHashIndexAgainstMap(t, crowded) })
	}
}

func testHashIndexAgainstMap(t *testing.T, crowded bool) {
	const blocks = 64
	hashes := make([]Hash, blocks)
	x := newHashIndex(blocks, hashes)
	var crowd []Hash
	if crowded {
		crowd = crowdedHashes(&x, 30)
	}
	model := map[Hash]allocator.BlockID{}
	owner := map[allocator.BlockID]Hash{}
	r := rand.New(rand.NewPCG(1, 2))
	sent := false
	for step := range 20000 {
		id := allocator.BlockID(r.IntN(blocks))
		if h, ok := owner[id]; ok {
			if model[h] == id {
				x.del(&h)
				delete(model, h)
			}
			delete(owner, id)
		} else {
			var h Hash
			h[31] = byte(r.IntN(200)) // only the last byte varies
			if crowded {
				h = crowd[r.IntN(len(crowd))]
			}
			if _, taken := model[h]; taken && r.IntN(2) == 0 {
				continue
			}
			if old, taken := model[h]; taken {
				delete(owner, old)
			}
			hashes[id] = h
			x.set(&h, id)
			model[h] = id
			owner[id] = h
		}
		if x.len() != len(model) {
			t.Fatalf("step %d: index has %d entries, model %d", step, x.len(), len(model))
		}
		sent = checkBuckets(t, &x) || sent
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
	if crowded && !sent {
		t.Fatal("no entry ever lived past its home bucket")
	}
}

// apply flushes x when the update just logged filled its log, as the
// block pool does.
func (x *hashIndex) apply(full bool) {
	if full {
		x.flush()
	}
}

// TestHashIndexDeferred drives an index that applies its updates at once
// and one that defers them with the same random commits and removals of
// blocks (few distinct hashes, two salts, so duplicate lists grow and
// shrink), reading both at random moments, and checks both against a
// model (each key's blocks in insertion order, the first one answering)
// and that the deferring one, once settled, is the same: the same slots,
// duplicate lists and hashes.
// Both ways of flushing run: touching the lines ahead (as a large pool's
// index does) and not.
//
// With crowded, the hashes are drawn from 40 whose home buckets are the
// table's last two and its first (for group 0), so buckets fill, send
// entries on across the wrap and take them back.
func TestHashIndexDeferred(t *testing.T) {
	for _, touch := range []bool{false, true} {
		for _, crowded := range []bool{false, true} {
			t.Run(fmt.Sprintf("touch=%v/crowded=%v", touch, crowded), func(t *testing.T) { testHashIndexDeferred(t, touch, crowded) })
		}
	}
}

// crowdedHashes returns n distinct hashes whose tags (group 0) have home
// buckets among the last two and the first of x's.
func crowdedHashes(x *hashIndex, n int) []Hash {
	var out []Hash
	for i := uint64(0); len(out) < n; i++ {
		var h Hash
		binary.LittleEndian.PutUint64(h[8:], i)
		last := uint64(len(x.slots)) - bucketSlots
		if b := x.bucketOf(home(&h)); b == 0 || b == last || b == last-bucketSlots {
			out = append(out, h)
		}
	}
	return out
}

// checkBuckets verifies x's table: each bucket's entries fill its first
// slots and it counts them, and each bucket's outbound count is the
// entries whose probe passes it (from their home bucket to the one they
// live in, which was full when they went in but may have room since).
// It reports whether an entry lives past its home bucket.
func checkBuckets(t *testing.T, x *hashIndex) (sent bool) {
	t.Helper()
	out := make([]uint64, x.nb)
	entries := 0
	for b := uint64(0); b < uint64(len(x.slots)); b += bucketSlots {
		c := x.slots[b+bucketLen]
		n := c & bucketCount
		for j := range uint64(bucketLen) {
			if s := x.slots[b+j]; (s != 0) != (j < n) || (s != 0 && s>>32 == 0) {
				t.Fatalf("bucket %d: slot %d is %#x with %d entries", b/bucketSlots, j, s, n)
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
			t.Fatalf("bucket %d counts %d outbound entries, %d pass it", b, got, out[b])
		}
	}
	if entries != x.n {
		t.Fatalf("the buckets hold %d entries, the index counts %d", entries, x.n)
	}
	return slices.ContainsFunc(out, func(n uint64) bool { return n > 0 })
}

// indexSide is an index over its own hash array, tracking ids blocks'
// duplicate lists: one side of the twin tests that run an index deferring
// its updates next to one applying them at once.
type indexSide struct {
	x      hashIndex
	hashes []Hash
}

func newIndexSide(blocks, ids int, deferred, touch bool) *indexSide {
	s := &indexSide{hashes: make([]Hash, ids)}
	s.x = newHashIndex(blocks, s.hashes)
	s.x.track(ids, deferred)
	s.x.touch = touch
	return s
}

func testHashIndexDeferred(t *testing.T, touch, crowded bool) {
	const blocks = 300 // more than maxDeferred, so the log also fills
	now, later := newIndexSide(blocks, blocks, false, touch), newIndexSide(blocks, blocks, true, touch)
	cached := make([]bool, blocks)
	salt := make([]uint32, blocks)
	type key struct {
		h    Hash
		salt uint32
	}
	model := map[key][]allocator.BlockID{}
	r := rand.New(rand.NewPCG(3, 4))
	deferredSome, sent := false, false
	var crowd []Hash
	if crowded {
		crowd = crowdedHashes(&now.x, 40)
	}
	draw := func() Hash {
		var h Hash
		if crowded {
			return crowd[r.IntN(len(crowd))]
		}
		h[0] = byte(r.IntN(40))
		return h
	}
	for step := range 50000 {
		id := allocator.BlockID(r.IntN(blocks))
		if cached[id] {
			k := key{now.hashes[id], salt[id]}
			now.x.apply(now.x.remove(id))
			later.x.apply(later.x.remove(id))
			model[k] = slices.DeleteFunc(model[k], func(b allocator.BlockID) bool { return b == id })
			cached[id] = false
		} else {
			h := draw()
			salt[id] = groupSalt(r.IntN(2))
			if later.x.dels > 0 {
				later.x.flush() // as blockPool.commit does
			}
			now.hashes[id], later.hashes[id] = h, h
			now.x.apply(now.x.insert(id, home(&h)^salt[id]))
			later.x.apply(later.x.insert(id, home(&h)^salt[id]))
			model[key{h, salt[id]}] = append(model[key{h, salt[id]}], id)
			cached[id] = true
		}
		deferredSome = deferredSome || later.x.nlog > 1
		switch r.IntN(20) {
		case 0:
			h := draw()
			g := groupSalt(r.IntN(2))
			a, aok := now.x.getIn(&h, g)
			b, bok := later.x.getIn(&h, g)
			want := model[key{h, g}]
			if a != b || aok != bok || aok != (len(want) > 0) || (aok && a != want[0]) {
				t.Fatalf("step %d: getIn = %d, %v deferred, %d, %v at once; model %v", step, b, bok, a, aok, want)
			}
		case 1:
			later.x.settle()
			sent = checkBuckets(t, &now.x) || sent
			if !slices.Equal(now.x.slots, later.x.slots) || now.x.n != later.x.n || !slices.Equal(now.hashes, later.hashes) {
				t.Fatalf("step %d: the settled index differs from the one updated at once", step)
			}
			for b := range blocks {
				if cached[b] && (now.x.dupNext(allocator.BlockID(b)) != later.x.dupNext(allocator.BlockID(b)) || now.x.dupPrev(allocator.BlockID(b)) != later.x.dupPrev(allocator.BlockID(b))) {
					t.Fatalf("step %d: block %d's duplicate links differ", step, b)
				}
				if now.x.meta[b].head != later.x.meta[b].head || (now.x.meta[b].head && !cached[b]) {
					t.Fatalf("step %d: block %d heads its duplicates %v deferred, %v at once (cached %v)", step, b, later.x.meta[b].head, now.x.meta[b].head, cached[b])
				}
			}
			n := 0
			for k, ids := range model {
				if len(ids) == 0 {
					continue
				}
				n++
				b := ids[0]
				for j := range ids {
					if b != ids[j] {
						t.Fatalf("step %d: duplicate %d of %v is block %d, want %d", step, j, ids, b, ids[j])
					}
					if now.x.meta[b].head != (j == 0) {
						t.Fatalf("step %d: duplicate %d of %v: head is %v", step, j, ids, now.x.meta[b].head)
					}
					b = now.x.dupNext(b)
				}
				if got, ok := now.x.getIn(&k.h, k.salt); !ok || got != ids[0] || b != ids[0] {
					t.Fatalf("step %d: key of %v answers %d, %v, or its list does not close", step, ids, got, ok)
				}
			}
			if n != now.x.len() {
				t.Fatalf("step %d: index has %d entries, model %d", step, now.x.len(), n)
			}
		}
	}
	if !deferredSome {
		t.Fatal("no update was ever deferred")
	}
	if crowded && !sent {
		t.Fatal("no entry ever lived past its home bucket")
	}
}

// TestLookupRunsMatchIndex checks that lookup, which walks runs of
// consecutive blocks instead of probing the index for each hash, answers
// exactly as one probe per hash would, and counts the evictable hits as
// the allocator's states do, on a pool where sequences of a few
// shared prefixes are created, extended (filling duplicate blocks), freed
// and evicted at random: with prompts of up to 12 blocks, and of up to 120
// (runs long enough for the walk's eight- and 32-block steps).
//
// With a host tier that evicted content is offloaded to ("host"), chains
// alternate device runs and host hits, and the lookup, which probes again
// after a host hit, must answer as one probe per hash of the device
// index, else the host index, with the same host count.
func TestLookupRunsMatchIndex(t *testing.T) {
	t.Run("short", func(t *testing.T) { checkLookupRuns(t, Config{NumBlocks: 200}, 12, 1000, 0) })
	t.Run("long", func(t *testing.T) { checkLookupRuns(t, Config{NumBlocks: 1200}, 120, 10000, 0) })
	t.Run("host", func(t *testing.T) {
		checkLookupRuns(t, Config{NumBlocks: 160, HostBlocks: 200, Hasher: FastHasher{}}, 60, 10000, 100)
	})
}

// checkLookupRuns requires at least minChecked hits and minMixed lookups
// whose hits are partly on the host.
func checkLookupRuns(t *testing.T, cfg Config, maxPromptBlocks, minChecked, minMixed int) {
	cfg.BlockSize = 4
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	prompt := func() []int32 {
		p := make([]int32, 4*(1+r.IntN(maxPromptBlocks))+r.IntN(4))
		base := int32(r.IntN(3)) * 1000 // three families sharing prefixes
		for i := range p {
			p[i] = base + int32(i)
			if r.IntN(40) == 0 {
				base += 7 // a branch
			}
		}
		return p
	}
	var live []SeqID
	var hashes []Hash
	checked, mixed := 0, 0
	for step := range 3000 {
		switch {
		case len(live) > 0 && r.IntN(3) == 0:
			k := r.IntN(len(live))
			if err := m.Free(live[k]); err != nil {
				t.Fatal(err)
			}
			live = slices.Delete(live, k, k+1)
		case len(live) > 0 && r.IntN(2) == 0:
			// The same tokens in two sequences fill duplicate blocks.
			id := live[r.IntN(len(live))]
			for range 1 + r.IntN(6) {
				if m.Append(id, int32(r.IntN(3))) != nil {
					break
				}
			}
		default:
			if id, _, err := m.Create(prompt(), nil); err == nil {
				live = append(live, id)
			}
		}
		hashes, _ = m.BlockHashes(hashes[:0], prompt(), nil)
		max := r.IntN(len(hashes) + 2)
		got, evictable, host := m.lookup(nil, hashes, max)
		var want []allocator.BlockID
		wantEvictable, wantHost := 0, 0
		for i := 0; i < max && i < len(hashes); i++ {
			id, ok := m.bp.index.get(&hashes[i])
			if ok {
				if m.bp.pool.IsCached(id) {
					wantEvictable++
				}
			} else if id, ok = m.bp.hostHitIn(&hashes[i], 0); ok {
				wantHost++
			} else {
				break
			}
			want = append(want, id)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: lookup = %v, the index answers %v", step, got, want)
		}
		if evictable != wantEvictable || host != wantHost {
			t.Fatalf("step %d: lookup counts %d evictable and %d host hits, want %d and %d", step, evictable, host, wantEvictable, wantHost)
		}
		checked += len(want)
		if wantHost > 0 && wantHost < len(want) {
			mixed++
		}
	}
	if checked < minChecked || mixed < minMixed {
		t.Fatalf("only %d hits checked, %d lookups with device and host hits", checked, mixed)
	}
}

// TestBlockLinksFourToALine: a block's entry in the index's meta is 16
// bytes, so entries never straddle a cache line and a commit or removal
// touches one line of meta (see blockLinks).
func TestBlockLinksFourToALine(t *testing.T) {
	if n := unsafe.Sizeof(blockLinks{}); n != 16 {
		t.Fatalf("blockLinks is %d bytes, want 16", n)
	}
}

// BenchmarkHashIndexChurn: the device index's share of a decode step's
// block cycle, on its own: a block at a random address of a full pool
// gives up its content (a deferred removal, as an eviction makes) and a
// block that gave up its content a while ago (its removal applied) is
// committed with new content (a deferred insert), the flushes included.
// ns/op is one removal and one insert; blocks=163840 is the pool of the
// 4,096-sequence decode benchmark, blocks=2560 the 64-sequence one, so
// their ratio is what the pool's size costs the index in cache misses.
func BenchmarkHashIndexChurn(b *testing.B) {
	for _, blocks := range []int{2560, 163840} {
		b.Run(fmt.Sprintf("blocks=%d", blocks), func(b *testing.B) {
			hashes := make([]Hash, blocks)
			x := newHashIndex(blocks, hashes)
			x.track(blocks, true)
			r := rand.New(rand.NewPCG(7, 8))
			fresh := func(id allocator.BlockID) uint32 {
				h := &hashes[id]
				binary.LittleEndian.PutUint64(h[:], r.Uint64())
				binary.LittleEndian.PutUint64(h[8:], r.Uint64())
				return home(h)
			}
			// Victims in a fixed random order, as an LRU list of a long
			// run hands them out; the block committed is the one evicted
			// lag operations before, whose removal has been applied.
			const lag = 2 * maxDeferred
			order := r.Perm(blocks)
			for _, id := range order[lag:] {
				x.apply(x.insert(allocator.BlockID(id), fresh(allocator.BlockID(id))))
			}
			x.settle()
			i := lag
			b.ReportAllocs()
			for b.Loop() {
				x.apply(x.remove(allocator.BlockID(order[i])))
				old := i - lag
				if old < 0 {
					old += blocks
				}
				if x.dels > 0 {
					x.flush() // as blockPool.commit does
				}
				x.apply(x.insert(allocator.BlockID(order[old]), fresh(allocator.BlockID(order[old]))))
				if i++; i == blocks {
					i = 0
				}
			}
			x.settle()
		})
	}
}
