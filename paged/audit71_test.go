package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The twenty-fourth mutation round (docs/testing.md): paged's manager
// core and Check. Each test closes a mutation that survived it; the
// internal ones are in audit71_internal_test.go.

// TestAudit71FoldedCopyIntoReusedBlockGoes: a copy-on-write copy that a
// host-tier directive folded into the tier's stream (a swap-out after it
// in the step) has left the step's copy list but is still the step's: its
// source, released, is parked while the copy matters. Once its
// destination is freed and handed out again in the step, the copy is
// moot and forgotten, so releasing its source frees the block at once.
// B forks A and copies A's partly filled block on its first append; E is
// swapped out; B is freed; the two free blocks, B's copy among them, go
// to new blocks of running sequences, one block per Append (allocBlock)
// or both at one admission (allocBlocks); A is freed: nothing stays
// parked. M1155 and M1160 kept the moot copy when no copy was left in
// the step's list, and A's block stayed parked to the step's end.
func TestAudit71FoldedCopyIntoReusedBlockGoes(t *testing.T) {
	for _, byAppend := range []bool{true, false} {
		blocks := 7
		if byAppend {
			blocks = 9
		}
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: blocks, HostBlocks: 8})
		require.NoError(t, err)
		_, _, err = m.Create(seqOf(100, 8), nil) // two blocks
		require.NoError(t, err)
		var ds []paged.SeqID
		if byAppend {
			for i := range 2 {
				d, _, err := m.Create(seqOf(200+10*i, 4), nil) // one full block each
				require.NoError(t, err)
				ds = append(ds, d)
			}
		}
		a, _, err := m.Create(seqOf(1, 6), nil) // two blocks, the last partly filled
		require.NoError(t, err)
		e, _, err := m.Create(seqOf(400, 2), nil) // one block, swapped out below
		require.NoError(t, err)
		m.EndStep()
		b, err := m.Fork(a)
		require.NoError(t, err)
		require.NoError(t, m.Append(b, 7)) // copy-on-write of A's last block
		bt, err := m.Table(b)
		require.NoError(t, err)
		dst := bt[len(bt)-1]
		require.NoError(t, m.SwapOut(e)) // folds the copy into the tier's stream
		require.NoError(t, m.Free(b))
		require.Equal(t, 2, m.Stats().FreeBlocks, "E's block and the copy's destination")
		if byAppend {
			for _, d := range ds {
				require.NoError(t, m.Append(d, 5))
			}
		} else {
			d, _, err := m.Create(seqOf(300, 8), nil)
			require.NoError(t, err)
			ds = append(ds, d)
		}
		var reused bool
		for _, d := range ds {
			tab, err := m.Table(d)
			require.NoError(t, err)
			reused = reused || tab[len(tab)-1] == dst || tab[0] == dst
		}
		require.True(t, reused, "the copy's destination is handed out again: the test builds its case")
		require.NoError(t, m.Free(a))
		assert.Zero(t, m.Stats().ParkedBlocks, "by append %v: the moot copy parks A's block", byAppend)
		require.NoError(t, m.Check())
	}
}

// TestAudit71ShelvedBlocksGoBeforeSpares: spare draft states go back to
// the pool only when an allocation finds no block free or evictable, and
// a block waiting on a retention shelf is evictable: a pool kept full by
// cached blocks (here a preempted sequence's, which retention shelves)
// does not strip a speculating sequence of its spares. P keeps 3 spare
// states of 2 pages after rejecting its drafts; Q, preempted, leaves its
// cached blocks on a shelf; a filler takes every free block; P's next
// block evicts a shelved one and P keeps its spares. M1154 reclaimed the
// spares as soon as nothing was free or in the eviction policy, shelves
// aside.
func TestAudit71ShelvedBlocksGoBeforeSpares(t *testing.T) {
	m, err := paged.New(stateLayout(4, 24, 2))
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 4), nil)
	require.NoError(t, err)
	require.NoError(t, m.AppendSpeculative(p, 5, 6, 7))
	require.NoError(t, m.AcceptSpeculative(p, 0))
	require.Equal(t, 6, m.Stats().StateSparePages)
	q, _, err := m.Create(seqOf(100, 8), nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Preempt(q))
	free := m.Stats().FreeBlocks
	require.GreaterOrEqual(t, free, 3, "room for a filler of one block and its state")
	_, _, err = m.Create(seqOf(1000, 4*(free-2)), nil) // free-2 blocks and 2 state pages
	require.NoError(t, err)
	st := m.Stats()
	require.Zero(t, st.FreeBlocks)
	require.Positive(t, st.CachedBlocks, "Q's blocks wait on a shelf")
	require.NoError(t, m.Append(p, 5))
	st = m.Stats()
	assert.Equal(t, 6, st.StateSparePages, "P keeps its spares: a shelved block went first")
	assert.EqualValues(t, 1, st.Evictions)
	require.NoError(t, m.Check())
}
