package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit65NoHitOfAnUnwrittenCheckpoint: a checkpoint TakeCheckpoints
// hands out is written by the kernels of the step being built, and a
// hit's Copy directives run before them: a prompt admitted after
// TakeCheckpoints in the same step must not hit it. Before, it did: its
// copies read the checkpoint's pages in the same batch that wrote them
// (ExampleManager_TakeCheckpoints printed such a step), restoring a
// state no kernel had computed. Once the step ends, the next prompt hits
// it.
func TestAudit65NoHitOfAnUnwrittenCheckpoint(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	prefix := seqOf(1, 16)
	with := func(tail int32) []int32 {
		return append(append([]int32(nil), prefix...), tail, tail, tail, tail, tail)
	}
	w, _, err := m.Create(with(1000), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(w))
	m.EndStep()
	_, _, err = m.Create(with(2000), nil)
	require.NoError(t, err)
	ck := m.TakeCheckpoints(nil)
	require.Len(t, ck, 1, "the branch point's checkpoint, to write in this step")
	y, cached, err := m.Create(with(3000), nil)
	require.NoError(t, err)
	assert.Zero(t, cached, "the same step: the checkpoint is not written yet")
	for _, c := range m.TakeCopies(nil) { // (ends the step)
		assert.NotContains(t, ck[0].Pages, c.Src, "a copy reads the unwritten checkpoint")
	}
	require.NoError(t, m.Check())
	z, cached, err := m.Create(with(4000), nil)
	require.NoError(t, err)
	assert.Equal(t, 16, cached, "the next step hits it")
	copies := m.TakeCopies(nil)
	require.Len(t, copies, 2)
	assert.Equal(t, ck[0].Pages[0], copies[0].Src)
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(y))
	require.NoError(t, m.Free(z))
}
