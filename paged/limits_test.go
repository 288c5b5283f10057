package paged_test

import (
	"math"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// allocatedLeast returns the fewest bytes f allocates in runs calls.
// TotalAlloc counts the whole process, so a runtime or testing goroutine
// that allocates during one call (seen under load) inflates that call's
// figure; an allocation f itself makes shows in every call.
func allocatedLeast(runs int, f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range runs {
		least = min(least, allocated(f))
	}
	return least
}

// TestMetadataPerBlock measures what New allocates per block, the figure
// MaxBlocks is derived from (Config's doc): with the default LRU policy,
// at most 96 bytes per device block and 128 more per host block, so a pool
// of MaxBlocks stays within about 3 GB.
func TestMetadataPerBlock(t *testing.T) {
	const n = 1 << 16
	var m *paged.Manager
	device := allocated(func() { m, _ = paged.New(paged.Config{NumBlocks: n}) })
	require.NotNil(t, m)
	withHost := allocated(func() { m, _ = paged.New(paged.Config{NumBlocks: n, HostBlocks: n}) })
	require.NotNil(t, m)
	perDevice, perHost := float64(device)/n, float64(withHost-device)/n
	t.Logf("%.1f bytes per device block, %.1f per host block", perDevice, perHost)
	assert.LessOrEqual(t, perDevice, 96.0)
	assert.LessOrEqual(t, perHost, 128.0)
	assert.Less(t, perDevice*paged.MaxBlocks, 3.5e9)
}

// TestSequenceNeverOutgrowsThePool: without a window a sequence is never
// longer than the pool holds, whatever MaxModelLen says, and refusing a
// huge length allocates nothing (AddFromHashes(nil, 1<<36) used to grow a
// 2^36-entry slice).
func TestSequenceNeverOutgrowsThePool(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 9, MaxModelLen: 1 << 20})
	require.NoError(t, err)
	const pool = 8 * 16
	for _, n := range []int{pool + 1, 1 << 20, min(1<<36, math.MaxInt)} {
		bytes := allocatedLeast(5, func() {
			_, err = m.AddFromHashes(nil, n, nil)
		})
		require.ErrorIs(t, err, paged.ErrNever, "%d tokens", n)
		assert.Less(t, bytes, uint64(4096), "refusing %d tokens allocated %d bytes", n, bytes)
	}
	_, err = m.Add(seqTokens(pool+1, 1), nil)
	require.ErrorIs(t, err, paged.ErrNever)
	id, err := m.AddFromHashes(nil, pool, nil)
	require.NoError(t, err, "exactly the pool")
	require.ErrorIs(t, m.Append(id, 1), paged.ErrNever, "a waiting sequence cannot grow past it either")
	require.NoError(t, m.Free(id))

	// A windowed sequence holds only its window: it may grow to
	// MaxModelLen, far past the pool.
	w, _, err := m.Create(seqTokens(16, 1), &paged.SeqOptions{Window: 32})
	require.NoError(t, err)
	for i := range 4 * pool {
		require.NoError(t, m.Append(w, int32(i)))
	}
	require.NoError(t, m.Check())
	_, err = m.AddFromHashes(nil, 1<<20+1, &paged.SeqOptions{Window: 32})
	require.ErrorIs(t, err, paged.ErrNever, "past MaxModelLen")

	// The default MaxModelLen is what the pool holds.
	d, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 9})
	require.NoError(t, err)
	assert.Equal(t, pool, d.Config().MaxModelLen)
	assert.Equal(t, paged.DefaultMaxWaiting, d.Config().MaxWaiting)
}

// TestMaxWaitingBackPressure: Add refuses a new sequence with ErrNoSpace
// while MaxWaiting sequences wait; Create, Preempt and admissions are not
// limited, and room frees up as waiting sequences are admitted or freed.
func TestMaxWaitingBackPressure(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, MaxWaiting: 2})
	require.NoError(t, err)
	a, err := m.Add(seqTokens(4, 1), nil)
	require.NoError(t, err)
	b, err := m.Add(seqTokens(4, 10), nil)
	require.NoError(t, err)
	before := m.Stats()
	_, err = m.Add(seqTokens(4, 20), nil)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Contains(t, err.Error(), "MaxWaiting")
	_, err = m.AddFromHashes(nil, 4, nil)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, before, m.Stats(), "a refused Add changes nothing")

	c, _, err := m.Create(seqTokens(4, 30), nil)
	require.NoError(t, err, "Create never waits")
	require.NoError(t, m.Preempt(c), "preemption is never refused")
	assert.Equal(t, 3, m.Stats().Waiting)
	_, err = m.Add(seqTokens(4, 20), nil)
	require.ErrorIs(t, err, paged.ErrNoSpace)

	_, err = m.Admit(a)
	require.NoError(t, err)
	_, err = m.Add(seqTokens(4, 20), nil)
	require.ErrorIs(t, err, paged.ErrNoSpace, "still two waiting")
	require.NoError(t, m.Free(b))
	_, err = m.Add(seqTokens(4, 20), nil)
	require.NoError(t, err)
	require.NoError(t, m.Check())
}

// TestNegativeTokensRefused: token IDs are non-negative in every
// tokenizer; a negative one is refused before it is hashed or stored.
func TestNegativeTokensRefused(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9})
	require.NoError(t, err)
	_, err = m.Add([]int32{1, 2, -1}, nil)
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "negative")
	id, _, err := m.Create([]int32{0, 1, 2}, nil)
	require.NoError(t, err, "token 0 is a token")
	require.ErrorIs(t, m.Append(id, -7), paged.ErrInvalid)
	require.ErrorIs(t, m.AppendSpeculative(id, 3, -7), paged.ErrInvalid)
	n, _ := m.Len(id)
	assert.Equal(t, 3, n)
	_, err = m.BlockHashes(nil, []int32{1, 2, 3, -4}, nil)
	require.ErrorIs(t, err, paged.ErrInvalid)
	require.NoError(t, m.Check())
}

// TestAppendOneByOneStopsAtMaxModelLen: one-token appends, which take
// Append's inline path inside a block, fill a sequence exactly to a
// MaxModelLen that ends inside a block, then fail with ErrNever and change
// nothing; every block they filled is committed, the one they stopped in
// is not.
func TestAppendOneByOneStopsAtMaxModelLen(t *testing.T) {
	const bs, maxLen = 16, 3*16 + 5
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 16, MaxModelLen: maxLen})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(7, 1), nil)
	require.NoError(t, err)
	for n := 7; n < maxLen; n++ {
		require.NoError(t, m.Append(id, int32(100+n)), "token %d", n)
		require.NoError(t, m.Check(), "after token %d", n)
	}
	require.ErrorIs(t, m.Append(id, 1), paged.ErrNever)
	got, err := m.Len(id)
	require.NoError(t, err)
	assert.Equal(t, maxLen, got)
	toks, err := m.Tokens(id)
	require.NoError(t, err)
	assert.Equal(t, int32(100+maxLen-1), toks[maxLen-1])
	assert.EqualValues(t, 3, m.Stats().BlocksStored, "the three full blocks are committed")
	assert.Equal(t, 4, m.Stats().UsedBlocks)
	require.NoError(t, m.Check())
}
