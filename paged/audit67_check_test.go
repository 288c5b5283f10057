package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit67CheckCatchesKindCorruption: Check names a group that breaks
// its kind's rule on its table's counts, by the rule: a full-attention
// (or Shared) group releases nothing, not even one entry (M996 let one
// through), and a State group commits no page, not even one (M995).
func TestAudit67CheckCatchesKindCorruption(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		groups     []Group
		corrupt    func(s *sequence)
	}{
		{"a full-attention group with a released entry", `full group 1 has 1 released entries`,
			[]Group{{Kind: FullAttention}, {Kind: FullAttention}}, func(s *sequence) { s.ext[0].released = 1 }},
		{"a state group with a committed page", `state group 1 has committed pages`,
			[]Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}, func(s *sequence) { s.ext[0].committed = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: tc.groups})
			require.NoError(t, err)
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
			require.NoError(t, err)
			require.NoError(t, m.Append(id, 11, 12))
			require.NoError(t, m.Check())
			s, err := m.seq(id)
			require.NoError(t, err)
			tc.corrupt(s)
			err = m.Check()
			require.Error(t, err)
			require.Regexp(t, tc.want, err.Error())
		})
	}
}
