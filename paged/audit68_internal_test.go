package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Internal tests of the twenty-first mutation round (docs/testing.md);
// the others are in audit68_test.go.

// TestAudit68CheckNamesGroupOpsCorruption: Check names the rule a
// corrupted group table breaks, for two rules whose off-by-one mutants
// left the corruption to a later, vaguer message: a State group's spare
// list longer than its spare states (M1023 let a longer list pass the
// count; a page named twice then passed the per-page test, and only the
// reference count caught it) and a swapped-out window group released one
// block past the first its next query reads (M1028 let one block past
// that through; the host table's released prefix caught it instead).
func TestAudit68CheckNamesGroupOpsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		groups     []Group
		setup      func(m *Manager, id SeqID)
		corrupt    func(m *Manager, s *sequence)
	}{
		{"a spare page named twice", `group 1 keeps 7 spare pages for 3 spare states, want 6`,
			[]Group{{Kind: FullAttention}, {Kind: State, Pages: 2}},
			func(m *Manager, id SeqID) {
				require.NoError(t, m.AppendSpeculative(id, 5, 6, 7))
				require.NoError(t, m.AcceptSpeculative(id, 0))
			},
			func(_ *Manager, s *sequence) {
				require.EqualValues(t, 3, s.spares)
				s.ext[0].spare = append(s.ext[0].spare, s.ext[0].spare[0])
			}},
		{"a swapped window released past its next query", `group 1 released 3 blocks, its next query reads blocks from 2`,
			[]Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}},
			func(m *Manager, id SeqID) {
				require.NoError(t, m.Append(id, 5, 6, 7, 8, 9, 10, 11, 12))
				m.EndStep()
				require.NoError(t, m.SwapOut(id))
			},
			func(m *Manager, s *sequence) {
				require.Equal(t, 2, m.liveStart(1, len(s.tokens)), "the query at 12 reads from block 2")
				s.ext[0].released = 3
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 32, Groups: tc.groups})
			require.NoError(t, err)
			id, _, err := m.Create([]int32{1, 2, 3, 4}, nil)
			require.NoError(t, err)
			tc.setup(m, id)
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

// TestAudit68ReserveBounds: Config.Reserve's bounds are inclusive: the
// largest reserve of sequences, and of tokens, passes the field check
// and one more fails it with ErrInvalid. Called on the field check
// alone: a manager with 2^20 reserved records would take 470 MB. M1029
// refused MaxReserveSequences.
func TestAudit68ReserveBounds(t *testing.T) {
	require.NoError(t, Reserve{Sequences: MaxReserveSequences, Tokens: MaxReserveTokens}.check())
	require.ErrorIs(t, Reserve{Sequences: MaxReserveSequences + 1}.check(), ErrInvalid)
	require.ErrorIs(t, Reserve{Tokens: MaxReserveTokens + 1}.check(), ErrInvalid)
}
