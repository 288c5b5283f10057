package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/sched"
)

// TestUndoneAdmissionCountsOnce: an admission that leaves no room for the
// forks' state pages is taken back (forkRoom) and made again later. The
// manager's statistics counted it as a lookup and a preemption each time
// (it was undone with Uncompute and Preempt): PrefixQueries exceeded the
// admissions the scheduler made and Preemptions the preemptions it made.
// paged.Manager.Unadmit now takes it back as if it had not been made.
// With CheckBeforeAdmit every Admit call fits, so each counted lookup is
// one the scheduler kept (Stats.Admissions), and each manager preemption
// one the scheduler made (Stats.Preemptions: recompute only, none
// aborted).
func TestUndoneAdmissionCountsOnce(t *testing.T) {
	undone := 0
	for nb := 15; nb <= 30; nb++ {
		m := stateManager(t, nb, 4)
		s, err := sched.New(m, sched.Config{AdmitFirst: true, MaxBatchTokens: 8, ChunkedPrefill: true, CheckBeforeAdmit: true})
		require.NoError(t, err)
		_, err = s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 20})
		require.NoError(t, err)
		_, err = s.Submit([]int32{11, 12, 13, 14, 15, 16, 17, 18}, sched.Options{MaxTokens: 3, N: 3})
		require.NoError(t, err)
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 100, "nb %d: no progress", nb)
			st, err := s.Schedule()
			require.NoError(t, err)
			m.TakeCopies(nil)
			require.NoError(t, s.Update(make([]int32, st.Outputs)))
			require.NoError(t, m.Check())
		}
		ss, ms := s.Stats(), m.Stats()
		require.Zero(t, ss.Aborted, "nb %d", nb)
		undone += int(ss.AdmitCalls - ss.Admissions)
		assert.Equal(t, uint64(ss.Admissions), ms.PrefixQueries, "nb %d: lookups counted (%d admit calls, %d admissions)", nb, ss.AdmitCalls, ss.Admissions)
		assert.Equal(t, uint64(ss.Preemptions), ms.Preemptions, "nb %d: preemptions counted", nb)
		assert.Equal(t, uint64(ss.AdmitCalls-ss.Admissions), ms.Unadmits, "nb %d: admissions taken back", nb)
	}
	require.Positive(t, undone, "some admission was undone")
}
