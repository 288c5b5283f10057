package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit152MootCopyIsDropped: a fork's copy-on-write copy whose
// destination goes with the fork (freed, a partial block, so not cached)
// is moot; when another sequence is given that block in the same step,
// the copy is dropped from the step's list, not handed to the server to
// write over the new holder's block.
func TestAudit152MootCopyIsDropped(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	f, err := m.Fork(a)
	require.NoError(t, err)
	require.NoError(t, m.Append(f, 100))
	tf, err := m.Table(f)
	require.NoError(t, err)
	dst := tf[1]
	require.NoError(t, m.Free(f))
	c, _, err := m.Create(seqOf(500, 3), nil)
	require.NoError(t, err)
	tc, err := m.Table(c)
	require.NoError(t, err)
	require.Equal(t, dst, tc[0], "setup: the fork's copy destination is handed out again")
	for _, cp := range m.TakeCopies(nil) {
		assert.NotEqual(t, dst, cp.Dst, "a copy into the new holder's block %d is left: %v", dst, cp)
	}
	require.NoError(t, m.Check())
}
