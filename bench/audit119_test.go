package bench

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The seventy-second round of mutation testing (docs/testing.md): the
// fragmentation study's allocators and its sharing run.

// TestAudit119ParseAllocatorIgnoresCase: every flag name parses in any
// case, not only the "firstfit" spelling.
func TestAudit119ParseAllocatorIgnoresCase(t *testing.T) {
	for s, want := range map[string]Allocator{"Buddy": AllocBuddy, "FIRST-FIT": AllocFirstFit, "Compact": AllocCompact, "firstFIT": AllocFirstFit} {
		a, err := ParseAllocator(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, a, s)
	}
}

// TestAudit119CompactingCheckCountsHandles: ideal compaction's Check
// finds a handle both live and on the free stack, and a free handle lost
// from the stack, though the slots add up either way.
func TestAudit119CompactingCheckCountsHandles(t *testing.T) {
	c := newCompacting(10)
	h, err := c.Alloc(4)
	require.NoError(t, err)
	_, err = c.Alloc(2)
	require.NoError(t, err)
	require.NoError(t, c.Check())
	c.handles = append(c.handles, h)
	a86MustBreak(t, "a live handle on the free stack", c.Check)

	c = newCompacting(10)
	h, err = c.Alloc(4)
	require.NoError(t, err)
	require.NoError(t, c.Release(h))
	require.NoError(t, c.Check())
	c.handles = c.handles[:0]
	a86MustBreak(t, "a free handle lost", c.Check)
}

// TestAudit119FirstFitCheckTilesTheArena: first fit's Check finds a live
// allocation starting at a hole's first slot, one running into the hole
// after it, and one running past the end of the arena. Each state is
// broken by hand from a valid one: the API builds none of them.
func TestAudit119FirstFitCheckTilesTheArena(t *testing.T) {
	// [0,4) live, hole [4,10).
	fresh := func() *FirstFit {
		f, err := NewFirstFit(10)
		require.NoError(t, err)
		off, err := f.Alloc(4)
		require.NoError(t, err)
		require.Zero(t, off)
		require.NoError(t, f.Check())
		return f
	}
	f := fresh()
	f.live[4] = 2
	a86MustBreak(t, "an allocation at the hole's first slot", f.Check)

	f = fresh()
	f.live[0] = 5
	a86MustBreak(t, "an allocation running into the hole", f.Check)

	// [0,4) and [4,10) live, no hole: the second made to run to 11.
	f = fresh()
	off, err := f.Alloc(6)
	require.NoError(t, err)
	require.Equal(t, 4, off)
	require.NoError(t, f.Check())
	f.live[4] = 7
	a86MustBreak(t, "an allocation past the arena", f.Check)
}

// TestAudit119BeamsDrawUntilTheirLastStep: a beam search whose next step
// is its last (one token generated before MaxTokens after this one)
// still re-parents its beams after this step; only a group that ends
// with this step draws nothing, and its beams keep their own sequences.
func TestAudit119BeamsDrawUntilTheirLastStep(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 16, DisablePrefixCaching: true, MaxModelLen: 64})
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	a, err := s.Submit(make([]int32, 4), sched.Options{MaxTokens: 10, BeamWidth: 2})
	require.NoError(t, err)
	const seed = 4 // its first two draws re-parent (TestAudit102BeamDrawsDecodedGroupsFirst)
	for _, c := range []struct {
		generated int
		draws     bool
	}{{7, true}, {8, true}, {9, false}} {
		st := &sched.Step{Outputs: 2, Scheduled: []sched.Scheduled{
			{Request: a, Sample: 0, Outputs: 1, Generated: c.generated},
			{Request: a, Sample: 1, Outputs: 1, Generated: c.generated},
		}}
		twin := rand.New(rand.NewPCG(seed, 2))
		want := []int{0, 1}
		if c.draws {
			kids := [2]int{}
			kids[twin.IntN(2)]++
			kids[twin.IntN(2)]++
			want = want[:0]
			for j, k := range kids {
				for range k {
					want = append(want, j)
				}
			}
			require.NotEqual(t, []int{0, 1}, want, "a seed that re-parents")
		}
		rng := rand.New(rand.NewPCG(seed, 2))
		got := drawParents(nil, st, rng, make([]int, 2))
		assert.Equal(t, want, got, "generated %d of 10", c.generated)
		assert.Equal(t, twin.Uint64(), rng.Uint64(), "generated %d of 10: the draws made", c.generated)
	}
}
