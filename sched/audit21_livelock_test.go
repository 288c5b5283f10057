package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestChunkedForkingPromptsProgress: two three-sample prompts computed in
// chunks (one token a step) in a pool with a State group too small for
// both prompts and their forks. Admission set aside only the forks' state
// pages, so both were admitted; each in turn filled the pool with its
// chunks, found no room for its forks at its last chunk and went back to
// be recomputed, while the other advanced to the same point: no request
// ever finished (the state machine found it: seed 9499694469306083022,
// -rapid.steps=200). The set-aside now holds the blocks their chunks still
// take, so the second waits for the first to fork.
func TestChunkedForkingPromptsProgress(t *testing.T) {
	for _, admitFirst := range []bool{false, true} {
		for nb := 9; nb <= 14; nb++ {
			m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
			s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 1, AdmitFirst: admitFirst})
			require.NoError(t, err)
			var rs []*sched.Request
			for i := range 2 {
				p := make([]int32, 10)
				for k := range p {
					p[k] = int32(100*i + k + 1)
				}
				r, err := s.Submit(p, sched.Options{MaxTokens: 2, N: 3})
				require.NoError(t, err)
				rs = append(rs, r)
			}
			for steps := 0; s.Busy(); steps++ {
				require.Less(t, steps, 2000, "admitFirst %v nb %d: no progress (requests %v, %v; %d preemptions)", admitFirst, nb, rs[0].State(), rs[1].State(), s.Stats().Preemptions)
				stepOnce(t, s, 7)
			}
			for _, r := range rs {
				require.Equal(t, sched.Finished, r.State(), "admitFirst %v nb %d: %v", admitFirst, nb, r.Err())
			}
		}
	}
}
