package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestNoSwapInAndOutInOneStep: a sequence swapped in was swapped out
// again in the same step when it found no block for its next token, or
// when it was the decode phase's victim under AdmitFirst: its KV went to
// the device and back for nothing, and with KV cache groups a later
// swap-in read another sequence's KV (the state machine's and
// TestServerLoop's shadow KV stores found it). It is now recomputed. A
// step's transfers never copy a block to the device and that block back
// to the host.
func TestNoSwapInAndOutInOneStep(t *testing.T) {
	seen := 0
	for _, admitFirst := range []bool{false, true} {
		for nb := 8; nb <= 24; nb++ {
			m := newManager(t, paged.Config{BlockSize: 1, NumBlocks: nb, HostBlocks: 64, DisableOffload: true, MaxModelLen: 12,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}})
			s, err := sched.New(m, sched.Config{Preemption: sched.Swap, AdmitFirst: admitFirst})
			require.NoError(t, err)
			for i := range 4 {
				_, err := s.Submit([]int32{int32(10*i + 1), int32(10*i + 2)}, sched.Options{MaxTokens: 3 + 2*i})
				require.NoError(t, err)
			}
			var b paged.Batch
			var tokens []int32
			for steps := 0; s.Busy(); steps++ {
				require.Less(t, steps, 500, "nb %d: no progress", nb)
				st, err := s.Schedule()
				require.NoError(t, err)
				require.NoError(t, s.BuildBatch(&b))
				in := map[paged.SwapKind]map[int32]bool{}
				for _, w := range b.Swaps {
					if in[w.Kind] == nil {
						in[w.Kind] = map[int32]bool{}
					}
					switch w.Kind {
					case paged.SwapIn:
						in[w.Kind][int32(w.Dst)] = true
					case paged.SwapOut:
						if in[paged.SwapIn] != nil && in[paged.SwapIn][int32(w.Src)] {
							seen++
							t.Errorf("admitFirst %v nb %d step %d: device block %d swapped in and out", admitFirst, nb, st.Number, w.Src)
						}
					}
				}
				tokens = tokens[:0]
				for range st.Outputs {
					tokens = append(tokens, 5)
				}
				require.NoError(t, s.Update(tokens))
				require.NoError(t, m.Check())
			}
		}
	}
	t.Logf("%d blocks swapped in and out", seen)
}
