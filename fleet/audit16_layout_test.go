package fleet_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16LayoutBoundsFitInt32: the layout bounds are int constants
// compared with paged.Group's int fields, so they must fit a 32-bit int,
// or package fleet does not compile for GOARCH=386 or arm (it did before
// layouts: `GOARCH=386 go build ./...`). Scoring's token arithmetic must
// not overflow there either: a window's need is at most span+block size.
func TestAudit16LayoutBoundsFitInt32(t *testing.T) {
	require.LessOrEqual(t, int64(fleet.MaxLayoutSpan)+int64(fleet.MaxLayoutBlockSize), int64(math.MaxInt32))
	l := fleet.Layout{BlockSize: fleet.MaxLayoutBlockSize, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: fleet.MaxLayoutSpan}, {Kind: paged.ChunkedLocal, Chunk: fleet.MaxLayoutSpan}}}
	require.NoError(t, l.Validate())
	back, err := fleet.ParseLayout(l.String())
	require.NoError(t, err)
	require.Equal(t, l, back)
}
