package paged_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestUntakenCopiesHoldNoPins: a sequence that hits a state checkpoint
// pins its pages and copies its state from them. A caller that builds no
// batch (a simulation, sched's tests) never takes the copies: EndStep
// ends their step, and they ran with it. Retention held such a pin for
// good as a copy's source (pinHeld read every copy ever left untaken,
// not the step's), so the sequence, alone in the pool, could not grow
// into the pins' room as one whose copies were taken does, and sched
// aborted a request a fresh pool serves ("cannot grow past",
// TestAudit26ChunksDraftsUnderPressure, seed 12902217362356572965).
func TestUntakenCopiesHoldNoPins(t *testing.T) {
	grow := func(take bool) (int, paged.Stats) {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
		require.NoError(t, err)
		prefix := seqOf(1, 12)
		with := func(tail int32) []int32 {
			return append(append([]int32(nil), prefix...), tail, tail+1, tail+2, tail+3, tail+4)
		}
		a, _, err := m.Create(with(100), nil)
		require.NoError(t, err)
		require.Empty(t, m.TakeCheckpoints(nil), "nothing shared yet")
		b, _, err := m.Create(with(200), nil)
		require.NoError(t, err)
		require.Len(t, m.TakeCheckpoints(nil), 1)
		m.TakeCopies(nil)
		require.NoError(t, m.Free(a))
		require.NoError(t, m.Free(b))
		d, cached, err := m.Create(with(400), nil)
		require.NoError(t, err)
		require.Equal(t, 12, cached, "the checkpoint's hit")
		if take {
			m.TakeCopies(nil)
		} else {
			m.EndStep()
		}
		require.NotZero(t, m.Stats().RetentionPins, "the checkpoint's pages are pinned")
		for {
			err := m.Append(d, 7)
			if err != nil {
				require.True(t, errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever), "%v", err)
				break
			}
			m.EndStep()
		}
		require.NoError(t, m.Check())
		n, err := m.Len(d)
		require.NoError(t, err)
		return n, m.Stats()
	}
	took, st := grow(true)
	left, _ := grow(false)
	assert.NotZero(t, st.RetentionPinsReleased, "the lone sequence grew into its pins' room")
	assert.Equal(t, took, left, "copies left untaken past their step hold the pins")
}
