package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Internal tests of the ninety-ninth mutation round (docs/testing.md):
// the KV cache groups' tables, lookup and checks (paged/groups.go).

// TestAudit147CheckCatchesGroupTableLength: Check compares each group's
// table with its tokens (and a State group's drafts) and runs the kind's
// rule at the next position to compute, drafts left out; each is shown on
// a table broken by hand, one field each, so that no other rule sees it
// first (as TestAudit56CheckCatchesGroupCorruption for other rules).
func TestAudit147CheckCatchesGroupTableLength(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		drafts     bool
		corrupt    func(m *Manager, s *sequence)
	}{
		// M4113: a window table one entry longer than its 12 tokens'
		// three blocks (a null entry past the released ones, which the
		// entries' rule would name next).
		{"a table longer than its tokens", `group 1 \(window\) has 4 blocks for 12 tokens, want 3`, false,
			func(_ *Manager, s *sequence) { s.ext[0].blocks = append(s.ext[0].blocks, nullBlock) }},
		// M4114: with three drafts pending after 12 tokens the next
		// query is at 12 and reads from block 2 (window 4); the query at
		// 15, past the drafts, would read from block 3.
		{"a window released past its next query, with drafts", `group 1 released 3 blocks, its next query reads blocks from 2`, true,
			func(m *Manager, s *sequence) {
				require.Equal(t, 3, s.spec)
				require.Equal(t, 2, m.liveStart(1, len(s.tokens)-s.spec))
				require.Equal(t, 3, m.liveStart(1, len(s.tokens)))
				s.ext[0].released = 3
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32,
				Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}})
			require.NoError(t, err)
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
			require.NoError(t, err)
			require.NoError(t, m.Append(id, 11, 12))
			if tc.drafts {
				require.NoError(t, m.AppendSpeculative(id, 13, 14, 15))
			}
			require.NoError(t, m.Check())
			s, err := m.seq(id)
			require.NoError(t, err)
			tc.corrupt(m, s)
			err = m.Check()
			require.Error(t, err)
			require.Regexp(t, tc.want, err.Error())
		})
	}
}
