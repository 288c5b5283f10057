package kvmem_test

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit26PlannerSpecTokensRapid is TestAudit24PlannerMatchesManagerRapid
// with speculative decoding: a paged.Manager whose pool holds exactly the
// usable blocks Plan says n sequences of T tokens need with k draft tokens
// each (Deployment.SpecTokens) admits the n prompts' first chunk, then
// grows them to T side by side, a token at a time, each step followed by
// k drafts (AppendSpeculative) and a verdict that keeps a random number of
// them: no append may fail for want of space, and sequences that share no
// block hold at their peak exactly the planned blocks, a full group's T+k
// tokens and a State group's 1+k states among them. The planner ignored
// drafts before: MaxSequences claimed sequences whose drafts did not fit.
func TestAudit26PlannerSpecTokensRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4, 16}).Draw(t, "bs")
		caching := rapid.Bool().Draw(t, "caching")
		s := drawManagedSpec(t, bs)
		T := rapid.IntRange(1, 8*bs+30).Draw(t, "T")
		k := rapid.IntRange(1, 4).Draw(t, "k")
		step := rapid.OneOf(rapid.Just(1), rapid.IntRange(1, T)).Draw(t, "step")
		n := rapid.IntRange(1, 3).Draw(t, "n")

		block, err := s.BlockBytes(bs)
		if err != nil {
			t.Fatal(err)
		}
		d := kvmem.Deployment{GPUMemory: 2 * block, BlockSize: bs, PrefillChunk: step, NoHybridPins: !caching, SpecTokens: k}
		probe, err := kvmem.Plan(s, 0, d)
		if err != nil {
			t.Fatal(err)
		}
		per := probe.SequenceBytes(T) / block
		d.GPUMemory = (int64(n)*per + 1) * block
		c, err := kvmem.Plan(s, 0, d)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.MaxSequences(T); got != int64(n) {
			t.Fatalf("MaxSequences(%d) = %d in a pool of %d x %d + 1 blocks", T, got, n, per)
		}
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: int(c.NumBlocks), Groups: pagedGroups(t, s, bs),
			DisablePrefixCaching: !caching, MaxModelLen: T + k})
		if err != nil {
			t.Fatalf("paged.New: %v", err)
		}
		shared := make([]int, n)
		ids := make([]paged.SeqID, n)
		prompts := make([][]int32, n)
		pos := make([]int, n)
		for i := range ids {
			shared[i] = rapid.IntRange(0, T).Draw(t, "shared")
			prompts[i] = make([]int32, T+k) // the drafts past T are tokens too
			for j := range prompts[i] {
				prompts[i][j] = int32(i*(T+k) + j)
				if j < shared[i] {
					prompts[i][j] = int32(j)
				}
			}
			if ids[i], err = m.Add(prompts[i][:min(step, T)], nil); err != nil {
				t.Fatal(err)
			}
			if _, err = m.Admit(ids[i]); err != nil {
				t.Fatalf("admitting sequence %d of %d (per %d blocks, pool %d): %v", i+1, n, per, c.NumBlocks, err)
			}
			pos[i] = min(step, T)
		}
		peak := m.Stats().UsedBlocks
		drafted, accepted := false, false
		// A step: every unfinished sequence appends its sampled token and
		// k drafts, the step runs with all drafts pending, then the
		// verdicts.
		for more := true; more; {
			more = false
			live := ids[:0:0]
			for i, id := range ids {
				p := pos[i]
				if p == T {
					continue
				}
				more = true
				if err := m.Append(id, prompts[i][p]); err != nil {
					t.Fatalf("sequence %d of %d at %d tokens (per %d blocks, pool %d): %v", i+1, n, p, per, c.NumBlocks, err)
				}
				p++
				if err := m.AppendSpeculative(id, prompts[i][p:p+k]...); err != nil {
					t.Fatalf("%d drafts of sequence %d of %d at %d tokens (per %d blocks, pool %d): %v", k, i+1, n, p, per, c.NumBlocks, err)
				}
				pos[i] = p
				live = append(live, id)
				drafted = true
			}
			peak = max(peak, m.Stats().UsedBlocks)
			for i, id := range ids {
				if !slices.Contains(live, id) {
					continue
				}
				acc := rapid.IntRange(0, min(k, T-pos[i])).Draw(t, "accepted")
				if err := m.AcceptSpeculative(id, acc); err != nil {
					t.Fatal(err)
				}
				pos[i] += acc
				accepted = accepted || acc > 0
			}
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		if int64(peak) > int64(n)*per {
			t.Fatalf("%d sequences held %d blocks, planned %d each", n, peak, per)
		}
		// Exact where every sequence reaches T with k drafts in one step,
		// grown a token at a time from its first (the prefill peak of a
		// longer chunk is an upper bound, as in TestAudit24...): the
		// steps are in lockstep when no draft was accepted. Windows of
		// two tokens or more are exact too, since drafts do not slide
		// them.
		exact := drafted && step == 1 && slices.Max(shared) < bs && !accepted
		for _, g := range s.Groups {
			exact = exact && (g.Kind == kvmem.Full || g.Kind == kvmem.Shared || (g.Kind == kvmem.Window && g.Window > 1 || g.Kind == kvmem.State) && !caching)
		}
		if exact && int64(peak) != int64(n)*per {
			t.Fatalf("%d sequences with %d drafts held at most %d blocks, planned %d each", n, k, peak, per)
		}
	})
}

// TestOneTokenWindowPinsABlock is the planner's side of the seed
// TestAudit26PlannerSpecTokensRapid found: paged's default mode pins, for
// a window of one token, the block before a sequence's branch point (a
// hit's scan stops at a cached block, as vLLM's does), so the plan
// charges it, though ceil((W-1)/bs) is 0. Before, a manager sized at the
// plan refused a draft append for want of the pinned blocks.
func TestOneTokenWindowPinsABlock(t *testing.T) {
	for _, w := range []int{1, 2, 3, 5} {
		s := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Window, Layers: 2, Window: w}}}
		const bs = 2
		block, err := s.BlockBytes(bs)
		if err != nil {
			t.Fatal(err)
		}
		per := func(noPins bool, tokens int) int64 {
			c, err := kvmem.Plan(s, 0, kvmem.Deployment{GPUMemory: 1000 * block, BlockSize: bs, NoHybridPins: noPins})
			if err != nil {
				t.Fatal(err)
			}
			return c.SequenceBytes(tokens) / block
		}
		want := int64(2 * max(1, (w-1+bs-1)/bs)) // two window slices
		if got := per(false, 40) - per(true, 40); got != want {
			t.Errorf("window %d: pins charged %d blocks, want %d", w, got, want)
		}
		if got := per(false, 1) - per(true, 1); got != 2 {
			t.Errorf("window %d, one token: pins charged %d blocks, want 2 (one block of tokens)", w, got)
		}
	}
}
