package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The hundred-and-twenty-second round of mutation testing
// (docs/testing.md): retention and the group operations; the tests that
// read the manager's insides are in audit170_internal_test.go.

// TestAudit170PinsOnlyTheWindowBeforeTheBranch (M5017): a sequence pins,
// of its window blocks before its branch point, only the window a hit
// there reads. Here B's branch point is the 4 blocks of A's prompt that
// A still holds, but A's window blocks slid out and were evicted, so B
// hits nothing and computes its window blocks 0 to 3 itself: when they
// slide out it pins 2 and 3 (window 4, blocks of 2: the query at 8
// reads from block 2) and gives 0 and 1 up. The mutant pinned all four.
func TestAudit170PinsOnlyTheWindowBeforeTheBranch(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 26,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}})
	require.NoError(t, err)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	for i := range 8 {
		require.NoError(t, m.Append(a, int32(100+i)))
	}
	m.EndStep()
	// C takes the rest of the pool: the low shelf, where A's slid window
	// blocks wait, goes first.
	c, _, err := m.Create([]int32{50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63}, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(c))
	b, cached, err := m.Create(append(prompt[:8:8], 30, 31), nil)
	require.NoError(t, err)
	require.Zero(t, cached, "B's window hit was evicted")
	require.NoError(t, m.Append(b, 32, 33))
	m.EndStep()
	require.NoError(t, m.Append(b, 34)) // the window has left blocks 0 to 3
	require.Equal(t, 2, m.Stats().RetentionPins, "B pins the window before its branch point, blocks 2 and 3")
	require.NoError(t, m.Check())
}

// TestAudit170PreemptKeepsEveryFullGroupHigh (M5020): a preempted
// sequence's whole hit waits on the high shelf for its resume, the
// blocks of every full-attention group, not group 0's alone. Here 4 full
// blocks in each of two full groups and the window before the end (2
// blocks: window 4, blocks of 2) make 10; the mutant left group 1's
// four to the policy, where any allocation takes them before the high
// shelf.
func TestAudit170PreemptKeepsEveryFullGroupHigh(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 32, Groups: []paged.Group{
		{Kind: paged.FullAttention}, {Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8}, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Preempt(a))
	_, high := paged.Shelves(m)
	require.Equal(t, 10, high)
	require.NoError(t, m.Check())
}

// TestAudit170DroppedPreemptedReleasesEveryDuplicate (M5028): B computed
// blocks 1 and 2 of a chain that A had computed too (B's prompt ended
// inside block 1, so it hit block 0 only): the index holds two blocks
// for each of their hashes, A's first. A finished, so its copies are
// the policy's; B was preempted, so its whole hit waits on the high
// shelf. When B is dropped without resuming, its chain past its branch
// point (block 1 on) leaves the high shelf in both groups, though the
// index names A's copies first: only blocks 0 (full attention and the
// window a hit at 1 reads) stay high. The mutant looked at the first
// block of each hash alone.
func TestAudit170DroppedPreemptedReleasesEveryDuplicate(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 32,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(a, 4, 5, 6, 7))
	m.EndStep()
	b, cached, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	require.Equal(t, 2, cached)
	require.NoError(t, m.Append(b, 4, 5, 6, 7))
	m.EndStep()
	require.NoError(t, m.Free(a))
	require.NoError(t, m.Preempt(b))
	_, high := paged.Shelves(m)
	require.Equal(t, 6, high, "B's blocks 0 to 2 in both groups")
	require.NoError(t, m.Free(b))
	_, high = paged.Shelves(m)
	require.Equal(t, 2, high, "B's blocks 0")
	require.NoError(t, m.Check())
}
