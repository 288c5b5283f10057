package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit145ForkWaitsForExpiringPins: a 3-token prompt with 2 samples
// (full attention and a State group of one page, blocks of 1 token,
// chunks of 1 token) is the scheduler's only request; the caller's own
// sequence grows before the prompt's last chunk until that chunk takes
// the pool's last block, so its fork finds no page for the second
// sample's state. With nothing of the scheduler's beside it the request
// can never fork, and is aborted, unless prefix pins that expire hold
// blocks (M3625): then it is preempted by recompute, waits while the pin
// lives, and once the pin expires (Advance) is readmitted, forks and
// finishes. A pin without an expiry counts as held for good: aborted.
func TestAudit145ForkWaitsForExpiringPins(t *testing.T) {
	const until = 5
	for _, tc := range []struct {
		name  string
		pin   bool
		until int64
		waits bool
	}{
		{name: "no pin"},
		{name: "a pin that expires", pin: true, until: until, waits: true},
		{name: "a lasting pin", pin: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: 16,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
			// Two prompts sharing {90, 91}: the second asks for a state
			// checkpoint at its branch point, so the prefix is a hit in
			// both groups and can be pinned.
			warm, err := sched.New(m, sched.Config{})
			require.NoError(t, err)
			warmRun(t, warm, []int32{90, 91, 92, 93})
			warmRun(t, warm, []int32{90, 91, 80, 81})
			if tc.pin {
				require.NoError(t, m.SetPinBudget(8))
				_, held, err := m.Pin([]int32{90, 91, 92, 93}, nil, tc.until)
				require.NoError(t, err)
				require.Equal(t, 2, held)
				require.Positive(t, m.PinStats().PinnedBlocks)
			}
			ext, err := m.Add([]int32{70}, nil)
			require.NoError(t, err)
			_, err = m.Admit(ext)
			require.NoError(t, err)

			s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 1})
			require.NoError(t, err)
			r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 1, N: 2})
			require.NoError(t, err)
			stepOnce(t, s, 7)
			stepOnce(t, s, 7)
			require.Equal(t, sched.Running, r.State())
			for ms := m.Stats(); ms.FreeBlocks+ms.CachedBlocks > 1; ms = m.Stats() {
				require.NoError(t, m.Append(ext, 71))
			}
			stepOnce(t, s, 7) // the last chunk takes the last block; the fork fails
			if !tc.waits {
				assert.Equal(t, sched.Aborted, r.State())
				require.ErrorIs(t, r.Err(), sched.ErrNever)
				assert.ErrorContains(t, r.Err(), "state pages do not fit")
				assert.False(t, s.Busy())
			} else {
				assert.Equal(t, sched.Preempted, r.State(), "%v", r.Err())
				for range 3 {
					stepOnce(t, s, 7)
					require.Equal(t, sched.Preempted, r.State(), "waits while the pin lives")
				}
				m.Advance(until)
				assert.Zero(t, m.PinStats().PinnedBlocks)
				drain(t, s, 7)
				assert.Equal(t, sched.Finished, r.State(), "%v", r.Err())
				assert.Equal(t, 1, r.Outputs(0))
				assert.Equal(t, 1, r.Outputs(1))
				st := s.Stats()
				assert.EqualValues(t, 1, st.Forks)
				assert.EqualValues(t, 1, st.Preemptions)
				assert.Zero(t, st.Aborted)
			}
			require.NoError(t, m.Free(ext))
			assert.Zero(t, m.Stats().Sequences)
			require.NoError(t, m.Check())
		})
	}
}
