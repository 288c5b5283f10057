package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestBeamGroupPreemptionUncomputes: a beam search whose beams are
// preempted together (restart, or swap) in a step that scheduled some of
// them already gave up their blocks with the tokens appended in the step,
// never computed: a block such a token filled was committed to the prefix
// cache when it came, and stayed there, so a later prompt with the same
// tokens hit a block holding no KV. A lone sequence preempted the same way
// (preemptBy) uncomputes its tokens first; the beams now do too.
//
// The beams always extend beam 0 (parents 0, 0), so beam 1 is a fork of
// beam 0 sharing its last block: each append copies it, and in a full pool
// beam 0 takes the last free block, fills it, and beam 1 finds none. The
// group, the newest running, is the victim. The probe then asks for beam
// 0's tokens up to the one appended in that step: its hit must stop before
// the block that token filled.
func TestBeamGroupPreemptionUncomputes(t *testing.T) {
	for _, swap := range []bool{false, true} {
		seen := 0
		for i := range 4 * 25 {
			nb, ln := 6+i/4, 5+i%4
			mcfg := paged.Config{BlockSize: 4, NumBlocks: nb, MaxModelLen: 4 * nb}
			cfg := sched.Config{Policy: sched.Priority}
			if swap {
				mcfg.HostBlocks = 64
				cfg.Preemption = sched.Swap
			}
			m := newManager(t, mcfg)
			var (
				beam0   []int32 // beam 0's tokens as the manager holds them
				start   int     // beam 0's first position scheduled in the current step
				victim  bool    // the group was preempted with beam 0 scheduled in the step
				upTo    int     // beam 0's tokens then
				req     *sched.Request
				current int64
			)
			var s *sched.Scheduler
			hooks := sched.Hooks{
				Scheduled: func(sc *sched.Scheduled) {
					if sc.Request == req && sc.Sample == 0 && !sc.Prefill {
						start, upTo = sc.Start, sc.Start+sc.NewTokens
						current = s.Stats().Steps
					}
				},
				Restarted: func(r *sched.Request) {
					if r == req && current == s.Stats().Steps && start%4 == 3 {
						victim = true
					}
				},
				Preempted: func(r *sched.Request, sample int, swapped bool) {
					if r == req && sample == 0 && current == s.Stats().Steps && start%4 == 3 {
						victim = true
					}
				},
			}
			cfg.Hooks = hooks
			var err error
			s, err = sched.New(m, cfg)
			require.NoError(t, err)
			long := make([]int32, 8)
			for i := range long {
				long[i] = int32(500 + i)
			}
			prompt := []int32{1, 2, 3, 4}
			req, err = s.Submit(prompt, sched.Options{MaxTokens: 12, BeamWidth: 2, Priority: 10})
			require.NoError(t, err)
			beam0 = append([]int32(nil), prompt...)
			var tokens []int32
			var parents []int
			out := int32(100)
			for steps := 0; s.Busy() && !victim; steps++ {
				require.Less(t, steps, 500, "nb %d: no progress", nb)
				if steps == 1 {
					_, err = s.Submit(long[:ln], sched.Options{MaxTokens: 12})
					require.NoError(t, err)
				}
				st, err := s.Schedule()
				require.NoError(t, err)
				tokens, parents = tokens[:0], parents[:0]
				for _, sc := range st.Scheduled {
					for j := range sc.Outputs {
						out++
						tokens = append(tokens, out)
						if sc.Request == req && sc.Request.Beams() > 0 {
							parents = append(parents, 0)
						} else {
							parents = append(parents, sc.Sample+j)
						}
						if sc.Request == req && sc.Sample+j == 0 {
							beam0 = append(beam0, out)
						}
					}
				}
				require.NoError(t, s.UpdateBeams(tokens, parents))
				require.NoError(t, m.Check())
			}
			if !victim {
				continue
			}
			seen++
			// The probe: beam 0's tokens up to the one appended in the
			// step that preempted the group, and one more.
			probe := append(append([]int32(nil), beam0[:upTo]...), 999)
			p, err := s.Submit(probe, sched.Options{MaxTokens: 1})
			require.NoError(t, err)
			for steps := 0; p.State() == sched.Waiting; steps++ {
				require.Less(t, steps, 500, "nb %d: the probe never ran", nb)
				if steps > 0 || s.Running() > 0 {
					st, err := s.Schedule()
					require.NoError(t, err)
					tokens, parents = tokens[:0], parents[:0]
					for _, sc := range st.Scheduled {
						for j := range sc.Outputs {
							tokens = append(tokens, 7)
							if sc.Request.Beams() > 0 {
								parents = append(parents, 0)
							} else {
								parents = append(parents, sc.Sample+j)
							}
						}
					}
					require.NoError(t, s.UpdateBeams(tokens, parents))
				}
			}
			assert.LessOrEqual(t, p.Cached(), start, "swap %v nb %d: the probe hit %d tokens, but beam 0 computed only %d (the block its token %d filled holds no KV)", swap, nb, p.Cached(), start, upTo-1)
		}
		t.Logf("swap %v seen %d", swap, seen)
		require.Positive(t, seen, "swap %v: no pool size preempted the beams with beam 0 scheduled", swap)
	}
}
