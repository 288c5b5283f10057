package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit63LayoutSharedTargets (the seventeenth mutation round,
// docs/testing.md): a paged.Config's Shared group keeps its target in
// the layout LayoutOf gives (M881), and a Shared target below 0 is
// ErrInvalid wherever a layout comes in, not an index out of range (M884).
func TestAudit63LayoutSharedTargets(t *testing.T) {
	cfg := paged.Config{BlockSize: 4, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.Shared, Target: 1}}}
	l := fleet.LayoutOf(cfg)
	assert.Equal(t, "b4 full window:8 shared:1", l.String())
	require.NoError(t, l.Validate())

	bad := fleet.Layout{BlockSize: 4, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared, Target: -1}}}
	assert.ErrorIs(t, bad.Validate(), fleet.ErrInvalid)
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	assert.ErrorIs(t, x.SetLayout("gpu", bad), fleet.ErrInvalid)
	_, err = fleet.ParseLayout("b4 full shared:-1")
	assert.ErrorIs(t, err, fleet.ErrInvalid)
}
