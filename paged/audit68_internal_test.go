package paged

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Internal tests of the twenty-first mutation round (docs/testing.md);
// the others are in audit68_test.go, and two cases of
// TestAudit56CheckCatchesGroupCorruption close M1023 and M1028.

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
