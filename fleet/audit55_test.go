package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit55BackendHelpers (the tenth mutation round, docs/testing.md):
// CheckEvents refuses the first kind past BlockMoved (M643; the old tests
// used kinds far out of range), and a state with no flag set encodes its
// flags as "-", as StreamState.String documents, so the four fields stay
// four words apart (M649: the mutant wrote two spaces, which its own
// parser read back, but a backend comparing stored text, or a reader
// splitting on runs of spaces, would not).
func TestAudit55BackendHelpers(t *testing.T) {
	err := CheckEvents([]paged.Event{{Kind: paged.BlockMoved + 1, Hashes: []paged.Hash{{1}}}})
	require.ErrorIs(t, err, ErrInvalid)
	require.NoError(t, CheckEvents([]paged.Event{{Kind: paged.BlockMoved, Hashes: []paged.Hash{{1}}, Medium: paged.Host}}))

	assert.Equal(t, "0 0 - 0", StreamState{}.String())
	assert.Equal(t, "3 9 - 12 L2", StreamState{Gen: 3, Last: 9, Seen: 12, Life: 2}.String())
	st, err := ParseStreamState("3 9 - 12 L2")
	require.NoError(t, err)
	assert.Equal(t, StreamState{Gen: 3, Last: 9, Seen: 12, Life: 2}, st)
}
