package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit117DefaultMaxModelLenCapped: the default MaxModelLen is what
// the pool holds, but never past MaxSeqLen: 63 blocks of 2^20 tokens
// hold 63*2^20 tokens, more than MaxSeqLen = 2^25.
func TestAudit117DefaultMaxModelLenCapped(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1 << 20, NumBlocks: 64})
	require.NoError(t, err)
	assert.Equal(t, paged.MaxSeqLen, m.Config().MaxModelLen)
	m, err = paged.New(paged.Config{BlockSize: 1 << 19, NumBlocks: 65})
	require.NoError(t, err)
	assert.Equal(t, paged.MaxSeqLen, m.Config().MaxModelLen, "exactly what the pool holds")
	m, err = paged.New(paged.Config{BlockSize: 1 << 19, NumBlocks: 64})
	require.NoError(t, err)
	assert.Equal(t, 63<<19, m.Config().MaxModelLen, "one block short of MaxSeqLen")
}

// TestAudit117OnboardCountsTheCheckpointClaims: a hybrid Onboard claims
// the device pages of the state checkpoint it hits (they leave the
// evictable blocks) before it allocates the blocks it onboards, so it
// needs room for both. The prefix's 4 full-attention blocks are on the
// host and its checkpoint's 2 pages cached on the device (fresh
// sequences' allocations evict the prefix's blocks and leave the pages
// cached, the last cached blocks of the pool); with 5 blocks
// available (the 2 pages and 3 free) the 4 onboards fit only if the
// pages are not counted, and would then find 3 blocks once the pages are
// claimed: Onboard refuses it, changing nothing, and moves the 4 blocks
// once 3 more are free.
func TestAudit117OnboardCountsTheCheckpointClaims(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 21, HostBlocks: 64,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	prefix := seqOf(1, 16)
	with := func(tail ...int32) []int32 { return append(append([]int32(nil), prefix...), tail...) }
	// Two sequences branching after the prefix: the second takes a
	// checkpoint there.
	a, _, err := m.Create(with(1000, 1001, 1002, 1003, 1004), nil)
	require.NoError(t, err)
	b, _, err := m.Create(with(2000, 2001, 2002, 2003, 2004), nil)
	require.NoError(t, err)
	m.TakeCheckpoints(nil)
	m.EndStep() // the checkpoint is written: a hit from the next step on
	require.NoError(t, m.Free(a))
	require.NoError(t, m.Free(b))
	// Fresh one-token sequences (a block and 2 state pages each) until
	// only the checkpoint's pages are left cached.
	var held []paged.SeqID
	for next := int32(1 << 20); m.Stats().CachedBlocks > 2; next++ {
		id, _, err := m.Create([]int32{next}, nil)
		require.NoError(t, err)
		held = append(held, id)
	}
	st := m.Stats()
	require.Equal(t, 2, st.CachedBlocks, "the checkpoint's pages")
	require.Zero(t, st.FreeBlocks)
	require.Equal(t, 6, st.Tiers.HostCached, "the prefix's 4 blocks and a full block of each tail")
	require.NoError(t, m.Free(held[0]))
	c, err := m.Add(with(3000), nil)
	require.NoError(t, err)
	before := m.Stats()
	require.Equal(t, 3, before.FreeBlocks)
	_, err = m.Onboard(c)
	require.ErrorIs(t, err, paged.ErrNoSpace, "4 onboards and 2 claimed pages in 5 blocks")
	assert.Equal(t, before, m.Stats(), "a refused Onboard changes nothing")
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(held[1]))
	n, err := m.Onboard(c)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	require.NoError(t, m.Check())
	for _, id := range held[2:] {
		require.NoError(t, m.Free(id))
	}
	cached, err := m.Admit(c)
	require.NoError(t, err)
	assert.Equal(t, 16, cached)
	require.NoError(t, m.Check())
}

// a117Hints is a device policy that records its Hints (an LRU beside).
type a117Hints struct {
	eviction.Policy
	hints []eviction.Hint
}

func (p *a117Hints) Hint(_ allocator.BlockID, h eviction.Hint) { p.hints = append(p.hints, h) }

// newA117Hints returns a manager of cfg whose device policy is an
// a117Hints, and the policy.
func newA117Hints(t *testing.T, cfg paged.Config) (*paged.Manager, *a117Hints) {
	var pol *a117Hints
	cfg.Policy = func(n int) eviction.Policy { pol = &a117Hints{Policy: eviction.NewLRU(n)}; return pol }
	m, err := paged.New(cfg)
	require.NoError(t, err)
	return m, pol
}

// TestAudit117OnboardAfterTheWindowHasNoParent: a windowed sequence's
// hit whose blocks before the window are null entries onboards the
// window's blocks from the host; the first of them had no block before it
// in the table, so its Hint names no parent (allocator.NoBlock), never
// the null block, which holds no content.
func TestAudit117OnboardAfterTheWindowHasNoParent(t *testing.T) {
	m, pol := newA117Hints(t, paged.Config{BlockSize: 4, NumBlocks: 13, HostBlocks: 32})
	opts := &paged.SeqOptions{Window: 8}
	prompt := seqOf(1, 24)
	a, _, err := m.Create(prompt, opts)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	next := int32(1 << 20)
	flushDevice(t, m, &next)
	m.TakeSwaps(nil)
	require.Positive(t, m.Stats().Tiers.HostCached)
	pol.hints = pol.hints[:0]
	before := m.Stats().Tiers.Onboards
	b, cached, err := m.Create(append(prompt, 100), opts)
	require.NoError(t, err)
	table, err := m.Table(b)
	require.NoError(t, err)
	require.Equal(t, []allocator.BlockID{0, 0, 0, 0}, table[:4], "the blocks before the window are null entries")
	require.Equal(t, 24, cached)
	require.Positive(t, m.Stats().Tiers.Onboards-before)
	require.Len(t, pol.hints, 2, "the window's two onboarded blocks")
	assert.Equal(t, allocator.NoBlock, pol.hints[0].Parent, "the first block onboarded after the null entries")
	assert.Equal(t, table[4], pol.hints[1].Parent, "the second's parent is the first")
	require.NoError(t, m.Check())
}

// TestAudit117OnboardsAreStored: an onboarded block is committed to the
// device prefix index again, so Stats.BlocksStored counts it, whether
// an admission onboards it or Onboard does ahead of one: a prompt's two
// full blocks, evicted to the host, come back twice, each time as two
// stored blocks (the partial third block is never stored).
func TestAudit117OnboardsAreStored(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 32})
	require.NoError(t, err)
	prompt := seqOf(1, 9)
	next := int32(1 << 20)
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	flushDevice(t, m, &next)
	before := m.Stats()
	a, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.Equal(t, 8, cached)
	after := m.Stats()
	assert.EqualValues(t, 2, after.Tiers.Onboards-before.Tiers.Onboards)
	assert.EqualValues(t, 2, after.BlocksStored-before.BlocksStored, "an admission's onboards")
	require.NoError(t, m.Free(a))
	flushDevice(t, m, &next)
	b, err := m.Add(prompt, nil)
	require.NoError(t, err)
	before = m.Stats()
	n, err := m.Onboard(b)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	assert.EqualValues(t, 2, m.Stats().BlocksStored-before.BlocksStored, "Onboard's")
	require.NoError(t, m.Check())
}

// TestAudit117OnboardAfterThePromiseLapses: content offloaded under a
// timed retention promise (90 until tick 5) comes back at the level it
// had while the promise holds, and at the default level, with no expiry,
// once it has lapsed on the host (at tick 5 itself): the Hints of the
// onboarded blocks say so.
func TestAudit117OnboardAfterThePromiseLapses(t *testing.T) {
	for _, tc := range []struct {
		now     int64
		level   int
		expires int64
	}{{4, 90, 5}, {5, eviction.DefaultPriority, 0}} {
		m, pol := newA117Hints(t, paged.Config{BlockSize: 2, NumBlocks: 7, HostBlocks: 16})
		prompt := []int32{1, 2, 3, 4, 0}
		a, _, err := m.Create(prompt, &paged.SeqOptions{Retention: &paged.Retention{Priority: 90, Ticks: 5}})
		require.NoError(t, err)
		m.EndStep()
		require.NoError(t, m.Free(a))
		next := int32(1 << 20)
		flushDevice(t, m, &next)
		require.Equal(t, 2, m.Stats().Tiers.HostCached)
		m.Advance(tc.now)
		pol.hints = pol.hints[:0]
		_, cached, err := m.Create(prompt, nil)
		require.NoError(t, err)
		require.Equal(t, 4, cached, "onboarded")
		require.Len(t, pol.hints, 2)
		for i, h := range pol.hints {
			assert.Equal(t, tc.level, h.Priority, "tick %d: block %d's level", tc.now, i)
			assert.Equal(t, tc.expires, h.Expires, "tick %d: block %d's expiry", tc.now, i)
		}
		require.NoError(t, m.Check())
	}
}
