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
			// Each request as long as the pool holds at its longest (a
			// token takes a block in each group: 2 prompt tokens and
			// MaxTokens-1 outputs of KV in (nb-1)/2 blocks), capped at
			// 3+2i; Submit refuses one output more.
			longest := (nb-1)/2 - 1
			for i := range 4 {
				prompt := []int32{int32(10*i + 1), int32(10*i + 2)}
				mt := min(3+2*i, longest)
				if mt == longest {
					_, err := s.Submit(prompt, sched.Options{MaxTokens: mt + 1})
					require.ErrorIs(t, err, sched.ErrNever, "nb %d: %d outputs", nb, mt+1)
				}
				_, err := s.Submit(prompt, sched.Options{MaxTokens: mt})
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

// TestSwapInGroupHooks: a beam search swapped in whose later beam found no
// block for its next token was scheduled beam by beam: Hooks.Scheduled was
// called for the beams before it, then the swap-in was undone (the group
// restarted), so the hook had reported work no step ran, without the
// Preempted that the hook's documentation promises after it. The beams are
// now scheduled once all grew: every beam the hook reports is in the step,
// or a Preempted or Aborted hook followed.
func TestSwapInGroupHooks(t *testing.T) {
	type key struct {
		r *sched.Request
		i int
	}
	bad := 0
	for nb := 8; nb <= 30; nb++ {
		for _, width := range []int{2, 3} {
			hooked := map[key]bool{}
			cfg := sched.Config{Preemption: sched.Swap, Policy: sched.Priority}
			cfg.Hooks.Scheduled = func(sc *sched.Scheduled) { hooked[key{sc.Request, sc.Sample}] = true }
			cfg.Hooks.Preempted = func(r *sched.Request, i int, _ bool) { delete(hooked, key{r, i}) }
			cfg.Hooks.Aborted = func(r *sched.Request, _ error) {
				for k := range hooked {
					if k.r == r {
						delete(hooked, k)
					}
				}
			}
			m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: nb, HostBlocks: 64, MaxModelLen: 2 * nb})
			s, err := sched.New(m, cfg)
			require.NoError(t, err)
			_, err = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 12, BeamWidth: width, Priority: 5})
			require.NoError(t, err)
			var tokens []int32
			var parents []int
			for steps := 0; s.Busy(); steps++ {
				require.Less(t, steps, 500, "nb %d: no progress", nb)
				if steps == 2 || steps == 5 {
					_, err := s.Submit([]int32{int32(50 + steps), 51, 52, 53, 54}, sched.Options{MaxTokens: 6})
					require.NoError(t, err)
				}
				clear(hooked)
				st, err := s.Schedule()
				require.NoError(t, err)
				for _, sc := range st.Scheduled {
					delete(hooked, key{sc.Request, sc.Sample})
				}
				for k := range hooked {
					bad++
					t.Errorf("nb %d width %d step %d: Hooks.Scheduled reported request %d sample %d, which the step does not run", nb, width, st.Number, k.r.ID(), k.i)
				}
				tokens, parents = tokens[:0], parents[:0]
				for _, sc := range st.Scheduled {
					for j := range sc.Outputs {
						tokens = append(tokens, int32(60+j))
						parents = append(parents, sc.Sample+j)
					}
				}
				require.NoError(t, s.UpdateBeams(tokens, parents))
				require.NoError(t, m.Check())
			}
		}
	}
	t.Logf("%d hooks for work no step ran", bad)
}
