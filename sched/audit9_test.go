package sched_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit9ReusedCallerBuffers drives two schedulers with the same
// requests and outputs. The first one's caller reuses every buffer it
// passes (the prompt, StopTokens, the Seq options and their MM ranges and
// Retention, Update's tokens, a batch's per-step rows) as soon as a call
// returns; the second one's never does. Every step, every batch and the
// statistics must agree: the scheduler keeps none of its caller's memory.
func TestAudit9ReusedCallerBuffers(t *testing.T) {
	for _, cfg := range []sched.Config{{MaxBatchTokens: 64, ChunkedPrefill: true}, {Preemption: sched.Swap, MaxRunning: 6}} {
		mk := func() *sched.Scheduler {
			m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 20, HostBlocks: 32, Events: 256})
			s, err := sched.New(m, cfg)
			require.NoError(t, err)
			return s
		}
		a, b := mk(), mk()
		r := rand.New(rand.NewPCG(5, 6))
		var prompt, stops, tokens []int32
		mm := make([]paged.MMRange, 1)
		var ret paged.Retention
		var ba, bb paged.Batch
		for step := 0; step < 400; step++ {
			if r.IntN(2) == 0 {
				n := 1 + r.IntN(30)
				p := make([]int32, n)
				for i := range p {
					p[i] = int32(r.IntN(3)*100 + i)
				}
				opts := sched.Options{MaxTokens: 1 + r.IntN(12), N: 1 + r.IntN(2), StopTokens: []int32{int32(r.IntN(40))}}
				if r.IntN(2) == 0 {
					opts.Seq = &paged.SeqOptions{LoRA: 1, MM: []paged.MMRange{{Start: 0, End: 1, Hash: "x"}}, Retention: &paged.Retention{Priority: 70}}
				}
				prompt, stops = append(prompt[:0], p...), append(stops[:0], opts.StopTokens...)
				oa := opts
				oa.StopTokens = stops
				if opts.Seq != nil {
					so := *opts.Seq
					mm[0], ret = opts.Seq.MM[0], *opts.Seq.Retention
					so.MM, so.Retention = mm, &ret
					oa.Seq = &so
				}
				_, ea := a.Submit(prompt, oa)
				_, eb := b.Submit(p, opts)
				require.Equal(t, eb, ea, "step %d: Submit", step)
				scribble(prompt)
				scribble(stops)
				mm[0], ret = paged.MMRange{Start: 0, End: 1 << 20, Hash: "junk"}, paged.Retention{Priority: -1, Ticks: -1}
				if oa.Seq != nil {
					oa.Seq.LoRA = 99
				}
			}
			if !b.Busy() {
				continue
			}
			sa, err := a.Schedule()
			require.NoError(t, err)
			sb, err := b.Schedule()
			require.NoError(t, err)
			require.Equal(t, stepOf(sb), stepOf(sa), "step %d", step)
			require.NoError(t, a.BuildBatch(&ba))
			require.NoError(t, b.BuildBatch(&bb))
			require.Equal(t, [][]int32{bb.Tables, bb.SeqLens, bb.QueryLens}, [][]int32{ba.Tables, ba.SeqLens, ba.QueryLens}, "step %d: batch", step)
			require.Equal(t, bb.Slots, ba.Slots, "step %d: slots", step)
			scribble(ba.SeqLens)
			scribble(ba.QueryLens)
			scribble(ba.QueryStart)
			out := make([]int32, sb.Outputs)
			for i := range out {
				out[i] = int32(r.IntN(40))
			}
			tokens = append(tokens[:0], out...)
			require.NoError(t, a.Update(tokens))
			require.NoError(t, b.Update(out))
			scribble(tokens)
			require.NoError(t, a.Manager().Check())
			require.Equal(t, b.Stats(), a.Stats(), "step %d: stats", step)
			require.Equal(t, b.Manager().Stats(), a.Manager().Stats(), "step %d: manager stats", step)
		}
		require.Positive(t, a.Stats().Preemptions, "the pool is small enough to preempt")
	}
}

func scribble(s []int32) {
	for i := range s {
		s[i] = -5
	}
}

// stepOf is a step without the request pointers, which differ between
// the twins.
func stepOf(st *sched.Step) []any {
	out := []any{st.Number, st.Outputs, st.Tokens, st.Preempted}
	for _, sc := range st.Scheduled {
		c := sc
		c.Request = nil
		out = append(out, c.Seq, c.Sample, c.Start, c.NewTokens, c.Cached, c.Outputs, c.Generated, c.Admitted, c.Prefill)
	}
	return slices.Clip(out)
}
