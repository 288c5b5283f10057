package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit44ForkInheritsDropMark: a fork made in the step of an
// Uncompute, before the step's directives are taken, may be cut back as
// its parent may. Its State pages are copies of the parent's, made by
// the step's Copy directives, which run before the step's kernels: they
// hold the state at the position Uncompute named, not the given-back
// tokens, and no step computes those before the step ends (when both
// marks go). Before, Fork copied the record (redo) but not the mark
// (dropNow), so the child refused the cut its parent accepted.
func TestAudit44ForkInheritsDropMark(t *testing.T) {
	for _, layout := range giveBackLayouts {
		m, id := computedPrompt(t, layout)
		require.NoError(t, m.Append(id, 50, 51, 52))
		require.NoError(t, m.Uncompute(id, 8))
		c, err := m.Fork(id)
		require.NoError(t, err)
		require.NoError(t, m.Truncate(c, 9), "the child, in the step of its parent's Uncompute")
		require.NoError(t, m.Truncate(c, 8), "the child, down to what Uncompute named")
		require.ErrorIs(t, m.Truncate(c, 7), paged.ErrInvalid, "the child's state absorbed the prompt")
		require.NoError(t, m.Truncate(id, 8), "the parent")
		require.NoError(t, m.Check())

		// A fork made in that step, cut after it ended: refused.
		require.NoError(t, m.Append(id, 60, 61))
		require.NoError(t, m.Uncompute(id, 8))
		d, err := m.Fork(id)
		require.NoError(t, err)
		m.EndStep()
		require.ErrorIs(t, m.Truncate(d, 9), paged.ErrInvalid, "the step ended")
		require.ErrorIs(t, m.Truncate(id, 9), paged.ErrInvalid, "the step ended")

		// A fork of a parent whose record is of an earlier step: unmarked.
		e, err := m.Fork(id)
		require.NoError(t, err)
		require.ErrorIs(t, m.Truncate(e, 9), paged.ErrInvalid, "the record's step ended before the fork")
		require.NoError(t, m.Check())
	}
}
