package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestStepCheckpointsGiveStateHits: a server loop that uses only the
// scheduler's API (Schedule, BuildBatch, Update) gets state-group prefix
// hits. Before, the branch-point checkpoints had to be taken from the
// manager (TakeCheckpoints) every step, and a loop that did not call it
// dropped them: a State group never hit. Schedule now takes them into
// Step.Checkpoints, so the manager has none left for the step, and every
// one lies within the tokens the step computes for its sequence.
func TestStepCheckpointsGiveStateHits(t *testing.T) {
	const bs, shared = 4, 6 * 4
	m := newManager(t, paged.Config{BlockSize: bs, NumBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	var b paged.Batch
	taken := 0
	var rs []*sched.Request
	for i := range 4 {
		p := make([]int32, shared+5)
		for k := range p {
			p[k] = int32(k + 1)
			if k >= shared {
				p[k] += int32(1000 * (i + 1))
			}
		}
		r, err := s.Submit(p, sched.Options{MaxTokens: 3, N: 1 + i%2})
		require.NoError(t, err)
		rs = append(rs, r)
		var tokens []int32
		for s.Busy() {
			st, err := s.Schedule()
			require.NoError(t, err)
			require.NoError(t, s.BuildBatch(&b))
			assert.Empty(t, m.TakeCheckpoints(nil), "Schedule took the step's checkpoints")
			for _, c := range st.Checkpoints {
				k := -1
				for j, sc := range st.Scheduled {
					if sc.Seq == c.Seq {
						k = j
					}
				}
				require.GreaterOrEqual(t, k, 0, "checkpoint of %v, which is not in the step", c.Seq)
				sc := st.Scheduled[k]
				assert.True(t, c.Tokens >= sc.Start && c.Tokens <= sc.Start+sc.NewTokens, "checkpoint at %d of a step computing [%d, %d)", c.Tokens, sc.Start, sc.Start+sc.NewTokens)
				assert.Len(t, c.Pages, 2)
				taken++
			}
			tokens = tokens[:0]
			for range st.Outputs {
				tokens = append(tokens, 7)
			}
			require.NoError(t, s.Update(tokens))
			require.NoError(t, m.Check())
		}
	}
	assert.Equal(t, 1, taken, "one checkpoint, at the branch point the second request found")
	assert.Zero(t, rs[0].Cached())
	assert.Zero(t, rs[1].Cached(), "its attention blocks hit, but no state was saved there yet")
	for _, r := range rs[2:] {
		assert.Equal(t, shared, r.Cached(), "request %d hits the shared prefix with its state", r.ID())
	}
}

// TestUndoneAdmissionKeepsCheckpoint: an admission undone because it left
// no room for the forks' state pages (forkRoom) asked the manager for the
// checkpoint at the sequence's branch point, and the Preempt that undid it
// dropped the request, while the manager kept the branch point as taken:
// the readmission asked none, so the prefix never got a state checkpoint
// and later prompts sharing it never hit. B (two samples) shares P's
// prefix and waits beside L for room; D, with the same prefix, must hit
// it with its state.
func TestUndoneAdmissionKeepsCheckpoint(t *testing.T) {
	const bs, shared = 4, 8
	prefix := func(tail ...int32) []int32 {
		p := []int32{1, 2, 3, 4, 5, 6, 7, 8}
		return append(p, tail...)
	}
	undone := 0
	for nb := 8; nb <= 30; nb++ {
		m := newManager(t, paged.Config{BlockSize: bs, NumBlocks: nb,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
		s, err := sched.New(m, sched.Config{})
		require.NoError(t, err)
		taken := 0
		run := func() {
			var tokens []int32
			for steps := 0; s.Busy(); steps++ {
				require.Less(t, steps, 300, "nb %d: no progress", nb)
				st, err := s.Schedule()
				require.NoError(t, err)
				taken += len(st.Checkpoints)
				tokens = tokens[:0]
				for range st.Outputs {
					tokens = append(tokens, 9)
				}
				require.NoError(t, s.Update(tokens))
				require.NoError(t, m.Check())
			}
		}
		_, err = s.Submit(prefix(100, 101, 102, 103, 104), sched.Options{MaxTokens: 1})
		require.NoError(t, err)
		run()
		_, err = s.Submit([]int32{50, 51, 52, 53, 54, 55, 56, 57}, sched.Options{MaxTokens: 12})
		require.NoError(t, err)
		b, err := s.Submit(prefix(200, 201, 202, 203, 204), sched.Options{MaxTokens: 2, N: 2})
		require.NoError(t, err)
		taken = 0
		unadmits := m.Stats().Unadmits
		run()
		forB := taken
		u := b.State() == sched.Finished && m.Stats().Unadmits > unadmits
		d, err := s.Submit(prefix(300, 301, 302, 303, 304), sched.Options{MaxTokens: 1})
		require.NoError(t, err)
		run()
		if !u {
			continue // no admission of B was undone
		}
		undone++
		assert.Equal(t, 1, forB, "nb %d: B's admission was undone, then its branch point got no checkpoint", nb)
		if nb >= 10 { // smaller pools evict the checkpoint before D comes
			assert.Equal(t, shared, d.Cached(), "nb %d: D hits the prefix with B's checkpoint", nb)
		}
	}
	require.Positive(t, undone, "no pool size undid an admission of B")
}
