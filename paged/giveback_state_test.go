package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// giveBackLayouts are the State group layouts the give-back tests use.
var giveBackLayouts = [][]paged.Group{
	{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}},
	{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}},
}

// computedPrompt returns a manager of layout (blocks of 4) running an
// 8-token prompt whose step ran.
func computedPrompt(t *testing.T, layout []paged.Group) (*paged.Manager, paged.SeqID) {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 40, Groups: layout})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(8, 1), nil)
	require.NoError(t, err)
	m.EndStep() // the prompt's step ran
	return m, id
}

// TestGiveBackDroppedStepWithStateGroup: a scheduler that drops a step in
// the step being built (Uncompute) gives its tokens back (Truncate) on a
// manager with a State group too: that step has not run, so no state
// absorbed them. Once the step's directives are taken, or after an
// Append, the cut is refused again (a later step may have computed the
// tokens), and never below the position Uncompute named.
func TestGiveBackDroppedStepWithStateGroup(t *testing.T) {
	for _, layout := range giveBackLayouts {
		m, id := computedPrompt(t, layout)

		// Dropped in the step being built, given back at once.
		require.NoError(t, m.Append(id, 50, 51, 52))
		require.NoError(t, m.Uncompute(id, 8))
		require.NoError(t, m.Truncate(id, 10), "a dropped step's tokens, in its step")
		require.NoError(t, m.Truncate(id, 8), "down to what Uncompute named")
		require.ErrorIs(t, m.Truncate(id, 7), paged.ErrInvalid, "the state absorbed the prompt")
		require.NoError(t, m.Check())

		// Dropped, but the step's directives are taken before the cut.
		require.NoError(t, m.Append(id, 50, 51, 52))
		require.NoError(t, m.Uncompute(id, 8))
		m.EndStep()
		require.ErrorIs(t, m.Truncate(id, 9), paged.ErrInvalid, "the step ended")
		n, err := m.Len(id)
		require.NoError(t, err)
		require.Equal(t, 11, n, "a refused Truncate changes nothing")

		// Given back, then given again in the same step: the record ends.
		require.NoError(t, m.Append(id, 60))
		require.NoError(t, m.Uncompute(id, 11))
		require.NoError(t, m.Append(id, 61))
		require.ErrorIs(t, m.Truncate(id, 12), paged.ErrInvalid, "an Append ends Uncompute's record")

		// A Preempt forgets it.
		m.EndStep()
		require.NoError(t, m.Append(id, 62))
		require.NoError(t, m.Uncompute(id, 13))
		require.NoError(t, m.Preempt(id))
		_, err = m.Admit(id)
		require.NoError(t, err)
		require.ErrorIs(t, m.Truncate(id, 13), paged.ErrInvalid, "readmitted: its state is recomputed whole")
		require.NoError(t, m.Check())
	}
}
