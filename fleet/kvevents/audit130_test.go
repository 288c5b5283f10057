package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// The eighty-third mutation round (docs/testing.md): the spec kinds and
// the layout learner. Each test closes a mutation that survived it.

// stored is a hand-built BlockStored of one group's block.
func stored(blockSize int) paged.Event {
	return paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, blockSize), BlockSize: blockSize}
}

// TestAudit130SpecKindNames: the first kind past "unknown" is named by
// its number, and a kind name this version does not know decodes as
// SpecUnknown, not as an event without a spec. M3488 looked the kind up
// one past the names (a panic); M3490 read an unknown name as SpecNone.
func TestAudit130SpecKindNames(t *testing.T) {
	assert.Equal(t, "unknown", SpecUnknown.String())
	assert.Equal(t, "SpecKind(11)", (SpecUnknown + 1).String())
	var b Batch
	require.NoError(t, b.Decode(specFrame(func(e *enc) { storedSpec(e, 0, "a_kind_from_the_future", 0, 16) }, 1)))
	assert.Equal(t, SpecUnknown, b.Meta[0].Spec)
}

// TestAudit130LayoutGroupKinds: an MLA sliding window is a sliding
// window. M3493 did not score it.
func TestAudit130LayoutGroupKinds(t *testing.T) {
	g, ok := Meta{Spec: SpecSlidingWindowMLA, SlidingWindow: 64}.LayoutGroup()
	assert.True(t, ok)
	assert.Equal(t, paged.Group{Kind: paged.SlidingWindow, Window: 64}, g)
}

// TestAudit130LearnReadsOnlySpecsOfStores: in a hand-built batch, an
// event other than BlockStored, an event without a spec and an event
// without a Meta entry teach nothing, so the store that follows them
// describes group 0 alone. M3496 learned from a removal and M3497
// learned SpecNone from a store without a spec (either then a
// contradiction).
func TestAudit130LearnReadsOnlySpecsOfStores(t *testing.T) {
	removed := paged.Event{Kind: paged.BlockRemoved, Hashes: []paged.Hash{{1}}}
	b := Batch{
		Events: []paged.Event{removed, stored(16), stored(16), stored(32)},
		Meta: []Meta{
			{HasGroup: true, Spec: SpecMamba},
			{HasGroup: true},
			{HasGroup: true, Spec: SpecFullAttention},
		},
	}
	var l LayoutLearner
	l.Learn(&b)
	got, err := l.Layout(1)
	require.NoError(t, err)
	assert.Equal(t, "b16 full", got.String())
}

// TestAudit130LearnRefusesAChangedBlockSize: a group described twice with
// one kind but two block sizes is a contradiction. M3498 compared only
// the kind and window.
func TestAudit130LearnRefusesAChangedBlockSize(t *testing.T) {
	m := Meta{HasGroup: true, Spec: SpecFullAttention}
	var l LayoutLearner
	l.Learn(&Batch{Events: []paged.Event{stored(16), stored(32)}, Meta: []Meta{m, m}})
	_, err := l.Layout(1)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "blocks of 16 tokens), then as")
}

// TestAudit130LayoutNamesAnUnseenGroup: groups 0 and 2 seen and 1 not,
// Layout(3) says group 1 has not been seen yet (ask again later), not
// that it cannot be scored (which will not change). M3500 reported the
// unseen group's zero spec as unscorable.
func TestAudit130LayoutNamesAnUnseenGroup(t *testing.T) {
	var l LayoutLearner
	l.Learn(&Batch{Events: []paged.Event{stored(16), stored(16)}, Meta: []Meta{
		{HasGroup: true, Spec: SpecFullAttention},
		{Group: 2, HasGroup: true, Spec: SpecMamba},
	}})
	_, err := l.Layout(3)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "no BlockStored with a spec for group 1 yet")
}

// TestAudit130LayoutIsValidated: what a hand-built batch teaches is
// still checked as a layout: a block size of 0, or a window past
// fleet's bound, gives no layout. M3503 returned it unchecked.
func TestAudit130LayoutIsValidated(t *testing.T) {
	for name, b := range map[string]*Batch{
		"block size 0": {Events: []paged.Event{stored(0)}, Meta: []Meta{{HasGroup: true, Spec: SpecFullAttention}}},
		"window":       {Events: []paged.Event{stored(16)}, Meta: []Meta{{HasGroup: true, Spec: SpecSlidingWindow, SlidingWindow: fleet.MaxLayoutSpan + 1}}},
	} {
		var l LayoutLearner
		l.Learn(b)
		_, err := l.Layout(1)
		assert.ErrorIs(t, err, ErrInvalid, name)
	}
}
