package fleet

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit83 tests close the gaps the thirty-seventh mutation round found
// in fleet's hash table (docs/testing.md, "Mutation testing,
// thirty-seventh round").

// TestAudit83TableLenIsTheSmallestPowerOfTwo (M1683): a table has the
// smallest power of two of entries that keeps it half full, not twice
// that: MaxMemoryBytes counts these entries, so a table twice too large
// on the powers of two would halve the capacities Attach and NewPending
// take there, as well as waste the memory.
func TestAudit83TableLenIsTheSmallestPowerOfTwo(t *testing.T) {
	for c := 1; c <= 1<<12+1; c++ {
		n := tableLen(c)
		require.Zero(t, n&(n-1), "capacity %d: %d entries", c, n)
		require.GreaterOrEqual(t, n, 2*int64(c), "capacity %d", c)
		require.Less(t, n/2, 2*int64(c), "capacity %d: %d entries", c, n)
	}
	require.Equal(t, int64(2), tableLen(1))
	require.Equal(t, int64(1<<21), tableLen(1<<20))
	require.Equal(t, int64(1<<22), tableLen(1<<20+1))
}

// TestAudit83SumHashesEveryWord (M1684, M1685): the table's hash mixes
// all four words of a block hash, so hashes that differ in one word only
// (an llm-d key is the last word of HashOf; a trace ID is often one word
// too) get distinct 64-bit hashes. Were a word left out, all of those
// would share one probe run, and every lookup would walk it.
func TestAudit83SumHashesEveryWord(t *testing.T) {
	tb := newTable(256)
	for w := 0; w < 32; w += 8 {
		seen := make(map[uint64]bool)
		for v := range uint64(256) {
			var h paged.Hash
			binary.BigEndian.PutUint64(h[w:], v+1)
			seen[tb.sum(&h)] = true
		}
		require.Len(t, seen, 256, "hashes differing in bytes %d-%d", w, w+7)
	}
}

// TestAudit83FindComparesWholeHashes (M1686, M1687, M1688): find takes a
// matching 64-bit hash only as a hint and compares the whole block hash.
// With the table's own keys the test builds hashes whose 64-bit hashes
// are all 0 (a zero factor in both products of sum): differing only in
// their first word, or only in their last. Each is found at its own slot
// and none before it is inserted or after it is removed, through removals
// that shift the run of colliding entries back.
func TestAudit83FindComparesWholeHashes(t *testing.T) {
	tb := newTable(8)
	mk := func(a, b, c, d uint64) paged.Hash {
		var h paged.Hash
		binary.LittleEndian.PutUint64(h[0:], a)
		binary.LittleEndian.PutUint64(h[8:], b)
		binary.LittleEndian.PutUint64(h[16:], c)
		binary.LittleEndian.PutUint64(h[24:], d)
		return h
	}
	hashes := []paged.Hash{
		// a = k0 and c = k1: both products have a zero factor.
		mk(tb.k0, 5, tb.k1, 1), mk(tb.k0, 5, tb.k1, 2), mk(tb.k0, 6, tb.k1, 1),
		// b = k1 and d = k0: the same, through hi1 = 0.
		mk(1, tb.k1, 9, tb.k0), mk(2, tb.k1, 9, tb.k0), mk(1, tb.k1, 8, tb.k0),
	}
	for i := range hashes {
		require.Zero(t, tb.sum(&hashes[i]), "hash %d", i)
	}
	in := make([]bool, len(hashes))
	check := func(step string) {
		t.Helper()
		for i := range hashes {
			got, ok := tb.find(&hashes[i], hashes)
			if in[i] {
				require.True(t, ok, "%s: hash %d not found", step, i)
				require.Equal(t, int32(i), got, "%s: hash %d", step, i)
			} else {
				require.False(t, ok, "%s: hash %d found at %d, not inserted", step, i, got)
			}
		}
	}
	check("empty")
	for _, i := range []int{0, 3, 1, 4, 2, 5} {
		tb.insert(&hashes[i], int32(i))
		in[i] = true
		check("insert")
	}
	for _, i := range []int{1, 0, 5, 3, 2, 4} {
		tb.remove(&hashes[i], int32(i))
		in[i] = false
		check("remove")
	}
}
