package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// The tests of this file check the fragmentation study against an engine
// written again from its documentation (Frag's doc comment and the
// README's definitions), on small random traces.

// fragTrace draws a small trace: all requests wait at step 0.
func fragTrace(t *rapid.T, maxLen int) []Request {
	n := rapid.IntRange(1, 14).Draw(t, "requests")
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{
			InputTokens:  rapid.IntRange(0, maxLen+2).Draw(t, "in"),
			OutputTokens: rapid.IntRange(0, maxLen).Draw(t, "out"),
		}
	}
	return reqs
}

// contiguousSteps runs the engine over reqs with contiguous reservations
// of model, on an arena of budget slots kept as one flag per slot:
// firstFit places a reservation at the lowest offset with enough free
// slots in a row, otherwise (ideal compaction) wherever the free slots
// add up to it. It returns every step's (running, tokens, reserved,
// internal, external, free).
func contiguousSteps(reqs []Request, model MemoryModel, maxLen, budget int, firstFit bool) []slots {
	type req struct{ prompt, final, tokens, need, off int }
	var waiting []*req
	for _, q := range reqs {
		p, f, _ := Truncate(q.InputTokens, q.OutputTokens, maxLen)
		need := f // oracle: the final length
		switch model {
		case ModelMax:
			need = maxLen
		case ModelPow2:
			for need = 1; need < f; need *= 2 {
			}
			need = min(need, maxLen)
		}
		waiting = append(waiting, &req{prompt: p, final: f, tokens: p, need: need})
	}
	used := make([]bool, budget)
	nfree := budget
	place := func(n int) int { // -1: no room
		if !firstFit {
			if n <= nfree {
				return 0
			}
			return -1
		}
		run := 0
		for i, u := range used {
			if u {
				run = 0
				continue
			}
			if run++; run == n {
				return i - n + 1
			}
		}
		return -1
	}
	var running []*req
	var out []slots
	for len(waiting) > 0 || len(running) > 0 {
		var fresh []*req
		for len(waiting) > 0 {
			h := waiting[0]
			off := place(h.need)
			if off < 0 {
				break
			}
			h.off = off
			if firstFit {
				for i := off; i < off+h.need; i++ {
					used[i] = true
				}
			}
			nfree -= h.need
			waiting = waiting[1:]
			fresh = append(fresh, h)
		}
		for _, r := range running {
			r.tokens++ // every earlier request decodes one token
		}
		running = append(running, fresh...)
		var s slots
		s[0] = len(running)
		for _, r := range running {
			s[1] += r.tokens
			s[2] += min(r.need, r.final) - r.tokens // slots a later token fills
			s[3] += r.need - min(r.need, r.final)   // slots never filled
		}
		if len(waiting) > 0 && nfree >= waiting[0].need && place(waiting[0].need) < 0 {
			s[4] = nfree
		} else {
			s[5] = nfree
		}
		out = append(out, s)
		kept := running[:0]
		for _, r := range running {
			if r.tokens < r.final {
				kept = append(kept, r)
				continue
			}
			if firstFit {
				for i := r.off; i < r.off+r.need; i++ {
					used[i] = false
				}
			}
			nfree += r.need
		}
		running = kept
	}
	return out
}

// TestFragContiguousAgainstModel checks every step of the contiguous
// models on first fit and ideal compaction against contiguousSteps.
func TestFragContiguousAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Several traces a check: holes that keep a request out are
		// rare in one small trace.
		for range 20 {
			maxLen := rapid.IntRange(1, 12).Draw(t, "maxLen")
			budget := rapid.IntRange(maxLen, 2*maxLen+3).Draw(t, "budget")
			reqs := fragTrace(t, maxLen)
			model := rapid.SampledFrom([]MemoryModel{ModelMax, ModelPow2, ModelOracle}).Draw(t, "model")
			alloc := rapid.SampledFrom([]Allocator{AllocFirstFit, AllocCompact}).Draw(t, "alloc")
			var steps []FragSlots
			_, err := Frag(reqs, model, 0, FragConfig{MaxLen: maxLen, KVTokens: budget, Allocator: alloc, OnStep: func(s FragSlots) { steps = append(steps, s) }})
			require.NoError(t, err)
			require.Equal(t, contiguousSteps(reqs, model, maxLen, budget, alloc == AllocFirstFit), rows(steps))
		}
	})
}

// TestFragPagedPartialBlocks checks the paged model's classification on
// small random traces: a running request holds at most one partly filled
// block (reserved and internal slots together stay below the block size
// per request), and the only external fragmentation is the part of the
// budget short of a whole block: any free block serves any request.
func TestFragPagedPartialBlocks(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxLen := rapid.IntRange(1, 12).Draw(t, "maxLen")
		bs := rapid.IntRange(1, maxLen).Draw(t, "blockSize")
		budget := rapid.IntRange(maxLen+bs, 3*maxLen+5).Draw(t, "budget")
		reqs := fragTrace(t, maxLen)
		var steps []FragSlots
		_, err := Frag(reqs, ModelPaged, bs, FragConfig{MaxLen: maxLen, KVTokens: budget, OnStep: func(s FragSlots) { steps = append(steps, s) }})
		require.NoError(t, err)
		for _, s := range steps {
			require.LessOrEqual(t, s.Reserved+s.Internal, s.Running*(bs-1), "step %+v", s)
			require.Equal(t, budget%bs, s.External, "step %+v", s)
			require.Equal(t, budget, s.Tokens+s.Reserved+s.Internal+s.External+s.Free)
		}
	})
}
