package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// stateManager is a manager of full attention beside a State group of
// pages pages, with nb blocks of 4 tokens.
func stateManager(t *testing.T, nb, pages int) *paged.Manager {
	return newManager(t, paged.Config{BlockSize: 4, NumBlocks: nb,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: pages}}})
}

// liveSamples counts the samples of rs that hold a manager sequence.
func liveSamples(rs ...*sched.Request) int {
	n := 0
	for _, r := range rs {
		for i := range r.Samples() {
			if r.Seq(i) != 0 {
				n++
			}
		}
	}
	return n
}

// TestBeamReparentWithoutRoomForStatePages: a beam search over a State
// group whose UpdateBeams chooses one parent for every beam forks it
// twice, and each fork needs state pages of its own. In a pool the other
// request fills, the forks used to come before the frees of the beams no
// one chose: the first fork took the last pages, the second failed with
// ErrNoSpace, UpdateBeams returned it halfway (the first fork leaked, a
// manager sequence no beam named) and the scheduler could not go on. The
// beams freed first give back exactly the pages the forks take.
func TestBeamReparentWithoutRoomForStatePages(t *testing.T) {
	for nb := 18; nb <= 30; nb++ {
		m := stateManager(t, nb, 2)
		s, err := sched.New(m, sched.Config{})
		require.NoError(t, err)
		r, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 3})
		require.NoError(t, err)
		long := make([]int32, 30)
		for i := range long {
			long[i] = int32(100 + i)
		}
		o, err := s.Submit(long, sched.Options{MaxTokens: 30})
		require.NoError(t, err)
		var tokens []int32
		parents := []int{}
		for steps := 0; s.Busy(); steps++ {
			require.Less(t, steps, 300, "nb %d: no progress", nb)
			st, err := s.Schedule()
			require.NoError(t, err)
			m.TakeCopies(nil)
			tokens, parents = tokens[:0], parents[:0]
			for _, sc := range st.Scheduled {
				for j := range sc.Outputs {
					tokens = append(tokens, 7)
					p := sc.Sample + j
					if sc.Request == r && r.Beams() > 0 {
						p = 0 // every beam extends beam 0
					}
					parents = append(parents, p)
				}
			}
			require.NoError(t, s.UpdateBeams(tokens, parents), "nb %d step %d", nb, steps)
			require.NoError(t, m.Check())
			require.Equal(t, liveSamples(r, o), m.Stats().Sequences, "nb %d step %d: a manager sequence no sample names", nb, steps)
		}
		assert.Equal(t, sched.Finished, r.State(), "nb %d", nb)
		assert.Equal(t, sched.Finished, o.State(), "nb %d", nb)
		assert.Zero(t, m.Stats().UsedBlocks, "nb %d", nb)
	}
}

// TestForkRequeueAfterLaterDecode: admission sets the forks' state pages
// aside, but a decode later in the same step (AdmitFirst) may take them;
// the prompt's forks then fail at the Update, which sends it back by
// recompute while the other runs, and both finish. (A later admission
// may not take them: it waits, TestForkSetAsideHoldsAdmissions.)
func TestForkRequeueAfterLaterDecode(t *testing.T) {
	m := stateManager(t, 13, 2)
	var requeued []*sched.Request
	s, err := sched.New(m, sched.Config{AdmitFirst: true, Hooks: sched.Hooks{
		Preempted: func(r *sched.Request, _ int, _ bool) { requeued = append(requeued, r) }}})
	require.NoError(t, err)
	c, err := s.Submit([]int32{11, 12, 13, 14, 15, 16, 17, 18}, sched.Options{MaxTokens: 3})
	require.NoError(t, err)
	st, err := s.Schedule()
	require.NoError(t, err)
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	b, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8}, sched.Options{MaxTokens: 2, N: 3})
	require.NoError(t, err)
	st, err = s.Schedule()
	require.NoError(t, err)
	require.Len(t, st.Scheduled, 2, "the prompt admitted, then the other's decode, which takes a block")
	require.NoError(t, s.Update(make([]int32, st.Outputs)))
	assert.Equal(t, []*sched.Request{b}, requeued, "the forks found no room: the prompt went back")
	assert.Equal(t, 1, b.Samples())
	drain(t, s, 7)
	assert.Equal(t, sched.Finished, b.State())
	assert.Equal(t, sched.Finished, c.State())
	assert.Zero(t, m.Stats().UsedBlocks)
}

// TestForkSetAsideHoldsAdmissions: while a prompt's forks wait for their
// state pages, an admission that would take them waits too, and so does
// a second such prompt (computed in chunks side by side, each held what
// the other's forks needed, and both went back in turn forever: the
// scheduler state machine found it, seed 3535154259710481724).
func TestForkSetAsideHoldsAdmissions(t *testing.T) {
	for _, n := range []int{1, 3} {
		m := stateManager(t, 12, 2)
		s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 8})
		require.NoError(t, err)
		b, err := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, sched.Options{MaxTokens: 2, N: 3})
		require.NoError(t, err)
		c, err := s.Submit([]int32{21, 22, 23, 24}, sched.Options{MaxTokens: 3, N: n})
		require.NoError(t, err)
		st, err := s.Schedule()
		require.NoError(t, err)
		require.Len(t, st.Scheduled, 1, "n %d: the prompt's first chunk", n)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
		st, err = s.Schedule()
		require.NoError(t, err)
		require.Len(t, st.Scheduled, 1, "n %d: the prompt's last chunk only: the other would take its forks' pages", n)
		assert.Equal(t, b, st.Scheduled[0].Request)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
		assert.Equal(t, 3, b.Samples(), "n %d: forked", n)
		drain(t, s, 7)
		assert.Equal(t, sched.Finished, b.State())
		assert.Equal(t, sched.Finished, c.State())
		assert.Zero(t, m.Stats().UsedBlocks)
	}
}
