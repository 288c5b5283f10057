package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit121SwappedBeamsKeepTheirHandles: a beam search swapped out to
// the host tier as a group is queued through its first beam; the others
// wait with it (inGroup), and each still has its sequence in the manager:
// Request.Seq names it, for every beam, until the beam is done.
func TestAudit121SwappedBeamsKeepTheirHandles(t *testing.T) {
	const width = 3
	var swapped []int
	cfg := sched.Config{Preemption: sched.Swap, Policy: sched.Priority}
	cfg.Hooks.Preempted = func(_ *sched.Request, i int, sw bool) {
		if sw {
			swapped = append(swapped, i)
		}
	}
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 12, HostBlocks: 64, MaxModelLen: 24})
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 8, BeamWidth: width, Priority: 5})
	require.NoError(t, err)
	var tokens []int32
	var parents []int
	seen := false
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, 200, "no progress")
		if steps == 1 {
			_, err := s.Submit([]int32{50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63}, sched.Options{MaxTokens: 4})
			require.NoError(t, err)
		}
		swapped = swapped[:0]
		st, err := s.Schedule()
		require.NoError(t, err)
		if len(swapped) > 0 {
			require.Len(t, swapped, width, "the beams go to the host tier together")
			require.Equal(t, sched.Preempted, r.State())
			for i := range width {
				id := r.Seq(i)
				require.NotZero(t, id, "beam %d in the host tier names no sequence", i)
				running, err := m.Running(id)
				require.NoError(t, err, "beam %d", i)
				require.False(t, running, "beam %d", i)
			}
			seen = true
		}
		tokens, parents = ownParents(st, tokens, parents)
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	require.True(t, seen, "the beams were never swapped out")
}

// TestAudit121BeamAndSampleCounts: a beam search's width stays what was
// asked for when beams finish, while Beams counts those still going; a
// request of N samples, once forked, has no beams and no width.
func TestAudit121BeamAndSampleCounts(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	b, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 4, BeamWidth: 3, StopTokens: []int32{99}})
	require.NoError(t, err)
	n, err := s.Submit([]int32{5, 6, 7}, sched.Options{MaxTokens: 4, N: 2})
	require.NoError(t, err)
	st := beamStep(t, s)
	require.Equal(t, 5, st.Outputs, "both prompts complete and fork in the first step")
	require.NoError(t, s.Update([]int32{1, 2, 3, 1, 2}))
	assert.Equal(t, 3, b.Beams())
	assert.Equal(t, 2, n.Samples())
	assert.Zero(t, n.Beams(), "samples are not beams")
	assert.Zero(t, n.BeamWidth())
	st = beamStep(t, s)
	require.Equal(t, 5, st.Outputs)
	// Beam 0 stops; beams 1 and 2 go on.
	require.NoError(t, s.UpdateBeams([]int32{99, 4, 5, 3, 3}, []int{0, 1, 2, 0, 1}))
	assert.Equal(t, 2, b.Beams())
	assert.Equal(t, 3, b.BeamWidth(), "the width is what was asked for")
	assert.Equal(t, 3, b.N())
	assert.Zero(t, n.Beams())
	require.NoError(t, m.Check())
}

// TestAudit121RunningAfterItsFirstSampleEnds: a request whose sample 0
// ended (a stop token) and whose sample 1 was preempted and admitted
// again is Running: any sample on the device makes it so, not only the
// first. Pools of 11 to 20 one-token blocks, beside an earlier request
// of 10 tokens at its longest: sample 1 is the victim, then comes back.
func TestAudit121RunningAfterItsFirstSampleEnds(t *testing.T) {
	seen := 0
	for nb := 11; nb <= 20; nb++ {
		m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: nb, MaxModelLen: 32})
		s, err := sched.New(m, sched.Config{})
		require.NoError(t, err)
		_, err = s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 8})
		require.NoError(t, err)
		a, err := s.Submit([]int32{3, 4}, sched.Options{MaxTokens: 8, N: 2, StopTokens: []int32{99}})
		require.NoError(t, err)
		var tokens []int32
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 200, "nb %d: no progress", nb)
			st, err := s.Schedule()
			require.NoError(t, err)
			tokens = tokens[:0]
			for _, sc := range st.Scheduled {
				require.Equal(t, sched.Running, sc.Request.State(), "nb %d step %d: request %d scheduled", nb, st.Number, sc.Request.ID())
				if sc.Request == a && sc.Sample == 1 && sc.Admitted && a.Seq(0) == 0 {
					seen++
				}
				for j := range sc.Outputs {
					tok := int32(7)
					if sc.Request == a && sc.Sample+j == 0 {
						tok = 99
					}
					tokens = append(tokens, tok)
				}
			}
			require.NoError(t, s.Update(tokens))
			require.NoError(t, m.Check())
		}
	}
	require.NotZero(t, seen, "sample 1 was never admitted again after sample 0 ended")
}

// TestAudit121AnyStopTokenStops: a sample ends at any of its request's
// stop tokens, not only the first listed.
func TestAudit121AnyStopTokenStops(t *testing.T) {
	for _, tok := range []int32{97, 98, 99} {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 16})
		s, err := sched.New(m, sched.Config{})
		require.NoError(t, err)
		r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 8, StopTokens: []int32{97, 98, 99}})
		require.NoError(t, err)
		stepOnce(t, s, 5)
		stepOnce(t, s, tok)
		assert.Equal(t, sched.Finished, r.State(), "stop token %d", tok)
		assert.Equal(t, 2, r.Outputs(0), "stop token %d", tok)
		assert.False(t, s.Busy())
	}
}

// TestAudit121LoadCountsTheSampledToken: after Update, a running sample's
// newest token is not in the manager yet (it gets its slot when the
// sample next runs) but its KV is what the next decode step computes and
// reads: KVTokens counts it, prompt plus every output.
func TestAudit121LoadCountsTheSampledToken(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	for i := 1; i <= 3; i++ {
		stepOnce(t, s, 7)
		require.Equal(t, i, r.Outputs(0))
		assert.Equal(t, sched.Load{Running: 1, DecodeTokens: 4 - i, KVTokens: 5 + i}, s.Load(), "after %d outputs", i)
	}
}
