package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/sched"
)

// TestForkRequeueMakesProgress: with AdmitFirst and a token budget, a
// prompt whose forks found no room for their state pages was requeued and
// admitted again first in every step, taking the whole budget, so the
// request holding the pages never decoded and never freed them: a
// livelock (499 preemptions in 500 steps, the other request stuck
// forever). Admission now leaves room for the forks' state pages, or the
// prompt waits.
func TestForkRequeueMakesProgress(t *testing.T) {
	for nb := 15; nb <= 30; nb++ { // 14 blocks hold the prompt, its state and the forks' (TestForkThatCanNeverFit)
		m := stateManager(t, nb, 4)
		s, err := sched.New(m, sched.Config{AdmitFirst: true, MaxBatchTokens: 8, ChunkedPrefill: true})
		require.NoError(t, err)
		a, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 20})
		require.NoError(t, err)
		b, err := s.Submit([]int32{11, 12, 13, 14, 15, 16, 17, 18}, sched.Options{MaxTokens: 3, N: 3})
		require.NoError(t, err)
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 100, "nb %d: no progress (%d preemptions)", nb, s.Stats().Preemptions)
			st, err := s.Schedule()
			require.NoError(t, err)
			m.TakeCopies(nil)
			require.NoError(t, s.Update(make([]int32, st.Outputs)))
			require.NoError(t, m.Check())
		}
		t.Logf("nb %d: %d steps, %d preemptions, %d manager preemptions, %d admissions taken back", nb, s.Stats().Steps, s.Stats().Preemptions, m.Stats().Preemptions, m.Stats().Unadmits)
		assert.Equal(t, sched.Finished, a.State(), "nb %d", nb)
		assert.Equal(t, sched.Finished, b.State(), "nb %d", nb)
		assert.Zero(t, m.Stats().UsedBlocks, "nb %d", nb)
	}
}
