package paged

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Internal tests of the hundred-and-twenty-second mutation round
// (docs/testing.md); the others are in audit170_test.go.

// TestAudit170CheckRefusesUncachedPin (M5019): a retention pin holds a
// cached window block (pinsAt asks for its content: no hit can use one
// without); Check refuses a pin whose block lost its content, its
// references and counts all right, by the pin rule's message. The
// mutant let it pass, and Check found nothing.
func TestAudit170CheckRefusesUncachedPin(t *testing.T) {
	m := shelfManager(t, Group{Kind: SlidingWindow, Window: 4})
	prefix := []int32{1, 2, 3, 4, 5, 6, 7, 8} // 4 blocks
	run(t, m, append(prefix[:8:8], 50, 51), nil)
	b, cached, err := m.Create(append(prefix[:8:8], 60, 61), nil)
	require.NoError(t, err)
	require.Equal(t, 8, cached)
	for i := range 8 {
		require.NoError(t, m.Append(b, int32(70+i)))
	}
	s, err := m.seq(b)
	require.NoError(t, err)
	require.NotEmpty(t, s.keep.pins, "B pins the window before its branch point")
	require.NoError(t, m.Check())
	m.bp.forget(s.keep.pins[0])
	require.Regexp(t, `pins block \d+, which is not a cached window block$`, m.Check())
}

// TestAudit170CheckCatchesGroupCorruption (M5038-M5040): Check's rules
// on spare draft states, on the last block of a sequence on the
// one-token fast path and on a swapped-out sequence's host tables, each
// broken alone and named by its own message, through audit 56's table.
// Each mutant dropped one test of a rule, and Check named the
// corruption later by another rule's message or not at all.
func TestAudit170CheckCatchesGroupCorruption(t *testing.T) {
	checkGroupCorruptions(t, []groupCorruption{
		{"a cached spare page", `state group 1 spare page \d+ has 1 references \(cached true\)$`,
			[]Group{{Kind: FullAttention}, {Kind: State, Pages: 2}},
			func(m *Manager, id SeqID) {
				require.NoError(t, m.AppendSpeculative(id, 13, 14, 15))
				require.NoError(t, m.AcceptSpeculative(id, 0))
			},
			func(m *Manager, s *sequence) { m.bp.index.meta[s.ext[0].spare[0]].cached = true }},
		// Truncate leaves the cut last block's cached content and takes
		// the sequence off the fast path; put back on it, its appends
		// would write the cached block in place.
		{"a cached last block on the fast path", `group 0: last block \d+ is shared \(1 references\) or cached \(true\)`,
			[]Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}},
			func(m *Manager, id SeqID) {
				m.EndStep()
				require.NoError(t, m.Truncate(id, 10))
			},
			func(m *Manager, s *sequence) {
				require.True(t, s.gslow)
				require.True(t, m.bp.hasContent(s.blocks[2]))
				s.gslow = false
			}},
		{"a swapped-out live entry naming no host block", `group 1 entry 2 names host block \S+, released 0$`,
			[]Group{{Kind: FullAttention}, {Kind: FullAttention}},
			func(m *Manager, id SeqID) {
				m.EndStep()
				require.NoError(t, m.SwapOut(id))
			},
			func(_ *Manager, s *sequence) { s.ext[0].host[2] = allocator.NoBlock }},
	})
}
