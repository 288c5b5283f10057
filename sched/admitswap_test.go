package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAdmittedThenPreemptedIsRecomputed: under AdmitFirst the decode phase
// may preempt a sequence the admission phase of the same step admitted.
// Its prefix hits may name blocks another admission of that step computes,
// and the step's transfers run before its kernels, so swapping it out
// would copy those blocks before their KV is written. It is recomputed
// instead, as one swapped in during the step is (TestNoSwapInAndOutInOneStep).
func TestAdmittedThenPreemptedIsRecomputed(t *testing.T) {
	seen := 0
	for nb := 9; nb <= 30; nb++ {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb, HostBlocks: 64, DisableOffload: true, MaxModelLen: 64})
		admitted := map[*sched.Request]bool{} // in the step being scheduled
		cfg := sched.Config{Preemption: sched.Swap, AdmitFirst: true}
		cfg.Hooks.Scheduled = func(sc *sched.Scheduled) {
			if sc.Admitted {
				admitted[sc.Request] = true
			}
		}
		cfg.Hooks.Preempted = func(r *sched.Request, _ int, swapped bool) {
			if admitted[r] {
				seen++
				require.False(t, swapped, "nb %d: request %d admitted and swapped out in one step", nb, r.ID())
			}
		}
		s, err := sched.New(m, cfg)
		require.NoError(t, err)
		// Requests sharing a prompt's first blocks: later admissions hit
		// the blocks earlier ones compute, in the same step too.
		for i := range 6 {
			_, err := s.Submit([]int32{1, 2, 3, 4, int32(10 + i)}, sched.Options{MaxTokens: 4 + i})
			require.NoError(t, err)
		}
		var b paged.Batch
		var tokens []int32
		for n := 0; s.Busy(); n++ {
			require.Less(t, n, 1000, "nb %d: no progress", nb)
			clear(admitted)
			st, err := s.Schedule()
			require.NoError(t, err)
			require.NoError(t, s.BuildBatch(&b))
			tokens = tokens[:0]
			for range st.Outputs {
				tokens = append(tokens, 7)
			}
			require.NoError(t, s.Update(tokens))
			require.NoError(t, m.Check())
		}
	}
	require.NotZero(t, seen, "no admission was preempted in its own step")
}
