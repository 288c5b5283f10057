package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit54 tests close the gaps the ninth mutation round found in the
// layout learner (docs/testing.md, "Mutation testing, ninth round").

// learnOne returns a learner taught by one BlockStored of 16-token blocks
// with meta m.
func learnOne(m Meta) *LayoutLearner {
	var l LayoutLearner
	l.Learn(&Batch{Events: []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, BlockSize: 16}}, Meta: []Meta{m}})
	return &l
}

// TestAudit54LearnerBounds: a sliding-window spec without its window is
// not a group LayoutGroup can score (M629); an event without group_idx
// teaches nothing (M630: its group is not known, and group 0 is not a
// guess to make); group_idx 255 fails the learner with an error naming it
// (M631); and 256 groups are refused as too many, not as "not seen yet",
// which would have a caller ask again forever (M635).
func TestAudit54LearnerBounds(t *testing.T) {
	for _, w := range []int{0, -1} {
		_, ok := Meta{Spec: SpecSlidingWindow, SlidingWindow: w}.LayoutGroup()
		assert.False(t, ok, "a sliding window of %d tokens", w)
		_, ok = Meta{Spec: SpecSlidingWindowMLA, SlidingWindow: w}.LayoutGroup()
		assert.False(t, ok, "an MLA sliding window of %d tokens", w)
	}

	l := learnOne(Meta{Spec: SpecFullAttention})
	_, err := l.Layout(1)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "no BlockStored with a spec for group 0 yet", "an event without group_idx")
	l.Learn(&Batch{Events: []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{{2}}, BlockSize: 16}}, Meta: []Meta{{Spec: SpecFullAttention, HasGroup: true}}})
	got, err := l.Layout(1)
	require.NoError(t, err)
	assert.Equal(t, "b16 full", got.String())

	l = learnOne(Meta{Spec: SpecMamba, HasGroup: true, Group: 255})
	_, err = l.Layout(1)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "group_idx 255")

	_, err = learnOne(Meta{Spec: SpecFullAttention, HasGroup: true}).Layout(256)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "256 groups, want 1 to 255")
}
