package fleet

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit73MemoryCopyCounts: the in-memory backend counts a server's
// second and later copies of one block (two device blocks of one
// content, both stored) in copies, keyed by entry, server and tier, and
// keeps per entry the number of such keys (slotCopies), which lets
// removal and clearing skip the map for the many entries without copies.
// A random stream of stored, removed and moved events from three servers,
// with many duplicates, keeps both exact after every update: no key with
// a count of zero, and each entry's key count the keys naming it (the
// twenty-sixth mutation round, docs/testing.md). M1241 counted a third
// copy as a new key; M1242 kept a key of count zero after the last
// copy's removal: results stayed right, the counts drifted, and every
// later removal or clear of those entries scanned the whole map.
func TestAudit73MemoryCopyCounts(t *testing.T) {
	m, err := NewMemory(MemoryConfig{Capacity: 64})
	require.NoError(t, err)
	require.NoError(t, m.Attach("model", 3))
	var ids [3]ServerID
	for i, name := range []string{"a", "b", "c"} {
		ids[i], _, err = m.Register(name, StreamState{})
		require.NoError(t, err)
	}
	hashes := make([]paged.Hash, 6)
	for i := range hashes {
		hashes[i][0] = byte(i + 1)
	}
	held := map[copyKey]int{} // what each (hash, server, tier) holds
	type hkey struct {
		h      int
		server ServerID
		tier   paged.Medium
	}
	holds := map[hkey]int{}
	rng := rand.New(rand.NewPCG(73, 1241))
	for step := range 3000 {
		srv := ids[rng.IntN(len(ids))]
		h := rng.IntN(len(hashes))
		tier := paged.Device
		if rng.IntN(4) == 0 {
			tier = paged.Host
		}
		ev := paged.Event{Hashes: hashes[h : h+1], Medium: tier}
		k := hkey{h, srv, tier}
		switch {
		case holds[k] > 0 && rng.IntN(2) == 0:
			ev.Kind = paged.BlockRemoved
			holds[k]--
		default:
			ev.Kind = paged.BlockStored
			holds[k]++
		}
		old := m.states[srv]
		next := old
		next.Gen++
		_, err := m.Update(srv, old, next, false, []paged.Event{ev})
		require.NoError(t, err, "step %d", step)
		clear(held)
		perSlot := map[int32]int{}
		for key, c := range m.copies {
			require.NotZero(t, c, "step %d: a key of count zero", step)
			perSlot[key.slot]++
		}
		for s := range int32(len(m.slotCopies)) {
			require.Equal(t, perSlot[s], int(m.slotCopies[s]), "step %d: entry %d's copy keys", step, s)
		}
		// The copies counted are the holds beyond the first.
		for key, c := range m.copies {
			held[key] = int(c)
		}
		for k, n := range holds {
			s, ok := m.index.find(&hashes[k.h], m.hashes)
			if n == 0 {
				continue
			}
			require.True(t, ok, "step %d: a held hash is indexed", step)
			require.Equal(t, n-1, held[copyKey{s, k.server, k.tier}], "step %d: copies of %v", step, k)
		}
	}
}

// TestAudit73MemoryEstimateCoversTable: the up-front estimate Attach
// holds against MaxMemoryBytes counts the hash table newTable makes, a
// power of two of at least twice the capacity's 16-byte entries: the
// estimate of capacity c less that of capacity c with no table, per the
// estimate's own entry cost, is the table's bytes, for capacities on and
// off the powers of two. M1230 counted a table for the capacity alone,
// half of what newTable makes from a power of two up, so Attach took
// configurations whose table passed the bound.
func TestAudit73MemoryEstimateCoversTable(t *testing.T) {
	for _, c := range []int{1, 2, 3, 1000, 1 << 10, 1<<10 + 1, 1 << 20} {
		tab := newTable(c)
		// At most half full (linear probing's bound; a full table never
		// ends a probe for an absent hash), a power of two (the mask).
		require.GreaterOrEqual(t, len(tab.e), 2*c, "capacity %d", c)
		require.Zero(t, len(tab.e)&(len(tab.e)-1), "capacity %d", c)
		tableBytes := int64(len(tab.e)) * int64(unsafe.Sizeof(tableEntry{}))
		// The estimate's per-entry part is linear in the capacity: the
		// difference of two words per tier isolates its holder sets, and
		// capacity 1 with one word its remaining constant with a table of 2.
		perEntry := memoryBytes(1, 1) - int64(len(newTable(1).e))*int64(unsafe.Sizeof(tableEntry{}))
		require.Equal(t, tableBytes+int64(c)*perEntry, memoryBytes(c, 1), "capacity %d", c)
		require.Equal(t, int64(16*c), memoryBytes(c, 2)-memoryBytes(c, 1), "capacity %d: 16 bytes an entry per word", c)
	}
}

// countingLRU is LRU counting the refreshes asked of it (Access, which
// LRU itself leaves to a Remove and an Insert).
type countingLRU struct {
	eviction.Policy
	refreshes int
}

func (p *countingLRU) Access(id allocator.BlockID) {
	p.refreshes++
	p.Remove(id)
	p.Insert(id)
}

// TestAudit73NewEntryCountsAsRefreshed: a lookup refreshes an entry in the
// backend's policy only once at least a window (an eighth of the
// capacity) of refreshes and inserts happened since the entry's last
// one, and storing a new entry is such a one: with a window of 8, an
// entry stored after many others and looked up at once costs no policy
// work, nor 7 inserts later, and is refreshed 8 inserts later. M1248 left
// new entries unstamped, so the first lookup of an entry stored once the
// clock had passed a window refreshed it; M1252 waited two windows.
func TestAudit73NewEntryCountsAsRefreshed(t *testing.T) {
	var p *countingLRU
	m, err := NewMemory(MemoryConfig{Capacity: 64, Policy: func(n int) eviction.Policy {
		p = &countingLRU{Policy: eviction.NewLRU(n)}
		return p
	}})
	require.NoError(t, err)
	require.NoError(t, m.Attach("model", 1))
	require.EqualValues(t, 8, m.window)
	srv, _, err := m.Register("a", StreamState{})
	require.NoError(t, err)
	store := func(b byte) paged.Hash {
		var h paged.Hash
		h[0], h[1] = b, 73
		old := m.states[srv]
		next := old
		next.Gen++
		_, err := m.Update(srv, old, next, false, []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{h}, Medium: paged.Device}})
		require.NoError(t, err)
		return h
	}
	lookup := func(h paged.Hash) {
		masks, _, err := m.Lookup([]paged.Hash{h}, m.words, nil, nil)
		require.NoError(t, err)
		require.NotZero(t, masks[0], "held")
	}
	for b := range byte(20) { // past a window
		store(b)
	}
	fresh := store(100)
	lookup(fresh)
	require.Zero(t, p.refreshes, "a lookup right after the store refreshes nothing")
	for b := range byte(7) {
		store(200 + b)
	}
	lookup(fresh)
	require.Zero(t, p.refreshes, "7 inserts after its store: not refreshed")
	store(250)
	lookup(fresh)
	require.Equal(t, 1, p.refreshes, "8 inserts after its store: refreshed")
	lookup(fresh)
	require.Equal(t, 1, p.refreshes, "refreshed just now: not again")
}
