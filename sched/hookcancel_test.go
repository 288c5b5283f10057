package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// A hook called inside Schedule cannot cancel (the step loop would append
// to or preempt the freed sequences): Cancel is refused with ErrInvalid
// and changes nothing, and the run goes on. Before, the cancel went
// through and the same Schedule failed on the freed sequence ("append to
// seq1.1: unknown or freed sequence"), leaving the scheduler unusable.
func TestCancelFromScheduleHookRefused(t *testing.T) {
	for _, hook := range []string{"Scheduled", "Preempted", "PhaseDecode"} {
		t.Run(hook, func(t *testing.T) {
			m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 6})
			var s *sched.Scheduler
			var target *sched.Request
			var refused int
			try := func() {
				if target == nil || target.State().Done() {
					return
				}
				before := target.State()
				err := s.Cancel(target)
				assert.ErrorIs(t, err, sched.ErrInvalid)
				assert.Equal(t, before, target.State(), "a refused Cancel changes nothing")
				refused++
			}
			cfg := sched.Config{}
			switch hook {
			case "Scheduled":
				cfg.Hooks.Scheduled = func(sc *sched.Scheduled) { try() }
			case "Preempted":
				cfg.Hooks.Preempted = func(*sched.Request, int, bool) { try() }
			case "PhaseDecode":
				cfg.Hooks.Phase = func(p sched.Phase) {
					if p == sched.PhaseDecode {
						try()
					}
				}
			}
			var err error
			s, err = sched.New(m, cfg)
			require.NoError(t, err)
			var rs []*sched.Request
			for i := range 3 {
				r, err := s.Submit([]int32{int32(10 * i), 1, 2}, sched.Options{MaxTokens: 6})
				require.NoError(t, err)
				rs = append(rs, r)
			}
			// Cancel a running request not yet scheduled in the step: the
			// first one, from the second step on.
			st, err := s.Schedule()
			require.NoError(t, err)
			require.NoError(t, s.Update(make([]int32, st.Outputs)))
			target = rs[0]
			drain(t, s, 1)
			assert.Positive(t, refused, "the hook ran with a live target")
			for _, r := range rs {
				assert.Equal(t, sched.Finished, r.State())
			}
			assert.Zero(t, m.Stats().Sequences)
		})
	}
}

// A Finished hook may cancel the request whose sample just finished, the
// usual "first answer wins" of parallel sampling: the other samples are
// freed, and Update does not finish them again. Before, Update went on to
// the freed samples and failed ("free seq1.1: unknown or freed sequence").
func TestCancelFromFinishedHook(t *testing.T) {
	for _, maxTokens := range []int{1, 3} {
		m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16})
		var s *sched.Scheduler
		finished := 0
		cfg := sched.Config{}
		cfg.Hooks.Finished = func(r *sched.Request, sample int) {
			finished++
			if !r.State().Done() {
				require.NoError(t, s.Cancel(r))
			}
		}
		var err error
		s, err = sched.New(m, cfg)
		require.NoError(t, err)
		// Sample outputs 7 is a stop token; with MaxTokens 1 every sample
		// finishes in the forking step.
		r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: maxTokens, N: 3, StopTokens: []int32{7}})
		require.NoError(t, err)
		other, err := s.Submit([]int32{4, 5, 6}, sched.Options{MaxTokens: 2})
		require.NoError(t, err)
		steps := 0
		for s.Busy() {
			st, err := s.Schedule()
			require.NoError(t, err)
			tokens := make([]int32, st.Outputs)
			if steps == 1 {
				tokens[0] = 7 // the first sample stops
			}
			require.NoError(t, s.Update(tokens), "step %d", steps)
			require.NoError(t, m.Check())
			steps++
			require.Less(t, steps, 100)
		}
		assert.Equal(t, sched.Cancelled, r.State())
		assert.Equal(t, sched.Finished, other.State())
		assert.Equal(t, 2, finished, "one sample of r and other, not the cancelled samples")
		assert.Zero(t, m.Stats().Sequences)
		assert.Zero(t, m.Stats().UsedBlocks)
	}
}
