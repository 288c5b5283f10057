package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// requireWindowBacked fails unless every position that the query at
// position q reads under window w, [q-w+1, q), is mapped to a real block.
func requireWindowBacked(t *testing.T, m *paged.Manager, id paged.SeqID, w, q int) {
	t.Helper()
	table, err := m.Table(id)
	require.NoError(t, err)
	bs := m.BlockSize()
	for p := max(0, q-w+1); p < q; p++ {
		require.NotZero(t, table[p/bs], "position %d, read by the query at %d, names the null block: table %v", p, q, table)
	}
}

// newReproducer returns the setting of both reproducers of issue 13: a
// 100-token prompt with window w in a pool of 63 blocks of 16.
func newReproducer(t *testing.T, w int) (*paged.Manager, paged.SeqID) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(100, 1), &paged.SeqOptions{Window: w})
	require.NoError(t, err)
	return m, id
}

// TestWindowTruncatePastReleasedRefused is the first reproducer of issue
// 13: after the window slid, truncating to a length whose next query reads
// released positions used to succeed and leave them on the null block.
func TestWindowTruncatePastReleasedRefused(t *testing.T) {
	const w = 32
	m, id := newReproducer(t, w)
	for i := range 13 {
		require.NoError(t, m.Append(id, int32(500+i)))
		require.NoError(t, m.Check())
	}
	before, _ := m.Table(id)
	before = append([]allocator.BlockID(nil), before...)
	stats := m.Stats()

	// The window slid at 112 past blocks 0..4 (positions 0..79): the query
	// at 80 would read 49..79.
	err := m.Truncate(id, 80)
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "window")
	after, _ := m.Table(id)
	assert.Equal(t, before, after, "a refused Truncate changes nothing")
	assert.Equal(t, stats, m.Stats())
	n, _ := m.Len(id)
	assert.Equal(t, 113, n)
	require.NoError(t, m.Check())

	// The shortest length whose next query reads only live positions:
	// released blocks end at 80, so the query at 111 (reading 80..111).
	require.ErrorIs(t, m.Truncate(id, 110), paged.ErrInvalid)
	require.NoError(t, m.Truncate(id, 111))
	require.NoError(t, m.Check())
	require.NoError(t, m.Append(id, 7))
	requireWindowBacked(t, m, id, w, 111)
	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}))
	require.NoError(t, m.Check())
}

// TestWindowSpeculativeRejectKeepsWindow is the second reproducer: two
// speculative appends used to slide the window from a length that counted
// the first draft, so rejecting both left the accepted tokens' window on
// the null block.
func TestWindowSpeculativeRejectKeepsWindow(t *testing.T) {
	const w = 32
	m, id := newReproducer(t, w)
	require.NoError(t, m.AppendSpeculative(id, seqTokens(16, 200)...))
	require.NoError(t, m.Check())
	require.NoError(t, m.AppendSpeculative(id, seqTokens(16, 300)...))
	require.NoError(t, m.Check())
	require.NoError(t, m.AcceptSpeculative(id, 0))
	require.NoError(t, m.Check())
	n, _ := m.Len(id)
	require.Equal(t, 100, n)
	requireWindowBacked(t, m, id, w, 100)
	require.NoError(t, m.Append(id, 9))
	requireWindowBacked(t, m, id, w, 100)
	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}))

	// Accepting everything slides the window as a plain append would.
	require.NoError(t, m.AppendSpeculative(id, seqTokens(40, 400)...))
	require.NoError(t, m.AcceptSpeculative(id, 40))
	require.NoError(t, m.Append(id, 10))
	require.NoError(t, m.Check())
	requireWindowBacked(t, m, id, w, 141)
	table, _ := m.Table(id)
	assert.Zero(t, table[4], "blocks the accepted tokens' window left are released")
}
