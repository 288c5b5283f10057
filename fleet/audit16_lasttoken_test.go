package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16ScoreOfAWholeBlockPrompt: a prompt of whole blocks is hit
// at most one block short (its last token is computed), so for a server
// with a state group the hashes to score are those of (tokens-1)/B
// blocks: a checkpoint after the last block, which no admission can use,
// would otherwise be scored as a hit of the whole prompt while the
// manager hits nothing. Lookup's doc says which hashes to pass.
func TestAudit16ScoreOfAWholeBlockPrompt(t *testing.T) {
	cfg := paged.Config{BlockSize: 2, NumBlocks: 64, Events: 256, Groups: []paged.Group{{}, {Kind: paged.State, Pages: 1}}}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("gpu", fleet.LayoutOf(cfg)))
	run := func(prompt []int32) int {
		id, err := m.Add(prompt, nil)
		require.NoError(t, err)
		hit, err := m.Admit(id)
		require.NoError(t, err)
		m.TakeCheckpoints(nil)
		m.TakeCopies(nil)
		require.NoError(t, m.Free(id))
		require.NoError(t, x.Apply("gpu", m.DrainEvents(nil)))
		return hit
	}
	run([]int32{1, 2, 3, 4, 5, 6, 7})
	run([]int32{1, 2, 3, 4, 9, 9, 9}) // a checkpoint at its branch point, after 2 blocks
	prompt := []int32{1, 2, 3, 4}
	hashes, err := m.BlockHashes(nil, prompt, nil)
	require.NoError(t, err)
	sc, err := x.Lookup(hashes, nil)
	require.NoError(t, err)
	require.Equal(t, 2, sc[0].Blocks, "every full block given: the checkpoint after block 1 counts")
	sc, err = x.Lookup(hashes[:(len(prompt)-1)/2], nil)
	require.NoError(t, err)
	require.Equal(t, 0, sc[0].Blocks, "the blocks a hit may cover: no checkpoint after block 0")
	require.Equal(t, 0, run(prompt), "the manager's hit")
}
