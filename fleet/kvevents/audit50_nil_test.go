package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit50LearnTakesNilAndHandBuiltBatches: Learn of a nil batch
// learns nothing, and an event of a hand-built Batch with fewer Meta
// entries than Events carries no spec, so it teaches nothing; the events
// that have their Meta still count. Before audit 50 the first panicked
// with a nil dereference and the second with "index out of range [1]
// with length 1".
func TestAudit50LearnTakesNilAndHandBuiltBatches(t *testing.T) {
	var l LayoutLearner
	require.NotPanics(t, func() { l.Learn(nil) })
	_, err := l.Layout(1)
	require.ErrorIs(t, err, ErrInvalid, "nothing learnt yet")

	stored := paged.Event{Kind: paged.BlockStored, BlockSize: 16}
	b := &Batch{
		Events: []paged.Event{stored, stored},
		Meta:   []Meta{{HasGroup: true, Spec: SpecFullAttention}},
	}
	require.NotPanics(t, func() { l.Learn(b) })
	layout, err := l.Layout(1)
	require.NoError(t, err)
	assert.Equal(t, 16, layout.BlockSize)
	assert.Equal(t, paged.FullAttention, layout.Groups[0].Kind)
}
